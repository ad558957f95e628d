"""Where a tuning job's files live, for the tuner that writes them and anyone auditing them.

    artifacts/tuning/{job_id}/                 Ray Tune's experiment (state, trial results, checkpoints)
    artifacts/tuning/{job_id}/runs/{trial_id}/ the trial's run folder: manifest, metrics, predictions, model
    artifacts/tuning/{job_id}/train_state/{trial_id}/  the trial's latest training checkpoint, while it trains
    artifacts/tuning/{job_id}/baseline/        the untuned base model's scores: manifest, predictions
"""

from __future__ import annotations

from pathlib import Path


def trial_run_folder(job_folder: Path | str, trial_id: str) -> Path:
    return Path(job_folder) / "runs" / trial_id


def trial_train_state(job_folder: Path | str, trial_id: str) -> Path:
    return Path(job_folder) / "train_state" / trial_id


def baseline_folder(job_folder: Path | str) -> Path:
    return Path(job_folder) / "baseline"
