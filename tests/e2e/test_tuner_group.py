"""Several tuners as one consumer group on the real stack: jobs spread over them, and a tuner
killed with -9 hands nothing over, yet its jobs finish on the others with exactly num_samples
trials, none run twice, every accepted event from the job's owner at the time."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter

import httpx
import pytest

from adapters.database import create_database, drop_database
from tests.conftest import REPO, Process, free_port
from tests.specs import example_spec
from tests.waiting import wait_until

SHORT = {"max_steps": 60, "eval_every": 10, "batch_size": 32}
SPACE = {"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}}


class Group:
    """api + projector + tuners on topics, a database and artifacts of their own."""

    def __init__(self, env: dict, folder):
        self.env, self.folder = env, folder
        self.url = f"http://127.0.0.1:{env['TUNIX_API_PORT']}"
        self.services = [Process(m, env, folder) for m in ("consumers.projector", "app.main")]
        self.tuners: dict[str, Process] = {}

    def add_tuner(self, name: str) -> Process:
        env = {**self.env, "TUNIX_TUNER_ID": name, "TUNIX_STATE_DIR": str(self.folder / f"state-{name}")}
        (log_dir := self.folder / name).mkdir()
        self.tuners[name] = Process("consumers.tuner", env, log_dir)
        return self.tuners[name]

    def kill(self, name: str) -> None:
        tuner = self.tuners.pop(name)
        os.kill(tuner.proc.pid, signal.SIGKILL)
        tuner.proc.wait(timeout=30)
        tuner.log.close()

    def job(self, job_id: str) -> dict:
        return httpx.get(f"{self.url}/api/tuning/jobs/{job_id}", timeout=10).json()

    def trail(self, job_id: str) -> list[dict]:
        return httpx.get(f"{self.url}/api/tuning/jobs/{job_id}/events", timeout=30).json()

    def start(self, **overrides) -> str:
        answer = httpx.post(f"{self.url}/api/tuning/jobs", json=example_spec(**overrides), timeout=30)
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["job_id"]
        assert httpx.post(f"{self.url}/api/tuning/jobs/{job_id}/start", timeout=30).status_code == 202
        return job_id

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path}\n{p.output()}" for p in [*self.services, *self.tuners.values()])

    def stop(self) -> None:
        for p in [*self.tuners.values(), *self.services]:
            p.stop()


@pytest.fixture
def group(stack, tmp_path):
    run = uuid.uuid4().hex[:8]
    name = f"group_{run}"
    url = asyncio.run(create_database(stack.database_url, name))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka, "DATABASE_URL": url, "TUNIX_TOPIC_PREFIX": f"group-{run}",
        "TUNIX_API_PORT": str(free_port()), "TUNIX_PROJECTOR_GROUP": f"group-{run}-projector",
        "TUNIX_TUNER_GROUP": f"group-{run}-tuners", "TUNIX_TUNER_SESSION_TIMEOUT_S": "6",
        "TUNIX_ARTIFACTS_DIR": str(tmp_path / "artifacts"),  # shared by every tuner
        "TUNIX_LOG_FORMAT": "json", "TUNIX_TUNER_PROBE_PORT": "",
    }
    group = Group(env, tmp_path)
    try:
        yield group
    finally:
        group.stop()
        asyncio.run(drop_database(stack.database_url, name))


def _ready(process: Process) -> bool:
    try:
        return httpx.get(f"{process.probe_url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _status(group: Group) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "status", "--json"], cwd=REPO, capture_output=True, text=True,
        env={**group.env, "TUNIX_API_URL": group.url}, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _owner_checks(trail: list[dict]) -> None:
    """Every accepted event a tuner published came under the job's latest claim at its place
    in the log, and every trial ended exactly once."""
    claim = None
    for event in trail:
        if event["type"] == "JobClaimed":
            assert claim is None or event["payload"]["generation"] > claim
            claim = event["payload"]["generation"]
        elif event["claim"] is not None:
            assert event["claim"] == claim, (event["type"], event["claim"], claim)
    ends = Counter(e["payload"]["trial_id"] for e in trail
                   if e["type"] == "TrialUpdated" and e["payload"]["status"] in ("completed", "failed", "stopped"))
    assert ends and set(ends.values()) == {1}, ends


def test_jobs_spread_over_tuners_and_survive_their_owner_killed(group):
    group.add_tuner("tuner-a")
    group.add_tuner("tuner-b")
    wait_until(lambda: all(_ready(t) for t in group.tuners.values()), 120, "both tuners ready")
    jobs = [group.start(name=f"group {i}", num_samples=3, max_concurrent_trials=1, fixed_params=SHORT,
                        search_space=SPACE, seed=i) for i in range(3)]

    def running_with_progress():
        for job_id in jobs:
            job = group.job(job_id)
            done = [t for t in job["trials"] if t["status"] == "completed"]
            if job["owner"] and done and any(t["status"] == "running" for t in job["trials"]):
                return job
        return None
    victim = wait_until(running_with_progress, 600, "a job with a trial done and one running")
    owners = {group.job(j)["owner"] for j in jobs} - {None}
    status = _status(group)
    seen = {t["tuner_id"]: t for t in status["tuners"]}
    assert set(seen) == {"tuner-a", "tuner-b"}, status
    assert str(victim["job_id"]) in seen[victim["owner"]]["jobs"], status
    print(f"owners before the kill: {owners}")

    group.kill(victim["owner"])
    group.add_tuner("tuner-c")  # two alive again

    def all_finished():
        for proc in [*group.services, *group.tuners.values()]:
            assert proc.proc.poll() is None, group.logs()
        found = [group.job(j) for j in jobs]
        return all(j["status"] in ("completed", "failed", "cancelled") for j in found) and found
    finished = wait_until(all_finished, 900, "every job to finish", interval=1)
    for job in finished:
        assert job["status"] == "completed", (job["error"], group.logs())
        summary = [(e["type"], e["claim"], e["payload"].get("trial_id"), e["payload"].get("status"),
                    e["payload"].get("tuner_id"), e["payload"].get("reason")) for e in group.trail(str(job["job_id"]))]
        assert len(job["trials"]) == 3 and all(t["status"] == "completed" for t in job["trials"]), "\n".join(
            map(str, summary))
        _owner_checks(group.trail(str(job["job_id"])))
    taken_over = group.trail(str(victim["job_id"]))
    claims = [e["payload"]["tuner_id"] for e in taken_over if e["type"] == "JobClaimed"]
    assert claims[0] == victim["owner"] and claims[-1] != victim["owner"], claims
