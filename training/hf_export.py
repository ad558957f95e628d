"""A LoRA trial's results in forms usable outside this project: the adapter alone and, where
tunix can write one, the merged model as a Hugging Face folder.

- adapter/: adapter_model.safetensors (every LoRA matrix, named by its tunix module path) and
  adapter_config.json (rank, alpha, target modules, base model lineage). Loading it needs the
  same base model and tunix/qwix; it is not a PEFT adapter.
- merged/: the base checkpoint's model.safetensors with every LoRA delta (A·B·alpha/rank) added
  to its weight, plus the base folder's config and tokenizer files: a folder transformers,
  vLLM or this project (as a model id) loads like the original. tunix 0.1.7 writes these for
  Gemma 3 and Qwen 3 from a single-file checkpoint; for other families or sharded weights the
  reason is recorded instead, and the run's checkpoint/ (Orbax) holds the merged weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.families import FAMILIES

# family -> the tunix module writing its merged model, for the families tunix has one for
_MERGE_EXPORTERS = {f.name: f.merge_exporter for f in FAMILIES if f.merge_exporter}


def export_lora(lora_model, family: str, base_folder: Path, lineage: dict, rank: int, alpha: float,
                targets: str, run_dir: Path) -> dict:
    """Write adapter/ (and merged/ where possible) into run_dir; return what was written, for the manifest."""
    import importlib

    from flax import nnx
    from safetensors.numpy import save_file

    adapter = run_dir / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    tensors = {".".join(str(p) for p in path): np.asarray(value[...])
               for path, value in nnx.iter_graph(lora_model) if isinstance(value, nnx.LoRAParam)}
    save_file(tensors, str(adapter / "adapter_model.safetensors"))
    (adapter / "adapter_config.json").write_text(json.dumps({
        "format": "tunix-qwix-lora", "r": rank, "lora_alpha": alpha, "target_modules": targets,
        "base_model": lineage, "tensors": len(tensors)}, indent=2) + "\n")
    written = {"adapter": str(adapter)}
    if family not in _MERGE_EXPORTERS:
        return {**written, "merged": None, "merged_note": f"tunix has no merged-model exporter for {family}"}
    if not (base_folder / "model.safetensors").is_file():
        return {**written, "merged": None, "merged_note": "tunix's exporter reads a single model.safetensors; "
                "this base checkpoint is sharded"}
    exporter = importlib.import_module(_MERGE_EXPORTERS[family])
    merged = run_dir / "merged"
    exporter.save_lora_merged_model_as_safetensors(str(base_folder), str(merged), lora_model, rank, alpha)
    return {**written, "merged": str(merged)}
