"""Several tuners as one consumer group on the real stack: jobs spread over them, and a tuner
killed with -9 hands nothing over, yet its jobs finish on the others with exactly num_samples
trials, none run twice, every accepted event from the job's owner at the time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone

import httpx
import pytest

from tests.conftest import REPO, Process
from tests.support.service_stack import ServiceStack
from tests.support.waiting import wait_until

SHORT = {"max_steps": 60, "eval_every": 10, "batch_size": 32}
SPACE = {"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}}


class Group(ServiceStack):
    """api + projector (ServiceStack) and any number of tuners, sharing the artifacts folder."""

    def __init__(self, database_server_url: str, folder, **env: str):
        super().__init__(database_server_url, folder, ("consumers.projector", "app.main"), **env)
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

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path}\n{p.output()}" for p in [*self.procs, *self.tuners.values()])

    def __exit__(self, *exc) -> None:
        for tuner in self.tuners.values():
            tuner.stop()
        super().__exit__(*exc)


@pytest.fixture
def group(stack, tmp_path):
    with Group(stack.database_url, tmp_path, KAFKA_BOOTSTRAP_SERVERS=stack.kafka,
               TUNIX_TUNER_SESSION_TIMEOUT_S="6", TUNIX_TUNER_PROBE_PORT="") as group:
        yield group


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


def _budget_counted_from_the_log(trail: list[dict]) -> None:
    """Each claim's budget_spent_s is what the log shows the earlier owners spent: from each
    claim to the last event published under it."""
    spent, claimed_at, last_seen = 0.0, None, None
    for event in trail:
        at = datetime.fromisoformat(event["occurred_at"])
        if event["type"] == "JobClaimed":
            if claimed_at is not None:
                spent += (last_seen - claimed_at).total_seconds()
            assert abs(event["payload"]["budget_spent_s"] - spent) < 0.01, (event["payload"], spent)
            claimed_at = last_seen = at
        elif event["claim"] is not None:
            last_seen = max(last_seen, at)
    assert spent > 0


def _most_running_at_once(trail: list[dict]) -> int:
    """From the log: the most trials that were running at the same time."""
    running, most = set(), 0
    for e in trail:
        if e["type"] == "TrialUpdated":
            (running.add if e["payload"]["status"] == "running" else running.discard)(e["payload"]["trial_id"])
            most = max(most, len(running))
    return most


def test_jobs_spread_over_tuners_and_survive_their_owner_killed_three_times(group):
    group.add_tuner("tuner-1")
    group.add_tuner("tuner-2")
    wait_until(lambda: all(_ready(t) for t in group.tuners.values()), 120, "both tuners ready")
    victim = group.start_job(name="killed thrice", num_samples=4, max_concurrent_trials=1, fixed_params=SHORT,
                         search_space=SPACE, seed=1, time_budget_s=3600)
    others = [group.start_job(name=f"bystander {i}", num_samples=2, max_concurrent_trials=1, fixed_params=SHORT,
                          search_space=SPACE, seed=i) for i in (2, 3)]
    jobs = [victim, *others]

    killed, kill_times, claims = [], [], 0  # claims of the victim seen when its last owner was killed
    for kill in range(3):

        def owner_training():
            trail = group.trail(victim)
            owned = [e for e in trail if e["type"] == "JobClaimed"]
            progress = [e for e in trail if e["claim"] == len(owned) and e["type"] == "TrialUpdated"
                        and e["payload"]["status"] == "running" and e["payload"]["iteration"]]
            job = group.job(victim)
            return len(owned) > claims and progress and job["status"] == "running" and job["owner"]
        owner = wait_until(owner_training, 600, f"the victim training under a new owner (kill {kill + 1})")
        if kill == 0:  # `status` shows both tuners and which one runs the job
            seen = {t["tuner_id"]: t for t in _status(group)["tuners"]}
            assert set(seen) == {"tuner-1", "tuner-2"} and victim in seen[owner]["jobs"], seen
        claims = len([e for e in group.trail(victim) if e["type"] == "JobClaimed"])
        group.kill(owner)
        killed.append(owner)
        kill_times.append(datetime.now(timezone.utc))
        group.add_tuner(f"tuner-{kill + 3}")  # two alive again

    def all_finished():
        for proc in [*group.procs, *group.tuners.values()]:
            assert proc.proc.poll() is None, group.logs()
        found = [group.job(j) for j in jobs]
        return all(j["status"] in ("completed", "failed", "cancelled") for j in found) and found
    finished = wait_until(all_finished, 900, "every job to finish", interval=1)
    for job in finished:
        trail = group.trail(str(job["job_id"]))
        summary = "\n".join(str((e["type"], e["claim"], e["payload"].get("trial_id"), e["payload"].get("status"),
                                 e["payload"].get("tuner_id"), e["payload"].get("reason"))) for e in trail)
        assert job["status"] == "completed", (job["error"], summary)
        assert len(job["trials"]) == job["num_samples"], summary
        assert all(t["status"] == "completed" for t in job["trials"]), summary
        _owner_checks(trail)
        assert _most_running_at_once(trail) <= job["max_concurrent_trials"], summary
    _budget_counted_from_the_log(group.trail(victim))
    # Killed while training: its trials were left running; the next owner marked them stale.
    stale = [e["payload"]["reason"] for e in group.trail(victim)
             if e["type"] == "TrialUpdated" and e["payload"]["status"] == "stale"]
    assert stale and all("stopped without handing it over" in reason for reason in stale), stale
    claimed = [e for e in group.trail(victim) if e["type"] == "JobClaimed"]
    claimed_by = [e["payload"]["tuner_id"] for e in claimed]
    assert set(killed) <= set(claimed_by) and claimed_by[-1] not in killed, (killed, claimed_by)
    takeovers = [min((datetime.fromisoformat(e["occurred_at"]) - at).total_seconds()
                     for e in claimed if datetime.fromisoformat(e["occurred_at"]) > at) for at in kill_times]
    print(f"victim claimed by {claimed_by}; killed {killed}; kill -> next claim: "
          + ", ".join(f"{s:.1f}s" for s in takeovers) + f" (session timeout {group.env['TUNIX_TUNER_SESSION_TIMEOUT_S']}s)")
