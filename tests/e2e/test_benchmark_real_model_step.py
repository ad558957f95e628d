"""benchmarks/real_model_step.py at its smallest size, so it cannot rot unnoticed: every part runs on
SmolLM2's real weights (converted once per session) and the report has each line it promises. No
timing is asserted: these machines are noisy, the script prints ratios for people to read."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_real_model_step_benchmark_runs_every_part_at_its_smallest_size(smollm2_converted):
    out = subprocess.run([sys.executable, "benchmarks/real_model_step.py", "--steps", "2", "--batch", "1", "--seq", "64",
                          "--repeats", "1", "--model-folder", str(smollm2_converted.folder)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = out.stdout
    for part in ("pipeline", "plain", "plain-bf16"):
        line = re.search(rf"^{part} +step ([0-9.]+)s \(([0-9]+) tokens/s.*held-out loss ([0-9.]+)", report, re.M)
        assert line and float(line.group(1)) > 0 and float(line.group(3)) > 0, report
    assert re.search(r"^ratio pipeline / plain: [0-9.]+ \(target <= 1.05\)$", report, re.M), report
    assert re.search(r"^ratio bfloat16 / float32 step: [0-9.]+; held-out loss", report, re.M), report
