"""A SentencePiece vocabulary (tokenizer.ggml.model "llama": Llama 2, Mistral, TinyLlama) as a Hugging Face
BPE tokenizer, as llama.cpp tokenizes it (llm_tokenizer_spm in llama-vocab.cpp).

llama.cpp merges, at each step, the adjacent pair whose concatenation is the highest-scoring token, and
spells a piece that is no token as its <0xXX> byte tokens. A BPE model whose merges are every split of
every token into two tokens, ranked by the merged token's score, makes the same choices; byte_fallback
gives the same bytes. Spaces are written "▁", with one prepended to the text (and after each special
token) when tokenizer.ggml.add_space_prefix says so (its default for SentencePiece is true).
"""

from __future__ import annotations

import numpy as np

_NORMAL, _CONTROL, _USER_DEFINED, _BYTE = 1, 3, 4, 6


def spm_tokenizer(meta: dict, tokens: list[str], types: list[int]):
    from tokenizers import Tokenizer, decoders, models, normalizers

    scores = meta.get("tokenizer.ggml.scores")
    scores = np.zeros(len(tokens)) if scores is None or len(scores) != len(tokens) else np.asarray(scores, float)
    vocab: dict[str, int] = {}
    for i, token in enumerate(tokens):
        vocab.setdefault(token, i)
    normal = {t for t, kind in zip(tokens, types) if kind == _NORMAL}
    merges = []
    for i, token in enumerate(tokens):
        if types[i] != _NORMAL:
            continue
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in normal and right in normal:
                merges.append((-scores[i], vocab[left], vocab[right], left, right))
    merges.sort(key=lambda m: m[:3])  # the highest-scoring merged token first
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    unk_token = tokens[unk] if isinstance(unk, int) and 0 <= unk < len(tokens) else None
    tok = Tokenizer(models.BPE(vocab, [(m[3], m[4]) for m in merges], unk_token=unk_token, fuse_unk=True,
                               byte_fallback=True))
    prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    tok.normalizer = normalizers.Sequence(([normalizers.Prepend("▁")] if prefix else [])
                                          + [normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
                                    + ([decoders.Strip(" ", 1, 0)] if prefix else []))
    return tok
