"""A character-level tokenizer for the built-in tiny model: small, fixed, shipped in code."""

from __future__ import annotations

import string

PAD, BOS, EOS = 0, 1, 2
_SPECIALS = ("<pad>", "<bos>", "<eos>")
# Every printable ASCII character: enough for the built-in datasets and most on-disk ones.
_CHARS = string.digits + string.ascii_letters + string.punctuation + " "


class CharTokenizer:
    def __init__(self, chars: str = _CHARS):
        self.chars = chars
        self._ids = {c: i + len(_SPECIALS) for i, c in enumerate(chars)}
        self.pad_id, self.bos_id, self.eos_id = PAD, BOS, EOS

    @property
    def vocab_size(self) -> int:
        return len(_SPECIALS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        unknown = sorted({c for c in text if c not in self._ids})
        if unknown:
            raise ValueError(f"characters outside the tokenizer's vocabulary: {unknown!r}")
        return [self._ids[c] for c in text]

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= len(_SPECIALS):
                out.append(self.chars[i - len(_SPECIALS)])
        return "".join(out)
