"""Try a model: one prompt, rendered as training renders it (the tokenizer's own chat template from
tokenizer_config.json, or prompt + separator for a model without one), answered greedily or sampled.
The pure part of `tunix-tune generate` (app/cli/generate.py decides what a name refers to).

A model is loaded from a base model id (training/catalog.py: built-in, folder, Hugging Face cache,
GGUF, ollama:, lmstudio:) or from a run folder (a trial's, or a promoted version's copy of one),
whose own files give the weights, as `tunix-tune run --eval-only` loads them (training/reevaluate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.folders import Folders
from training.sampling import Completion, prompt_ids
from training.traces import Trace

# Bounds on one request, which size its KV cache: prompt (padded to a power of two) + new tokens.
MAX_NEW_TOKENS = 2048
MAX_PROMPT_TOKENS = 2048
DEFAULT_NEW_TOKENS = 64


class GenerationError(ValueError):
    """A request that cannot be answered; the message says why, in one line."""


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # the nnx module
    tokenizer: Any  # CharTokenizer | HfTokenizer
    described: str  # what was loaded, for the output: "tiny-gemma3", "runs/x (merged)"


def load_base_model(model_id: str, folders: Folders, seed: int = 0) -> LoadedModel:
    """A base model by id (ModelNotAvailable / BrokenCheckpoint otherwise); a built-in one is
    initialised from `seed`, untrained."""
    from training.base_model import load_base
    from training.catalog import resolve_in
    from training.jax_setup import configure_jax

    source = resolve_in(model_id, folders)
    configure_jax(folders.jax_cache)
    base = load_base(source, seed)
    return LoadedModel(base.model, base.tokenizer, model_id)


def load_run_folder(run_folder: Path, folders: Folders) -> LoadedModel:
    """The model a run folder holds (SavedRunError when it is not a finished run folder)."""
    from training.jax_setup import configure_jax
    from training.reevaluate import load_saved_model, read_run_manifest

    manifest = read_run_manifest(run_folder)
    configure_jax(folders.jax_cache)
    model, tokenizer, weights, _ = load_saved_model(run_folder, manifest, folders)
    return LoadedModel(model, tokenizer, f"{run_folder} ({weights}, base {manifest['model']['id']})")


def check_request(prompt: str, max_new_tokens: int, temperature: float) -> None:
    """GenerationError for bounds a request breaks; checked before any model is loaded."""
    if not prompt.strip():
        raise GenerationError("the prompt is empty")
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise GenerationError(f"--max-tokens must be between 1 and {MAX_NEW_TOKENS}, got {max_new_tokens}")
    if not 0 <= temperature <= 100:  # NaN fails this too
        raise GenerationError(f"--temperature must be between 0 (greedy) and 100, got {temperature}")


def render_prompt(loaded: LoadedModel, prompt: str, system: str | None = None) -> tuple[str, list[int]]:
    """(the rendered prompt, the ids the model is given), with `system` as the chat's system turn
    (as a chat dataset's examples carry it); GenerationError for a prompt too long, or one the
    tokenizer cannot encode (the built-in model's character vocabulary)."""
    turns = (("system", system), ("user", prompt)) if system else ()
    rendered = loaded.tokenizer.render(Trace("prompt", prompt, "", messages=turns))
    try:
        ids = prompt_ids(loaded.tokenizer, rendered)
    except ValueError as exc:  # CharTokenizer: characters outside its vocabulary
        raise GenerationError(f"the prompt cannot be encoded: {exc}") from None
    if len(ids) > MAX_PROMPT_TOKENS:
        raise GenerationError(f"the prompt is {len(ids)} tokens with its chat template; at most {MAX_PROMPT_TOKENS}")
    return rendered, ids


def generate_text(loaded: LoadedModel, prompt: str, max_new_tokens: int = DEFAULT_NEW_TOKENS,
                  temperature: float = 0.0, seed: int = 0, system: str | None = None) -> Completion:
    """The model's answer to `prompt` (after `system`, when given): greedy at temperature 0, else
    sampled (reproducible for a seed)."""
    from training.sampling import complete

    check_request(prompt, max_new_tokens, temperature)
    rendered, _ = render_prompt(loaded, prompt, system)
    [completion] = complete(loaded.model, loaded.tokenizer, [rendered], max_new_tokens, temperature, seed)
    return completion
