"""The OpenAPI document describes the API as it behaves: schemathesis's coverage and fuzzing
phases, every check (positive_data_acceptance and negative_data_rejection among them), against
the real api process on the real Kafka and PostgreSQL, with a bounded number of examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_schemathesis_finds_nothing(api_url, tmp_path):
    st = Path(sys.executable).parent / "st"
    run = subprocess.run(
        [str(st), "run", f"{api_url}/openapi.json", "--phases", "coverage,fuzzing", "--checks", "all",
         "--max-examples", "25", "--seed", "20261128", "--workers", "1", "--generation-deterministic",
         "--report", "junit", "--report-dir", str(tmp_path)],
        cwd=HERE, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
