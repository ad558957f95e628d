"""`tunix-tune jobs ...` as a user runs it: a subprocess against the real API, Kafka and
PostgreSQL (the watch view with a real tuner is in test_tuning_e2e)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
from rich.console import Console

from app.cli.watch import render
from tests.conftest import REPO, Process, free_port
from tests.support.specs import example_spec
from tests.support.waiting import wait_until


def tunix(api_url: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", "jobs", "--api-url", api_url, *args],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env,
    )


def test_submit_show_start_events_round_trip(api_url, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(example_spec(name="cli round trip")))
    created = tunix(api_url, "submit", str(spec), "--json")
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    assert job["name"] == "cli round trip" and job["status"] == "created"

    shown = json.loads(tunix(api_url, "show", job["job_id"], "--json").stdout)
    assert shown["job_id"] == job["job_id"] and shown["spec"]["num_samples"] == job["spec"]["num_samples"]
    listed = json.loads(tunix(api_url, "list", "--json", "--limit", "200").stdout)
    assert job["job_id"] in [j["job_id"] for j in listed["items"]]

    started = tunix(api_url, "start", job["job_id"])
    assert started.returncode == 0 and "start requested" in started.stdout
    again = tunix(api_url, "start", job["job_id"])
    assert again.returncode == 1 and "409" in again.stderr and "Traceback" not in again.stderr

    trail = tunix(api_url, "events", job["job_id"])
    assert trail.returncode == 0
    kinds = [line.split()[2] for line in trail.stdout.splitlines()]
    assert kinds[:2] == ["JobCreated", "JobStarted"]


def test_a_refused_spec_names_the_field_and_rule(api_url, tmp_path):
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps(example_spec(num_samples=0)))
    refused = tunix(api_url, "submit", str(spec))
    assert refused.returncode == 1
    assert "422" in refused.stderr and "  num_samples: Input should be greater than or equal to 1" in refused.stderr
    assert "Traceback" not in refused.stderr

    missing = tunix(api_url, "submit", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_api_down_is_a_message_not_a_traceback():
    down = tunix(f"http://127.0.0.1:{free_port()}", "list")
    assert down.returncode == 1
    assert "does not answer" in down.stderr and "tunix-tune up" in down.stderr
    assert "Traceback" not in down.stderr


def test_token_from_the_environment_opens_a_protected_api(service_env, tmp_path):
    env = {**service_env, "TUNIX_API_PORT": str(free_port()), "TUNIX_API_TOKEN": "s3cret"}
    api = Process("app.main", env, tmp_path)
    url = f"http://127.0.0.1:{env['TUNIX_API_PORT']}"
    try:
        wait_until(lambda: _healthy(url) or api.proc.poll() is not None, 60, "protected api up")
        assert httpx.get(f"{url}/api/tuning/jobs", timeout=10).status_code == 401
        refused = tunix(url, "list")
        assert refused.returncode == 1 and "401" in refused.stderr and "Bearer" in refused.stderr
        allowed = tunix(url, "list", "--json", env={**service_env, "TUNIX_API_TOKEN": "s3cret"})
        assert allowed.returncode == 0, allowed.stderr
        assert "items" in json.loads(allowed.stdout)
    finally:
        api.stop()


def test_named_tokens_name_the_actor_and_a_read_token_cannot_write(service_env, api_url, tmp_path):
    writer, reader = "tok-alice-0123", "tok-rob-456789"
    env = {**service_env, "TUNIX_API_PORT": str(free_port()),
           "TUNIX_API_TOKENS": f"alice:write:{writer},rob:read:{reader}"}
    api = Process("app.main", env, tmp_path)
    url = f"http://127.0.0.1:{env['TUNIX_API_PORT']}"
    as_alice, as_rob = {"Authorization": f"Bearer {writer}"}, {"Authorization": f"Bearer {reader}"}
    try:
        wait_until(lambda: _healthy(url) or api.proc.poll() is not None, 60, "api with named tokens up")
        assert httpx.get(f"{url}/api/tuning/jobs", timeout=10).status_code == 401
        assert httpx.get(f"{url}/api/tuning/jobs", headers=as_rob, timeout=10).status_code == 200
        created = httpx.post(f"{url}/api/tuning/jobs", json=example_spec(name="by alice"), headers=as_alice, timeout=30)
        assert created.status_code in (201, 202), created.text
        job_id = created.json()["job_id"]
        jobs = f"/api/tuning/jobs/{job_id}"
        for method, path, body in (("POST", "/api/tuning/jobs", example_spec()), ("POST", f"{jobs}/start", None),
                                   ("POST", f"{jobs}/cancel", None), ("PATCH", jobs, {"num_samples": 2}),
                                   ("POST", f"{jobs}/extend", {"num_samples": 1}), ("POST", f"{jobs}/fork", {}),
                                   ("POST", f"{jobs}/promote", {"name": "m"})):
            refused = httpx.request(method, url + path, json=body, headers=as_rob, timeout=30)
            assert refused.status_code == 403 and "rob" in refused.json()["message"], (method, path, refused.text)
        cancelled = httpx.post(f"{url}{jobs}/cancel", json={"reason": "only a test"}, headers=as_alice, timeout=30)
        assert cancelled.status_code == 202, cancelled.text
        trail = wait_until(lambda: (r := httpx.get(f"{url}{jobs}/events", headers=as_rob, timeout=10)).status_code == 200
                           and len(r.json()) == 2 and r.json(), 30, "both commands on the audit trail")
        assert [(e["type"], e["actor"]) for e in trail] == [("JobCreated", "alice"), ("JobCancelRequested", "alice")]
        assert trail[1]["reason"] == "only a test" and writer not in json.dumps(trail)
    finally:
        api.stop()
    log = api.log_path.read_text()
    assert log and writer not in log and reader not in log  # no token value in a log


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_watch_view_shows_progress_best_metrics_and_the_best_trial():
    job = {
        "job_id": "j1", "name": "sweep", "status": "running", "metric_name": "score", "metric_mode": "max",
        "num_samples": 3, "error": None, "best_trial": None,
        "spec": {"search_space": {"learning_rate": {}}},
        "trials": [
            {"trial_id": "t1", "status": "completed", "params": {"learning_rate": 0.003, "max_steps": 100,
             "eval_every": 50}, "metrics": {"score": 91.0}, "iteration": 3, "reason": None,
             "run_id": "r1", "artifact_path": "/a/t1"},
            {"trial_id": "t2", "status": "running", "params": {"learning_rate": 0.001, "max_steps": 100,
             "eval_every": 50}, "metrics": {"score": 40.0}, "iteration": 1, "reason": None,
             "run_id": "r2", "artifact_path": "/a/t2"},
        ],
    }
    history = [{"trial_id": "t2", "points": [{"metrics": {"score": 55.0}}, {"metrics": {"score": 40.0}}]}]
    console = Console(record=True, width=200)
    console.print(render(job, history))
    text = console.export_text()
    assert "1/3 done, 1 running" in text
    row = next(line for line in text.splitlines() if line.lstrip().startswith("t2"))
    assert "0.001" in row and "40" in row and "55" in row  # latest and best-so-far differ
    assert "best so far: trial t1  score=91" in text


def test_models_list_shows_what_jobs_can_train(api_url):
    listed = subprocess.run([sys.executable, "-m", "app.cli.main", "models", "--api-url", api_url, "list", "--json"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    (tiny,) = [m for m in json.loads(listed.stdout) if m["model_id"] == "tiny-gemma3"]
    assert (tiny["source"], tiny["family"], tiny["parameters"], tiny["fits_lora"]) == ("built-in", "gemma3", 88_832, True)
    table = subprocess.run([sys.executable, "-m", "app.cli.main", "models", "--api-url", api_url, "list"],
                           capture_output=True, text=True, timeout=120, cwd=REPO)
    assert table.returncode == 0 and "tiny-gemma3" in table.stdout and "88,832" in table.stdout
