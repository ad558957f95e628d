"""The whole flow on real Kafka, PostgreSQL and Ray: create -> start -> trials train in
parallel -> the job completes with the best trial, everything projected from the log."""

from __future__ import annotations

import os
import uuid
from datetime import datetime

import httpx
import pytest

from schemas.db import create_database, drop_database
from tests.conftest import Process, free_port
from tests.specs import example_spec
from tests.waiting import wait_until

# Short trials: a few seconds of real training each on these CPUs.
FIXED = {"max_steps": 30, "eval_every": 10, "batch_size": 32}


@pytest.fixture(scope="module")
def tuning_stack(stack, tmp_path_factory):
    """api + projector + tuner on topics and a database of their own, so the tuner sees only
    the jobs of these tests (it resumes every started job it finds in its log)."""
    import asyncio

    run = uuid.uuid4().hex[:8]
    name = f"tuning_{run}"
    url = asyncio.run(create_database(stack.database_url, name))
    folder = tmp_path_factory.mktemp("tuning")
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka, "DATABASE_URL": url,
        "TUNIX_TOPIC_PREFIX": f"tuning-{run}", "TUNIX_API_PORT": str(port),
        "TUNIX_PROJECTOR_GROUP": f"tuning-{run}", "TUNIX_ARTIFACTS_DIR": str(folder / "artifacts"),
        "TUNIX_STATE_DIR": str(folder / "state"), "TUNIX_LOG_FORMAT": "json",
    }
    procs = [Process(m, env, folder) for m in ("consumers.projector", "consumers.tuner", "app.main")]
    base = f"http://127.0.0.1:{port}"

    def ready():
        try:
            return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False
    try:
        wait_until(ready, 90, "tuning stack ready")
        yield {"url": base, "artifacts": folder / "artifacts", "procs": procs}
    finally:
        for p in procs:
            p.stop()
        asyncio.run(drop_database(stack.database_url, name))


def _wait_for_job(stack: dict, job_id: str, timeout: float) -> dict:
    def finished():
        for proc in stack["procs"]:
            assert proc.proc.poll() is None, f"{proc.log_path.name} exited:\n{proc.output()}"
        job = httpx.get(f"{stack['url']}/api/tuning/jobs/{job_id}", timeout=10).json()
        return job["status"] in ("completed", "failed", "cancelled") and job
    return wait_until(finished, timeout, f"job {job_id} to finish", interval=1)


def test_job_runs_trials_in_parallel_and_picks_the_true_best(tuning_stack):
    base = tuning_stack["url"]
    spec = example_spec(
        name="e2e", num_samples=3, max_concurrent_trials=2, fixed_params=FIXED,
        search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}},
    )
    job_id = httpx.post(f"{base}/api/tuning/jobs", json=spec, timeout=30).json()["job_id"]
    assert httpx.post(f"{base}/api/tuning/jobs/{job_id}/start", timeout=30).status_code == 202
    job = _wait_for_job(tuning_stack, job_id, 600)
    assert job["status"] == "completed", job.get("error") or [p.output() for p in tuning_stack["procs"]]

    trials = job["trials"]
    assert len(trials) == 3 and all(t["status"] == "completed" for t in trials)
    assert len({t["params"]["learning_rate"] for t in trials}) == 3
    assert all(t["params"]["max_steps"] == 30 for t in trials)
    best = max(trials, key=lambda t: t["metrics"]["score"])
    assert job["best_trial_id"] == best["trial_id"] == job["best_trial"]["trial_id"]
    assert job["best_metric"] == best["metrics"]["score"]
    assert all(t["run_id"] and str(tuning_stack["artifacts"]) in t["artifact_path"] for t in trials), trials

    # Never more than max_concurrent_trials running at once, from the recorded times.
    spans = [(datetime.fromisoformat(t["started_at"]), datetime.fromisoformat(t["finished_at"])) for t in trials]
    for start, _ in spans:
        assert sum(s <= start < e for s, e in spans) <= 2

    trail = [e["type"] for e in httpx.get(f"{base}/api/tuning/jobs/{job_id}/events", timeout=30).json()]
    assert trail[:2] == ["JobCreated", "JobStarted"] and trail[-1] == "JobCompleted"
    assert trail.count("TrialUpdated") >= 3 * 3  # pending/running/results/completed per trial
