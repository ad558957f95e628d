"""Trials on an existing multi-node Ray cluster (RAY_ADDRESS): a real head plus a second node
started with `ray start` on this machine, each offering one `trial_slot` (a custom resource),
so a job running two trials at once must use both. The second node is then killed with -9
mid-trial: its trial turns `stale` and Ray runs it again from its checkpoint on the head."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port
from tests.support.service_stack import ServiceStack
from tests.support.waiting import wait_until

RAY = str(Path(__import__("sys").executable).with_name("ray"))  # the venv's ray command


def _ray(*args: str, env: dict) -> None:
    done = subprocess.run([RAY, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _cluster_processes(temp: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(temp in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
def ray_cluster():
    temp = tempfile.mkdtemp(prefix="tunix-rc-", dir="/tmp")  # short: Ray's socket paths have a limit
    port = free_port()
    # Ray 2.60 turns token auth on by itself once ~/.ray/auth_token exists (any local ray.init
    # writes one): every process of the cluster, the tuner included, gets the same token.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **auth}
    common = ["--num-cpus=1", "--object-store-memory=200000000", "--disable-usage-stats"]
    try:
        _ray("start", "--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false",
             '--resources={"trial_slot": 1}', *common, env=env)
        _ray("start", f"--address=127.0.0.1:{port}", '--resources={"trial_slot": 1, "second_node": 1}', *common,
             env=env)
        yield {"address": f"127.0.0.1:{port}", "temp": temp, "auth": auth}
    finally:
        for proc in _cluster_processes(temp):
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        shutil.rmtree(temp, ignore_errors=True)


def _second_raylet(temp: str) -> psutil.Process:
    (raylet,) = [p for p in _cluster_processes(temp)
                 if "raylet" in p.name() and any("second_node" in part for part in p.cmdline())]
    return raylet


def test_trials_spread_over_two_nodes_and_survive_one_killed(ray_cluster, stack, tmp_path):
    with ServiceStack(stack.database_url, tmp_path, KAFKA_BOOTSTRAP_SERVERS=stack.kafka,
                      RAY_ADDRESS=ray_cluster["address"], **ray_cluster["auth"]) as services:
        job_id = services.start_job(
            name="two nodes", num_samples=3, max_concurrent_trials=2, max_trial_retries=2,
            resources_per_trial={"cpu": 1, "custom": {"trial_slot": 1}},
            fixed_params={"max_steps": 100, "eval_every": 10, "batch_size": 32},
            search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}})

        def both_nodes_training():
            assert services.job(job_id)["status"] == "running"
            running = {}
            for e in services.trail(job_id):
                p = e["payload"]
                if e["type"] == "TrialUpdated" and p["status"] == "running" and p.get("node") and (p["iteration"] or 0) >= 2:
                    running[p["trial_id"]] = p["node"]
            return len(set(running.values())) == 2 and running
        on_nodes = wait_until(both_nodes_training, 300, "two trials training, one on each node")
        os.kill(_second_raylet(ray_cluster["temp"]).pid, signal.SIGKILL)

        job = services.wait_for_job(job_id, 600)
        events = services.trail(job_id)
        summary = "\n".join(str((e["payload"].get("trial_id"), e["payload"].get("status"), e["payload"].get("node"),
                                 e["payload"].get("reason"))) for e in events if e["type"] == "TrialUpdated")
        assert job["status"] == "completed", (job["error"], summary)
        assert len(job["trials"]) == 3 and all(t["status"] == "completed" for t in job["trials"]), summary
        stale = [e["payload"] for e in events if e["type"] == "TrialUpdated" and e["payload"]["status"] == "stale"]
        assert len(stale) == 1, summary  # the trial on the killed node, and only it
        lost = stale[0]["trial_id"]
        assert "retry 1 of 2 from its last checkpoint" in stale[0]["reason"], stale[0]["reason"]
        (row,) = [t for t in job["trials"] if t["trial_id"] == lost]
        assert row["node"] != on_nodes[lost], "the retried trial ran again on the node that was killed"
        manifest = json.loads((Path(row["artifact_path"]) / "manifest.json").read_text())
        assert manifest["resumed_at_step"] > 0, manifest  # from its checkpoint, not from step 0
        print(f"nodes {sorted(set(on_nodes.values()))}; {lost} lost its node, resumed at step "
              f"{manifest['resumed_at_step']}: {stale[0]['reason'][:160]}")
