"""Carrying results forward on the real stack: a TPE job warm-started from two parents suggests
from what they learned, a grid job skips what its parent tried, a fork records its lineage,
and the best trial promoted into the registry re-evaluates to its recorded score.

The parents are put on the log by "another system" (events published straight to Kafka):
twenty completed trials whose score peaks sharply at learning_rate 3e-3, costing no training.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from adapters.database import make_engine
from adapters.publisher import EventPublisher
from schemas import tables
from schemas import events as ev
from schemas.job_spec import JobSpec
from schemas.topics import Topics
from tests.support.replay_check import assert_replay_equals_live, drop_schema
from tests.support.service_stack import start_job, wait_for_job
from tests.support.specs import example_spec
from tests.support.waiting import wait_until

SHORT = {"max_steps": 30, "eval_every": 10, "batch_size": 32}
PEAK = 3e-3
REPO_ROOT = Path(__file__).resolve().parents[2]


def _score(lr: float) -> float:
    return 100 * math.exp(-(math.log10(lr) - math.log10(PEAK)) ** 2 / 0.02)


def _parent(env: dict, name: str, learning_rates: list[float], space: dict, extra: dict | None = None) -> str:
    """A finished job another system ran: JobCreated, its completed trials, JobCompleted."""
    job_id = uuid.uuid4()
    spec = JobSpec.model_validate(example_spec(name=name, num_samples=len(learning_rates), search_space=space))
    events: list[ev.Event] = [ev.JobCreated(job_id=job_id, source="other-system", payload=ev.JobCreatedPayload(spec=spec))]
    for i, lr in enumerate(learning_rates):
        params = {"learning_rate": lr, **(extra or {})}
        events.append(ev.TrialUpdated(job_id=job_id, source="other-system", payload=ev.TrialUpdatedPayload(
            trial_id=f"p{i}", status="completed", params=params, metrics={"score": _score(lr)}, iteration=3)))
    best = max(learning_rates, key=_score)
    events.append(ev.JobCompleted(job_id=job_id, source="other-system", payload=ev.JobCompletedPayload(
        best_trial_id=f"p{learning_rates.index(best)}", metric_name="score", best_metric=_score(best))))

    async def publish():
        publisher = EventPublisher(env["KAFKA_BOOTSTRAP_SERVERS"], Topics(env["TUNIX_TOPIC_PREFIX"]))
        await publisher.start()
        try:
            for event in events:
                await publisher.publish(event)
        finally:
            await publisher.close()
    asyncio.run(publish())
    return str(job_id)


def _job(base: str, job_id: str) -> dict:
    answer = httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10)
    return answer.status_code == 200 and answer.json()


def test_warm_start_fork_and_promote(tuning_stack):
    base, procs, env = tuning_stack["url"], tuning_stack["procs"], tuning_stack["env"]
    lr_space = {"learning_rate": {"type": "loguniform", "min": 1e-4, "max": 1e-1}}
    grid_one = [10 ** (-4 + 3 * i / 9) for i in range(10)]  # 1e-4 .. 1e-1
    grid_two = [10 ** (-3.95 + 2.9 * i / 9) for i in range(10)] + [0.5]  # one outside the child's range
    one = _parent(env, "parent one", grid_one, lr_space)
    two = _parent(env, "parent two", grid_two, {**lr_space, "weight_decay": {"type": "uniform", "min": 0, "max": 0.1}},
                  extra={"weight_decay": 0.01})
    wait_until(lambda: all((j := _job(base, p)) and j["status"] == "completed" for p in (one, two)), 60, "parents projected")

    refused = httpx.post(f"{base}/api/tuning/jobs", timeout=30, json=example_spec(
        name="bad parent", search_space=lr_space, warm_start={"jobs": [one, str(uuid.uuid4())]}))
    assert refused.status_code == 422 and refused.json()["details"][0]["field"] == "warm_start.jobs.1", refused.text

    child = start_job(base, name="warm", num_samples=1, max_concurrent_trials=1, search_algorithm="tpe", seed=3,
                      fixed_params=SHORT, search_space=lr_space, warm_start={"jobs": [one, two]})
    job = wait_for_job(base, child, 600, procs)
    assert job["status"] == "completed", job["error"]
    lineage = job["lineage"]
    assert lineage["relation"] == "warm_start" and lineage["parents"] == [one, two]
    assert lineage["seed_count"] == 20  # 10 + 11, less the one outside the child's range
    outcomes = {(m["job_id"], m["parameter"]): (m["outcome"], m["reason"]) for m in lineage["mapping"]}
    assert outcomes[(two, "learning_rate")][0] == "kept" and "1 trial(s) outside" in outcomes[(two, "learning_rate")][1]
    assert outcomes[(two, "weight_decay")][0] == "dropped" and "not searched" in outcomes[(two, "weight_decay")][1]
    created = httpx.get(f"{base}/api/tuning/jobs/{child}/events", timeout=30).json()[0]
    assert len(created["payload"]["lineage"]["seeds"]) == 20  # what the searcher was told, on the log
    # TPE's first suggestion already uses the parents: near their peak (3e-3), where 1 in 5 draws
    # of the space would land by chance; seeded this way, 100 of 100 TPE seeds land there.
    first = job["trials"][0]["params"]["learning_rate"]
    assert 1.5e-3 <= first <= 6e-3, first

    # A grid job skips the configurations its parent tried: only the new point runs.
    grid = start_job(base, name="grid", num_samples=1, max_concurrent_trials=2, search_algorithm="grid",
                     fixed_params=SHORT, search_space={"learning_rate": {"type": "grid", "values": [grid_one[3], 2e-3, grid_one[5]]}},
                     warm_start={"jobs": [one]})
    job = wait_for_job(base, grid, 600, procs)
    assert job["status"] == "completed", job["error"]
    assert [t["params"]["learning_rate"] for t in job["trials"]] == [2e-3]

    # A fork: the child's spec with a different scheduler, seeded with its first ended trial.
    fork = httpx.post(f"{base}/api/tuning/jobs/{child}/fork", timeout=30,
                      json={"at_trials": 1, "changes": {"scheduler": "asha", "num_samples": 3}, "reason": "try ASHA"})
    assert fork.status_code == 201, fork.text
    forked = fork.json()
    assert forked["lineage"]["relation"] == "fork" and forked["lineage"]["parents"] == [child]
    assert forked["lineage"]["at_trials"] == 1 and forked["lineage"]["seed_count"] == 1
    assert forked["spec"]["scheduler"] == "asha" and forked["name"] == "warm (fork)"
    trail = httpx.get(f"{base}/api/tuning/jobs/{child}/events", timeout=30).json()
    first_end = next(e for e in trail if e["type"] == "TrialUpdated" and e["payload"]["status"] == "completed")
    at_offset = httpx.post(f"{base}/api/tuning/jobs/{child}/fork", timeout=30,
                           json={"at_offset": first_end["kafka_offset"] - 1, "changes": {"name": "before any end"}})
    assert at_offset.status_code == 201, at_offset.text
    assert at_offset.json()["lineage"]["at_offset"] == first_end["kafka_offset"] - 1
    assert at_offset.json()["lineage"]["seed_count"] == 0  # no trial had ended at that point of the log
    bad_fork = httpx.post(f"{base}/api/tuning/jobs/{child}/fork", json={"changes": {"scheduler": "nope"}}, timeout=30)
    assert bad_fork.status_code == 422 and bad_fork.json()["details"][0]["field"] == "changes.scheduler", bad_fork.text

    # Promote the warm job's best trial, twice: versions 1 and 2 of one name.
    assert httpx.post(f"{base}/api/tuning/jobs/{child}/promote", json={"name": "Bad Name"}, timeout=30).status_code == 422
    assert httpx.post(f"{base}/api/tuning/jobs/{child}/promote", json={"name": "hcd", "trial_id": "nope"},
                      timeout=30).status_code == 422
    for _ in range(2):
        promoted = httpx.post(f"{base}/api/tuning/jobs/{child}/promote", json={"name": "hcd", "stage": "staging"},
                              timeout=30)
        assert promoted.status_code == 202, promoted.text
    versions = wait_until(lambda: (r := httpx.get(f"{base}/api/models/hcd/versions", timeout=10)).status_code == 200
                          and len(r.json()) == 2 and r.json(), 30, "two versions in the registry")
    assert [v["version"] for v in versions] == [2, 1]
    models = httpx.get(f"{base}/api/models", timeout=10).json()  # (other tests of the stack promote too)
    assert [(m["versions"], m["latest"]["version"]) for m in models if m["name"] == "hcd"] == [(2, 2)]
    best = wait_for_job(base, child, 10, procs)["best_trial"]
    folder = Path(versions[0]["path"])
    assert folder == tuning_stack["artifacts"].resolve() / "models" / "hcd" / "2"
    card = json.loads((folder / "model.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert card["trial_id"] == best["trial_id"] and card["metric"] == best["metrics"]["score"] == manifest["metrics"]["score"]
    assert manifest["packages"]["jax"] and (folder / "checkpoint").is_dir()
    assert httpx.get(f"{base}/api/models/nothing/versions", timeout=10).status_code == 404

    # The promoted checkpoint evaluated again gives the recorded score.
    again = subprocess.run([sys.executable, "-m", "app.cli.main", "run", "--eval-only", "--model", str(folder), "--json"],
                           env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["metrics"]["score"] == best["metrics"]["score"]

    # The same through the CLI: the registry, a comparison of the three jobs, importances.
    cli = [sys.executable, "-m", "app.cli.main"]
    listed = subprocess.run([*cli, "models", "--api-url", base, "versions", "hcd"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "hcd v2" in listed.stdout and "hcd v1" in listed.stdout, listed.stderr
    compared = subprocess.run([*cli, "jobs", "--api-url", base, "compare", one, two, child, "--json"],
                              capture_output=True, text=True, timeout=60)
    assert compared.returncode == 0, compared.stderr
    rows = {row["job_id"]: row for row in json.loads(compared.stdout)}
    assert rows[one]["trials"] == 10 and rows[two]["best_metric"] == max(_score(lr) for lr in grid_two[:-1])
    assert rows[child]["best_params"]["learning_rate"] == best["params"]["learning_rate"]
    assert rows[child]["cost"]["cpu_s"] > 0 and rows[one]["cost"]["cpu_s"] == 0  # the parents trained nowhere here
    shown = subprocess.run([*cli, "jobs", "--api-url", base, "show", two, "--importance", "--json"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    importance = json.loads(shown.stdout)["importance"]
    assert importance["trials_used"] == 10 and importance["trials_skipped"] == 1  # 0.5 is outside its own space
    assert importance["importances"]["learning_rate"] > importance["importances"].get("weight_decay", 0)

    # Lineage, costs and the registry are rebuilt from the log alone.
    async def replayed():
        live = make_engine(env["DATABASE_URL"])
        try:
            checked = (tables.jobs, tables.trials, tables.events, tables.model_versions)
            await drop_schema(live, await assert_replay_equals_live(env, live, checked))
        finally:
            await live.dispose()
    asyncio.run(replayed())
