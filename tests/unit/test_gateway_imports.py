"""The HTTP gateway starts without the tuner's engines: importing app.main in a fresh interpreter
loads neither Ray nor Optuna (nor JAX): the audit's what-if and importance load them on first use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("ray", "optuna", "jax", "tunix", "flax")


def test_importing_the_gateway_loads_no_ray_optuna_or_jax():
    probe = "import json, sys; import app.main; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "fastapi" in loaded  # the probe did import the gateway
    assert not loaded & set(ENGINES), f"the gateway imports {sorted(loaded & set(ENGINES))} at start-up"
