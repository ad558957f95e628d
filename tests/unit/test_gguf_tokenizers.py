"""A SentencePiece vocabulary from a GGUF file (Llama 2, Mistral) tokenizes as llama.cpp does: checked
against an independent transcription of llama.cpp's llm_tokenizer_spm (the highest-scoring adjacent
pair merged first, the leftmost on a tie; a piece that is no token spelled as its <0xXX> bytes)."""

from __future__ import annotations

import heapq
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from training.gguf.header import GgufHeader
from training.gguf.tokenizer import tokenizer_files, tokenizer_problem

_PIECES = ["▁", "a", "b", "c", "d", "ab", "bc", "cd", "▁a", "▁ab", "abc", "bcd", "▁abc", "▁b", "▁c", "▁d", "da",
           "▁da", "dab", "é"]


def _header(add_space_prefix: bool = True) -> GgufHeader:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + _PIECES
    types = [2, 3, 3] + [6] * 256 + [1] * len(_PIECES)
    scores = [0.0] * 259 + [-float(i) for i, _ in enumerate(_PIECES)]
    scores[259 + _PIECES.index("bc")] = 5.0  # "bc" outranks "ab": "abc" must come from a + bc
    meta = {"general.architecture": "llama", "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": np.array(types, np.int32), "tokenizer.ggml.scores": np.array(scores, np.float32),
            "tokenizer.ggml.add_space_prefix": add_space_prefix, "tokenizer.ggml.unknown_token_id": 0,
            "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2}
    return GgufHeader(Path("vocab.gguf"), 0, meta, {})


def llama_cpp_spm(text: str, header: GgufHeader) -> list[int]:
    """llm_tokenizer_spm_session.tokenize, transcribed (whitespace escaped, space prefix as configured)."""
    meta = header.metadata
    tokens, scores = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.scores"]
    ids = {t: i for i, t in enumerate(tokens)}
    text = (" " if meta["tokenizer.ggml.add_space_prefix"] else "") + text
    symbols = list(text.replace(" ", "▁"))
    alive = [True] * len(symbols)
    queue: list = []

    def push(left: int, right: int):
        merged = symbols[left] + symbols[right]
        if merged in ids:  # highest score first, then the leftmost
            heapq.heappush(queue, (-scores[ids[merged]], left, right, merged))

    nxt = list(range(1, len(symbols))) + [-1]
    prv = [-1] + list(range(len(symbols) - 1))
    for i in range(len(symbols) - 1):
        push(i, i + 1)
    while queue:
        _, left, right, merged = heapq.heappop(queue)
        if not (alive[left] and alive[right]) or nxt[left] != right or symbols[left] + symbols[right] != merged:
            continue
        symbols[left], alive[right] = merged, False
        nxt[left] = nxt[right]
        if nxt[right] != -1:
            prv[nxt[right]] = left
        if prv[left] != -1:
            push(prv[left], left)
        if nxt[left] != -1:
            push(left, nxt[left])
    out = []
    for i, piece in enumerate(symbols):
        if alive[i]:
            out += [ids[piece]] if piece in ids else [ids[f"<0x{b:02X}>"] for b in piece.encode()]
    return out


@pytest.mark.parametrize("prefix", [True, False])
@pytest.mark.parametrize("text", ["abc", "abcd dab", "bcd ab c", "dabc", "a b c d", "x", "abé€", "  ab"])
def test_sentencepiece_ids_equal_llama_cpp_s(text, prefix):
    header = _header(prefix)
    assert tokenizer_problem(header) is None
    tok: Tokenizer = tokenizer_files(header)["tokenizer.json"]
    assert tok.encode(text, add_special_tokens=False).ids == llama_cpp_spm(text, header)
    assert tok.decode(llama_cpp_spm(text, header)) == text


def test_a_vocabulary_neither_bpe_nor_sentencepiece_is_named_with_what_is_supported():
    header = _header()
    header.metadata["tokenizer.ggml.model"] = "bert"
    assert "tokenizer.ggml.model 'bert' is not supported; supported: 'gpt2'" in tokenizer_problem(header)
    header.metadata.update({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "made-up", "tokenizer.ggml.merges": []})
    assert "tokenizer.ggml.pre 'made-up' is not supported" in tokenizer_problem(header)


@pytest.mark.parametrize(("model", "pre", "add_bos", "expected"), [
    ("llama", None, None, "<s>"),  # SentencePiece: llama.cpp adds BOS unless the file says not to
    ("llama", None, False, None),
    ("gpt2", "llama-bpe", None, "<s>"),  # Llama 3's pre-tokenizer: BOS by default
    ("gpt2", "qwen2", None, None),  # Qwen: none (its bos id names <|endoftext|>, never prepended)
    ("gpt2", "smollm", True, "<s>"),
])
def test_tokenizer_config_names_a_bos_only_when_the_file_adds_one(model, pre, add_bos, expected):
    header = _header()
    meta = header.metadata
    meta.pop("tokenizer.ggml.add_space_prefix")
    meta.update({"tokenizer.ggml.model": model, "tokenizer.ggml.merges": ["a b"]})
    if pre is not None:
        meta["tokenizer.ggml.pre"] = pre
    if add_bos is not None:
        meta["tokenizer.ggml.add_bos_token"] = add_bos
    files = tokenizer_files(header)
    assert files["tokenizer_config.json"].get("bos_token") == expected
    assert files["generation_config.json"]["bos_token_id"] == 1  # the metadata's id, whatever the rule
