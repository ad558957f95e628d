#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: install the CUDA extra into the project's venv and measure GPU
# trials (benchmarks/gpu_sweep.py): 4 LoRA trials of a gemma-3-270m-shaped model sharing the GPU
# through the tuner's experiment code vs a plain tunix loop; prints tokens/s per trial, the ratio
# and each trial's peak GPU memory. Unattended; about 5 minutes on one modern GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet -e ".[cuda]"
.venv/bin/python -c "import jax; print('jax devices:', jax.devices())"
timeout 480 .venv/bin/python benchmarks/gpu_sweep.py
