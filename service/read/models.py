"""The base models jobs can name: what training.catalog finds, in the API's terms."""

from __future__ import annotations

from schemas.api import BaseModelOut
from service.file_checks import off_loop
from training.catalog import available_in
from training.folders import Folders
from training.hyperparams import Hyperparameters


async def base_models(folders: Folders) -> list[BaseModelOut]:
    """Every folder is read off the event loop, within a deadline (service/file_checks.py)."""
    return await off_loop(_base_models, folders)


def _base_models(folders: Folders) -> list[BaseModelOut]:
    """Sized at the default batch size and sequence length (training.hyperparams)."""
    defaults = Hyperparameters()
    found = available_in(folders, defaults.batch_size, defaults.max_seq_length)
    return [
        BaseModelOut(
            model_id=m.source.model_id, source=m.source.kind, family=m.family, parameters=m.parameters,
            folder=_where(m.source), revision=m.source.revision, quantization=m.quantization,
            lora_gib=round(m.memory.lora_bytes / 2**30, 2) if m.memory else None,
            full_gib=round(m.memory.full_bytes / 2**30, 2) if m.memory else None,
            fits_lora=bool(m.memory and m.memory.fits_lora), fits_full=bool(m.memory and m.memory.fits_full),
            problem=m.problem,
        )
        for m in found
    ]


def _where(source) -> str | None:
    """The checkpoint folder, or the GGUF file (which a run converts into the conversion cache)."""
    where = source.folder or (source.gguf.path if source.gguf else None)
    return str(where) if where else None
