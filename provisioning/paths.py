"""Where the local stack keeps its state (jars, data dirs, logs, pid files).

Everything lives under one git-ignored folder so a ``rm -rf .state`` resets
the stack; ``TUNIX_STATE_DIR`` points it elsewhere (e.g. per-test isolation).
"""

from __future__ import annotations

from pathlib import Path

from adapters.settings import process_settings as settings  # the CLI's settings: one cache for both


def state_dir() -> Path:
    """Root of the stack state; created on first use."""
    path = settings().state_dir.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir() -> Path:
    """Shared folder for service logs (kafka.log, postgres.log)."""
    path = state_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
