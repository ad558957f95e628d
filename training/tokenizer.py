"""Tokenizers a run uses: a character-level one for the built-in tiny model (small, fixed,
shipped in code), and a Hugging Face checkpoint's own. Both render a trace's prompt the way the
model is trained and asked (`render`), and stop decoding at EOS."""

from __future__ import annotations

import string
from pathlib import Path

from training.safe_files import read_json
from training.traces import Trace

# Ends every plain prompt the model sees, in training and at inference: the model learns that
# the answer starts after it.
ANSWER_SEPARATOR = "="

PAD, BOS, EOS = 0, 1, 2
_SPECIALS = ("<pad>", "<bos>", "<eos>")
# Every printable ASCII character: enough for the built-in datasets and most on-disk ones.
_CHARS = string.digits + string.ascii_letters + string.punctuation + " "


class CharTokenizer:
    def __init__(self, chars: str = _CHARS):
        self.chars = chars
        self._ids = {c: i + len(_SPECIALS) for i, c in enumerate(chars)}
        self.pad_id, self.bos_id, self.eos_id = PAD, BOS, EOS
        self.eos_ids = (EOS,)

    @property
    def vocab_size(self) -> int:
        return len(_SPECIALS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        unknown = sorted({c for c in text if c not in self._ids})
        if unknown:
            raise ValueError(f"characters outside the tokenizer's vocabulary: {unknown!r}")
        return [self._ids[c] for c in text]

    def render(self, trace: Trace) -> str:
        return plain_prompt(trace)

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= len(_SPECIALS):
                out.append(self.chars[i - len(_SPECIALS)])
        return "".join(out)


def plain_prompt(trace: Trace) -> str:
    """A prompt for a model without a chat template: the context's turns, then the separator
    the model learns to answer after."""
    text = " | ".join(content for _, content in trace.messages) if trace.messages else trace.prompt
    return text + ANSWER_SEPARATOR


class HfTokenizer:
    """A Hugging Face checkpoint's own tokenizer (tokenizer.json), read offline.

    Special ids come from the tokenizer and generation_config.json: Gemma has a BOS, Qwen has
    none; Qwen uses the same id for padding and EOS, which is why training builds its masks
    from the encoding, never from `tokens != pad`. Chats (and prompts, for models with a chat
    template) are rendered with the model's own template; the BOS is added once, as an id.
    """

    def __init__(self, folder: Path):
        from transformers import AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        generation = folder / "generation_config.json"
        stops = read_json(generation).get("eos_token_id") if generation.exists() else None
        self.eos_id = self._tok.eos_token_id
        if self.eos_id is None:
            raise ValueError(f"{folder / 'tokenizer_config.json'}: the tokenizer names no eos_token")
        self.eos_ids = tuple(dict.fromkeys([self.eos_id, *(stops if isinstance(stops, list) else [stops] if stops else [])]))
        self.bos_id = self._tok.bos_token_id
        self.pad_id = self._tok.pad_token_id if self._tok.pad_token_id is not None else self.eos_id
        self.vocab_size = len(self._tok)
        # Candidates for padding a decode batch when the pad id occurs in a prompt (training/sampling.py).
        self.special_ids = tuple(sorted(set(self._tok.all_special_ids)))
        self.has_chat_template = bool(getattr(self._tok, "chat_template", None))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False)

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        cut = next((n for n, i in enumerate(ids) if i in self.eos_ids), len(ids))
        return self._tok.decode(ids[:cut], skip_special_tokens=True)

    def render(self, trace: Trace) -> str:
        if not self.has_chat_template:
            return plain_prompt(trace)
        turns = trace.messages or (("user", trace.prompt),)
        text = self._tok.apply_chat_template([{"role": r, "content": c} for r, c in turns],
                                             tokenize=False, add_generation_prompt=True)
        bos = self._tok.bos_token
        return text.removeprefix(bos) if bos else text
