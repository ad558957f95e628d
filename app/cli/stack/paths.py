"""Where the local stack keeps its state (jars, data dirs, logs, pid files).

Everything lives under one git-ignored folder so a ``rm -rf .state`` resets
the stack; ``TUNIX_STATE_DIR`` points it elsewhere (e.g. per-test isolation).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]  # app/cli/stack/paths.py -> repo


def state_dir() -> Path:
    """Root of the stack state; created on first use."""
    path = Path(os.environ.get("TUNIX_STATE_DIR") or REPO_ROOT / ".state").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir() -> Path:
    """Shared folder for service logs (kafka.log, postgres.log)."""
    path = state_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
