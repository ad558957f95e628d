"""A run's folder: manifest with lineage, metrics.jsonl, predictions.jsonl, checkpoint/.

Everything needed to audit a run, or reproduce its predictions, sits in one folder.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

LINEAGE_PACKAGES = ("google-tunix", "jax", "jaxlib", "flax", "optax", "qwix", "orbax-checkpoint", "numpy")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in LINEAGE_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str | None:
    """The commit of the code that ran, when it runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class RunFolder:
    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.checkpoint = path / "checkpoint"
        self._metrics = open(path / "metrics.jsonl", "a")

    def log_metrics(self, record: dict) -> None:
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()

    def write_predictions(self, predictions: list[dict]) -> None:
        with open(self.path / "predictions.jsonl", "w") as out:
            for row in predictions:
                out.write(json.dumps(row) + "\n")

    def write_manifest(self, manifest: dict) -> None:
        manifest = {**manifest, "written_at": datetime.now(timezone.utc).isoformat()}
        (self.path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def close(self) -> None:
        self._metrics.close()


def read_manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())
