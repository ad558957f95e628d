"""The stack under a PostgreSQL outage mid-job: the API answers 503 (never 500) while the read
model is down, the tuner's trials keep training and publishing, the projector pauses and
catches up, and the read model ends equal to a replay of the log."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import httpx
import pytest

from adapters.database import make_engine
from tests.support.replay_check import assert_replay_equals_live, drop_schema
from tests.support.service_stack import start_job, wait_for_job
from tests.support.waiting import wait_until

OUTAGE_S = 20


def test_postgres_down_for_20s_mid_job(tuning_stack, stack):
    if stack.origin != "local":
        pytest.skip("only the locally provisioned PostgreSQL can be stopped by the tests")
    from provisioning import postgres

    base = tuning_stack["url"]
    job_id = start_job(base, name="through an outage", num_samples=3, max_concurrent_trials=1,
                    fixed_params={"max_steps": 80, "eval_every": 10, "batch_size": 32},
                    search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}})

    def training():
        trials = httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10).json()["trials"]
        return any(t["status"] == "running" and (t["iteration"] or 0) >= 1 for t in trials)
    wait_until(training, 300, "a trial reporting progress")

    postgres.stop()
    down_at = datetime.now(timezone.utc)
    answers: list[int] = []
    try:
        ends = time.monotonic() + OUTAGE_S
        while time.monotonic() < ends:  # the outage's length: ask the API all along
            answers.append(httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=15).status_code)
            answers.append(httpx.get(f"{base}/api/tuning/jobs", timeout=15).status_code)
            answers.append(httpx.post(f"{base}/api/tuning/jobs/{job_id}/cancel", timeout=15).status_code)
            time.sleep(0.5)
        ready = httpx.get(f"{base}/readyz", timeout=15)
    finally:
        postgres.start()
    up_at = datetime.now(timezone.utc)
    assert answers and set(answers) == {503}, answers
    assert ready.status_code == 503 and ready.json()["checks"]["postgres"] != "ok"

    job = wait_for_job(base, job_id, 600, tuning_stack["procs"])
    assert job["status"] == "completed", job["error"]
    assert len(job["trials"]) == 3 and all(t["status"] == "completed" for t in job["trials"])
    trail = httpx.get(f"{base}/api/tuning/jobs/{job_id}/events", timeout=30).json()
    during = [e for e in trail if e["type"] == "TrialUpdated"
              and down_at < datetime.fromisoformat(e["occurred_at"]) < up_at]
    assert during, "no trial progress was published while PostgreSQL was down"
    print(f"{len(during)} trial updates published during the {OUTAGE_S}s outage, projected after it")

    async def replay_equals_live():
        env = tuning_stack["procs"][0].env
        live = make_engine(env["DATABASE_URL"])
        try:
            await drop_schema(live, await assert_replay_equals_live(env, live))
        finally:
            await live.dispose()
    asyncio.run(replay_equals_live())
