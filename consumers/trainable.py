"""The function each Ray Tune trial runs: the run pipeline, reporting through Ray.

Every intermediate report (step, train_loss, eval_loss) becomes a Ray result, so schedulers
see the trial progress; the last result carries the evaluation metrics and the run's lineage.
The run folder sits inside the trial's folder, under artifacts/tuning/{job_id}/.
"""

from __future__ import annotations

from pathlib import Path

from ray import tune

from training.run import run_pipeline


def train_trial(config: dict, dataset_key: str, model_id: str) -> None:
    trial_dir = Path(tune.get_context().get_trial_dir())
    run_id = f"{tune.get_context().get_experiment_name()}-{tune.get_context().get_trial_id()}"

    def report(record: dict) -> None:
        tune.report({k: v for k, v in record.items() if v is not None})

    result = run_pipeline(
        dataset_key, model_id, config, run_dir=trial_dir / "run", report=report, run_id=run_id
    )
    tune.report({
        **result.metrics,
        "run_id": result.run_id,
        "run_dir": str(result.run_dir),
        "compile_s": result.timings["compile_s"],
    })
