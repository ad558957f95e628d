"""A GGUF file's tokenizer as Hugging Face files: tokenizer.json, tokenizer_config.json (with the chat
template) and generation_config.json.

Built with the `tokenizers` library from the metadata, as llama.cpp itself tokenizes: a byte-level BPE
(tokenizer.ggml.model "gpt2") over tokens + merges, split first by the regexes llama.cpp uses for the
pre-tokenizer the file names (tokenizer.ggml.pre; llama-vocab.cpp), or a SentencePiece vocabulary
("llama": Llama 2, Mistral, TinyLlama) by its scores (spm.py). transformers' convert_gguf_tokenizer is
not used: it ignores tokenizer.ggml.pre (SmolLM's digit splitting would be lost) and swaps BOS and EOS
(transformers 5.12.1). Special tokens come from the metadata ids.
"""

from __future__ import annotations

import numpy as np

from training.gguf.header import GgufHeader
from training.gguf.spm import spm_tokenizer

_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?"
           r"[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?"
          r"[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# tokenizer.ggml.pre -> (the regexes applied in turn, whether a word that is a token skips the merges)
PRE_TOKENIZERS = {
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"), ((_LLAMA3,), True)),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "megrez"), ((_QWEN2,), False)),
    **dict.fromkeys(("smollm", "starcoder", "refact", "command-r", "codeshell"), ((r"\p{N}", _GPT2), False)),
    **dict.fromkeys(("gpt-2", "gpt2", "phi-2", "mpt", "olmo"), ((_GPT2,), False)),
    # llama.cpp's choice for a file that names none (it warns that quality may suffer)
    "default": ((r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", "[0-9][0-9][0-9]"), False),
}
_CONTROL, _USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values


def tokenizer_problem(header: GgufHeader) -> str | None:
    """Why the file's tokenizer cannot be converted; None when it can."""
    meta = header.metadata
    model = meta.get("tokenizer.ggml.model")
    if not isinstance(model, str) or model not in ("gpt2", "llama"):
        return (f"tokenizer.ggml.model {model!r} is not supported; supported: 'gpt2' (byte-level BPE: Llama 3, "
                "Qwen 2/3, SmolLM) and 'llama' (SentencePiece: Llama 2, Mistral)")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if model == "gpt2" and (not isinstance(pre, str) or pre not in PRE_TOKENIZERS):
        return f"tokenizer.ggml.pre {pre!r} is not supported; supported: {', '.join(sorted(PRE_TOKENIZERS))}"
    tokens, merges = meta.get("tokenizer.ggml.tokens"), meta.get("tokenizer.ggml.merges")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        return "tokenizer.ggml.tokens must be a non-empty array of strings"
    if model == "gpt2" and (not isinstance(merges, list) or not all(isinstance(m, str) and " " in m for m in merges)):
        return "tokenizer.ggml.merges must be an array of 'left right' strings"
    for key in ("token_type", "scores"):
        values = meta.get(f"tokenizer.ggml.{key}")
        if values is not None and not (isinstance(values, np.ndarray) and values.dtype.kind in "iuf"
                                       and len(values) == len(tokens)):
            return f"tokenizer.ggml.{key} must be an array of numbers, one per token ({len(tokens)})"
    for key in ("bos", "eos"):
        value = meta.get(f"tokenizer.ggml.{key}_token_id")
        if value is not None and not (isinstance(value, int) and 0 <= value < len(tokens)):
            return f"tokenizer.ggml.{key}_token_id {value!r} is not an id of the {len(tokens)}-token vocabulary"
    if meta.get("tokenizer.ggml.eos_token_id") is None:
        return "tokenizer.ggml.eos_token_id is missing: a run must know where an answer ends"
    return None


def tokenizer_files(header: GgufHeader) -> dict[str, object]:
    """file name -> its content (the Tokenizer for tokenizer.json, JSON-able dicts for the others)."""
    from tokenizers import AddedToken, processors

    meta = header.metadata
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    types = meta.get("tokenizer.ggml.token_type")
    types = [int(t) for t in types] if types is not None and len(types) == len(tokens) else [1] * len(tokens)
    tok = spm_tokenizer(meta, tokens, types) if meta["tokenizer.ggml.model"] == "llama" else _bpe(meta, tokens)
    ids = {key: meta.get(f"tokenizer.ggml.{key}_token_id") for key in ("bos", "eos", "unknown", "padding", "eot")}
    special = {i for i, t in enumerate(types) if t == _CONTROL} | {i for i in ids.values() if isinstance(i, int)}
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in sorted(special)])
    user = [AddedToken(tokens[i], special=False, normalized=False) for i, t in enumerate(types) if t == _USER_DEFINED]
    if user:
        tok.add_tokens(user)
    # Whether a prompt starts with BOS, as llama.cpp decides it (its default: yes for SentencePiece and the
    # Llama 3 pre-tokenizers). The project prepends the tokenizer's BOS to every example, so a file that
    # adds none (Qwen, SmolLM) names none in tokenizer_config.json; generation_config.json keeps its id.
    pre = meta.get("tokenizer.ggml.pre")
    default = meta["tokenizer.ggml.model"] == "llama" or PRE_TOKENIZERS.get(pre) == PRE_TOKENIZERS["llama-bpe"]
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", default)) and ids["bos"] is not None
    if add_bos:
        bos = tokens[ids["bos"]]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, ids["bos"])])
    name = lambda key: tokens[ids[key]] if isinstance(ids[key], int) else None  # noqa: E731
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
        "bos_token": name("bos") if add_bos else None, "eos_token": name("eos"), "unk_token": name("unknown"),
        "pad_token": name("padding"), "add_bos_token": add_bos, "add_eos_token": False,
        "model_max_length": int(header.arch_value("context_length", 2048) or 2048),
    }
    template = meta.get("tokenizer.chat_template")
    if isinstance(template, str):
        config["chat_template"] = template  # the Jinja template (Ollama's own template layer is Go)
    stops = [i for i in dict.fromkeys((ids["eos"], ids["eot"])) if isinstance(i, int)]
    generation = {"bos_token_id": ids["bos"], "eos_token_id": stops if len(stops) > 1 else stops[0],
                  "pad_token_id": ids["padding"]}
    return {"tokenizer.json": tok, "tokenizer_config.json": {k: v for k, v in config.items() if v is not None},
            "generation_config.json": {k: v for k, v in generation.items() if v is not None}}


def _bpe(meta: dict, tokens: list[str]):
    """Byte-level BPE over the file's merges, pre-split as llama.cpp splits for tokenizer.ggml.pre."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    regexes, ignore_merges = PRE_TOKENIZERS[meta.get("tokenizer.ggml.pre", "default")]
    vocab: dict[str, int] = {}
    for i, token in enumerate(tokens):
        vocab.setdefault(token, i)  # a repeated token keeps its first id, as llama.cpp's text_to_token does
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in regexes]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    return tok
