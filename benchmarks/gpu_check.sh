#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: install the CUDA extra into the project's venv and measure GPU
# trials (benchmarks/gpu_sweep.py): 4 LoRA trials of a gemma-3-270m-shaped model sharing the GPU
# through the tuner's experiment code vs a plain tunix loop; prints tokens/s per trial, the ratio
# and each trial's peak GPU memory; then packed LoRA trials (benchmarks/trial_floor.py --no-service):
# 8 trials of SmolLM2 one at a time against packs of 4 and 8 sharing the base model in one program
# (trials/hour ratio, goal >= 3x on a GPU; peak GPU memory; final losses). Unattended; about
# 8 minutes on one modern GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet -e ".[cuda]"
.venv/bin/python -c "import jax; print('jax devices:', jax.devices())"
timeout 480 .venv/bin/python benchmarks/gpu_sweep.py
timeout 420 .venv/bin/python benchmarks/trial_floor.py --no-service --packs 4,8
