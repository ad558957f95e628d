"""Steering running jobs on the real stack: a running job adjusted (concurrency raised and
lowered, trials added, budget cut) obeys within seconds without restarting running trials; a
completed job extended continues its searcher; invalid and late changes are refused."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import httpx

from tests.support.service_stack import start_job, wait_for_job
from tests.support.waiting import wait_until

LONG = {"max_steps": 60, "eval_every": 10, "batch_size": 32}  # ~6 reports: long enough to steer
SHORT = {"max_steps": 30, "eval_every": 10, "batch_size": 32}
CLI = [sys.executable, "-m", "app.cli.main"]
SPACE = {"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}}


def _job(base: str, job_id: str) -> dict:
    return httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10).json()


def _events(base: str, job_id: str) -> list[dict]:
    return httpx.get(f"{base}/api/tuning/jobs/{job_id}/events", timeout=30).json()


def _patch(base: str, job_id: str, **body) -> httpx.Response:
    return httpx.patch(f"{base}/api/tuning/jobs/{job_id}", json=body, timeout=30)


def _at(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def _running(base: str, job_id: str) -> list[dict]:
    return [t for t in _job(base, job_id)["trials"] if t["status"] == "running"]


def _first_after(events: list[dict], adjusted: dict, match) -> dict:
    later = [e for e in events if e["kafka_offset"] > adjusted["kafka_offset"] and match(e)]
    assert later, f"nothing followed {adjusted['payload']}"
    return later[0]


def test_a_running_job_obeys_adjustments_without_restarting_its_trials(tuning_stack):
    base, procs = tuning_stack["url"], tuning_stack["procs"]
    job_id = start_job(base, name="steered", num_samples=2, max_concurrent_trials=1, fixed_params=LONG,
                       search_space=SPACE)
    wait_until(lambda: len(_running(base, job_id)) == 1, 300, "the first trial running")
    first = _running(base, job_id)[0]["trial_id"]

    # Refused changes publish nothing: 422 naming field and rule.
    low = _patch(base, job_id, num_samples=0)
    assert low.status_code == 422 and low.json()["details"][0]["field"].endswith("num_samples"), low.text
    assert _patch(base, job_id).status_code == 422
    assert _patch(base, job_id, max_concurrent_trials=65).status_code == 422

    # Commands for another status: 409 (a running job has no best trial to promote yet).
    for verb, body in (("extend", {"num_samples": 1}), ("promote", {"name": "early"})):
        early = httpx.post(f"{base}/api/tuning/jobs/{job_id}/{verb}", json=body, timeout=30)
        assert early.status_code == 409, (verb, early.text)

    raised = _patch(base, job_id, max_concurrent_trials=2, num_samples=4, reason="more throughput")
    assert raised.status_code == 202, raised.text
    wait_until(lambda: len(_running(base, job_id)) == 2, 120, "a second trial running")
    events = _events(base, job_id)
    adjusted = next(e for e in events if e["type"] == "JobAdjusted")
    assert adjusted["actor"] == "anonymous" and adjusted["reason"] == "more throughput"
    assert adjusted["payload"] == {"changes": {"max_concurrent_trials": 2, "num_samples": 4},
                                   "previous": {"max_concurrent_trials": 1, "num_samples": 2}}
    second = _first_after(events, adjusted, lambda e: e["type"] == "TrialUpdated" and e["payload"]["trial_id"] != first)
    reaction = (_at(second) - _at(adjusted)).total_seconds()
    print(f"concurrency raised: a second trial {reaction:.2f}s after JobAdjusted")
    assert reaction <= 5, reaction

    lowered = subprocess.run([*CLI, "jobs", "--api-url", base, "adjust", job_id, "--max-concurrent-trials", "1",
                              "--reason", "share the machine"], capture_output=True, text=True, timeout=60)
    assert lowered.returncode == 0 and "adjusted" in lowered.stdout, lowered.stderr
    # Lowered while two run: both run on (never restarted); nothing new starts until one is left.
    wait_until(lambda: len(_job(base, job_id)["trials"]) >= 3 and _running(base, job_id), 300, "a third trial running")
    job = _job(base, job_id)
    lowered_at = datetime.fromisoformat(next(e for e in _events(base, job_id) if e["type"] == "JobAdjusted"
                                             and e["payload"]["changes"] == {"max_concurrent_trials": 1})["occurred_at"])
    spans = [(datetime.fromisoformat(t["started_at"]), datetime.fromisoformat(t["finished_at"] or "9999-01-01T00:00:00+00:00"))
             for t in job["trials"] if t["started_at"]]
    for start, _ in spans:
        if start > lowered_at:
            assert sum(s <= start < e for s, e in spans) == 1, "a trial started beside another after lowering to 1"
    restarted = [e for e in _events(base, job_id) if e["type"] == "TrialUpdated" and e["payload"]["trial_id"] == first
                 and e["payload"]["status"] in ("stale", "preempted")]
    assert not restarted

    cut = _patch(base, job_id, time_budget_s=1, reason="out of time")
    assert cut.status_code == 202
    job = wait_for_job(base, job_id, 300, procs)
    assert job["status"] == "completed"
    events = _events(base, job_id)
    budget = [e for e in events if e["type"] == "JobAdjusted"][-1]
    stopped = _first_after(events, budget, lambda e: e["type"] == "TrialUpdated" and e["payload"]["status"] == "stopped")
    reaction = (_at(stopped) - _at(budget)).total_seconds()
    print(f"budget cut: running trial stopped {reaction:.2f}s after JobAdjusted")
    assert reaction <= 5, reaction
    assert stopped["payload"]["reason"] == "time budget spent"
    assert 3 <= len(job["trials"]) <= 4 and job["num_samples"] == 4 and job["max_concurrent_trials"] == 1
    assert job["spec"]["time_budget_s"] == 1
    assert job["cost"]["cpu_s"] > 0 and all(t["cpu_s"] is not None for t in job["trials"] if t["iteration"])

    late = _patch(base, job_id, max_concurrent_trials=2)
    assert late.status_code == 409 and "completed" in late.json()["message"]


def test_a_completed_job_extended_continues_its_searcher(tuning_stack):
    base, procs = tuning_stack["url"], tuning_stack["procs"]
    job_id = start_job(base, name="extended", num_samples=2, max_concurrent_trials=2, fixed_params=SHORT,
                       search_space=SPACE, search_algorithm="tpe", seed=7)
    before = wait_for_job(base, job_id, 600, procs)
    assert before["status"] == "completed", before["error"]
    assert httpx.post(f"{base}/api/tuning/jobs/{job_id}/extend", json={"num_samples": 0}, timeout=30).status_code == 422

    extended = subprocess.run([*CLI, "jobs", "--api-url", base, "extend", job_id, "2", "--reason", "two more"],
                              capture_output=True, text=True, timeout=60)
    assert extended.returncode == 0, extended.stderr
    wait_until(lambda: _job(base, job_id)["status"] != "completed" or len(_job(base, job_id)["trials"]) > 2, 60,
               "the job running again")
    after = wait_for_job(base, job_id, 600, procs)
    assert after["status"] == "completed", after["error"]
    assert after["num_samples"] == 4 and len(after["trials"]) == 4
    old = {t["trial_id"]: t for t in before["trials"]}
    for trial in after["trials"]:  # the first two untouched, the new two fresh suggestions
        if trial["trial_id"] in old:
            assert trial["finished_at"] == old[trial["trial_id"]]["finished_at"]
        else:
            assert trial["status"] == "completed"
    assert len({t["params"]["learning_rate"] for t in after["trials"]}) == 4
    types = [e["type"] for e in _events(base, job_id)]
    assert types.count("JobCompleted") == 2 and types.index("JobExtended") < len(types) - 1
    trail = subprocess.run([*CLI, "jobs", "--api-url", base, "events", job_id], capture_output=True, text=True, timeout=60)
    assert "JobExtended" in trail.stdout and "[by anonymous: two more]" in trail.stdout, trail.stdout[-2000:]
    assert httpx.post(f"{base}/api/tuning/jobs/{job_id}/cancel", timeout=30).status_code == 409


def test_a_cpu_budget_stops_the_job_on_spend(tuning_stack):
    base, procs = tuning_stack["url"], tuning_stack["procs"]
    # Trials long enough that three spend more than the budget on a warm worker too (no per-trial compile).
    job_id = start_job(base, name="cpu budget", num_samples=3, max_concurrent_trials=1,
                       fixed_params={**SHORT, "max_steps": 150}, search_space=SPACE, budget={"cpu_s": 9})
    job = wait_for_job(base, job_id, 300, procs)
    # Completed with the best trial that ended before the spend, or failed when none had scored.
    assert job["status"] == "completed" or "no trial reported" in job["error"], job["error"]
    # The spend may run out during a trial (stopped) or as one ends (no further trial starts).
    stopped = [t for t in job["trials"] if t["status"] == "stopped"]
    assert all(t["reason"] == "cpu_s budget spent" for t in stopped), [
        (t["status"], t["reason"], t["cpu_s"]) for t in job["trials"]]
    assert sum(t["status"] == "completed" for t in job["trials"]) < 3
    assert 9 <= job["cost"]["cpu_s"] < 9 + 30  # stopped within a report of the spend
    budget = [e["payload"] for e in _events(base, job_id) if e["type"] == "DecisionMade" and e["payload"]["kind"] == "budget"]
    assert len(budget) == 1 and budget[0]["outcome"] == "stop_job" and budget[0]["trial_id"] is None, budget
    assert budget[0]["inputs"]["budget"] == "cpu_s" and budget[0]["inputs"]["spent"]["cpu_s"] >= 9
    assert set(budget[0]["inputs"]["running"]) >= {t["trial_id"] for t in stopped if t["started_at"]}
