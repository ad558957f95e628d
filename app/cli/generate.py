"""`tunix-tune generate --model MODEL "prompt"`: try a model, a tuned one or a base one.

MODEL is read in this order:
1. a directory holding manifest.json: a run folder (a trial's, artifacts/tuning/<job>/runs/<trial>/,
   or any copy of one). The CLI's user is the operator, who may name any folder they can read; the
   folder's own files give the weights (merged/ or checkpoint/), never the paths its manifest records;
2. NAME or NAME:VERSION in the registry's name pattern (schemas/steering.py MODEL_NAME) whose
   artifacts/models/NAME/ exists: that promoted version (the latest without VERSION). A name
   promoted into the registry is found before a base model of the same name;
3. anything else: a base model id, resolved by training/catalog.py from the configured folders
   (built-in, a folder or .gguf file under TUNIX_MODELS_DIR, the Hugging Face cache, ollama:, lmstudio:).
Every problem (an unknown model, a folder that is not a run folder, a prompt too long, out-of-range
options) is one line on stderr and exit 1.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import typer

from adapters.settings import Settings
from schemas.steering import MODEL_NAME

_PROMOTED = re.compile(MODEL_NAME.removesuffix("$") + r"(?::(?P<version>[0-9]{1,9}))?$")


class _Unknown(Exception):
    """The model reference names nothing; the message says what was looked for."""


def promoted_folder(reference: str, registry: Path) -> Path | None:
    """artifacts/models/NAME/VERSION for a registry reference; None when the registry has no NAME;
    _Unknown when it has NAME but not that version (or no version at all)."""
    match = _PROMOTED.match(reference)
    name = reference.split(":", 1)[0]
    if match is None or not (registry / name).is_dir():
        return None
    versions = sorted(int(p.name) for p in (registry / name).iterdir() if p.name.isdigit() and p.is_dir())
    wanted = int(match["version"]) if match["version"] else (versions[-1] if versions else None)
    if wanted not in versions:
        have = ", ".join(map(str, versions)) or "none"
        raise _Unknown(f"promoted model {name!r} has no version {match['version'] or '(any)'}; versions: {have}")
    return registry / name / str(wanted)


def _load(reference: str, settings: Settings):
    from training.catalog import ModelNotAvailable
    from training.generation import load_base_model, load_run_folder

    folders = settings.training_folders
    path = Path(reference).expanduser()
    if path.is_dir() and (path / "manifest.json").is_file():
        return load_run_folder(path, folders)
    promoted = promoted_folder(reference, settings.registry_dir)
    if promoted is not None:
        loaded = load_run_folder(promoted, folders)
        return type(loaded)(loaded.model, loaded.tokenizer, f"{reference} ({promoted})")
    try:
        return load_base_model(reference, folders)
    except ModelNotAvailable as exc:
        if path.is_dir():  # the likeliest intent: a run folder, named by a path
            raise _Unknown(f"{path}: not a run folder (it has no manifest.json) nor a model folder the catalog "
                           f"accepts ({exc})") from None
        raise


def generate_command(reference: str, prompt: str, max_tokens: int, temperature: float, seed: int, as_json: bool,
                     settings: Settings, system: str | None = None) -> None:
    from training.catalog import ModelNotAvailable
    from training.generation import GenerationError, check_request, generate_text
    from training.hf_checkpoint import BrokenCheckpoint
    from training.reevaluate import SavedRunError

    try:
        check_request(prompt, max_tokens, temperature)  # before minutes of loading
        started = time.perf_counter()
        loaded = _load(reference, settings)
        loaded_s = time.perf_counter() - started
        completion = generate_text(loaded, prompt, max_tokens, temperature, seed, system)
        generate_s = time.perf_counter() - started - loaded_s
    # ValueError: a tokenizer or checkpoint that cannot serve this prompt; OSError: an unreadable file.
    except (_Unknown, GenerationError, SavedRunError, ModelNotAvailable, BrokenCheckpoint, NotImplementedError,
            ValueError, OSError) as exc:
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)  # one line, whatever the message
        raise typer.Exit(1) from None
    timings = {"load_s": round(loaded_s, 3), "generate_s": round(generate_s, 3),
               "tokens_per_s": round(len(completion.token_ids) / generate_s, 2) if generate_s > 0 else None}
    if as_json:
        sys.stdout.write(json.dumps({"text": completion.text, "token_ids": completion.token_ids,
                                     "prompt_token_ids": completion.prompt_token_ids, "model": loaded.described,
                                     "timings": timings}) + "\n")
        return
    typer.echo(completion.text)
    typer.echo(f"[{loaded.described}: {len(completion.token_ids)} tokens in {generate_s:.1f}s "
               f"({timings['tokens_per_s']} tokens/s, compile included); loaded in {loaded_s:.1f}s]", err=True)
