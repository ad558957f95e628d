"""The api, projector and tuner as real processes on topics, a database and artifacts of their
own, pointed at whichever Kafka and Ray a test brings (a 3-broker cluster, a Ray cluster), and
the HTTP calls every end-to-end test makes against them."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import httpx

from adapters.database import create_database, drop_database
from tests.conftest import Process, free_port
from tests.support.specs import example_spec
from tests.support.waiting import wait_until

TERMINAL = ("completed", "failed", "cancelled")


def start_job(base_url: str, **overrides) -> str:
    """Create a job from the example spec with `overrides` and start it; its id."""
    answer = httpx.post(f"{base_url}/api/tuning/jobs", json=example_spec(**overrides), timeout=30)
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["job_id"]
    assert httpx.post(f"{base_url}/api/tuning/jobs/{job_id}/start", timeout=30).status_code == 202
    return job_id


def wait_for_job(base_url: str, job_id: str, timeout: float, procs: list[Process] = ()) -> dict:
    """The job once it is terminal (a 503 while a server is down is waited out); fails early
    with a process's output if one exits."""
    def finished():
        for proc in procs:
            assert proc.proc.poll() is None, f"{proc.log_path.name} exited:\n{proc.output()}"
        answer = httpx.get(f"{base_url}/api/tuning/jobs/{job_id}", timeout=10)
        return answer.status_code == 200 and answer.json()["status"] in TERMINAL and answer.json()
    return wait_until(finished, timeout, f"job {job_id} to finish", interval=1)


def trail(base_url: str, job_id: str) -> list[dict]:
    return httpx.get(f"{base_url}/api/tuning/jobs/{job_id}/events", timeout=30).json()


class ServiceStack:
    """`with ServiceStack(database_server_url, folder, KAFKA_BOOTSTRAP_SERVERS=..., ...)`;
    `modules` leaves the tuner out when a test runs its own tuners."""

    def __init__(self, database_server_url: str, folder: Path,
                 modules: tuple[str, ...] = ("consumers.projector", "consumers.tuner", "app.main"), **env: str):
        run = uuid.uuid4().hex[:8]
        self.server_url, self.database = database_server_url, f"stack_{run}"
        self.folder = folder
        self.env = {
            **os.environ, "TUNIX_TOPIC_PREFIX": f"stack-{run}", "TUNIX_API_PORT": str(free_port()),
            "TUNIX_PROJECTOR_GROUP": f"stack-{run}", "TUNIX_TUNER_GROUP": f"stack-{run}-tuners",
            "TUNIX_ARTIFACTS_DIR": str(folder / "artifacts"), "TUNIX_STATE_DIR": str(folder / "state"),
            "TUNIX_LOG_FORMAT": "json", **env,
        }
        self.url = f"http://127.0.0.1:{self.env['TUNIX_API_PORT']}"
        self.modules = modules
        self.procs: list[Process] = []

    def __enter__(self) -> "ServiceStack":
        self.env["DATABASE_URL"] = asyncio.run(create_database(self.server_url, self.database))
        self.procs = [Process(m, self.env, self.folder) for m in self.modules]
        wait_until(self._ready, 120, "the service stack ready")
        return self

    def __exit__(self, *_) -> None:
        for proc in self.procs:
            proc.stop()
        asyncio.run(drop_database(self.server_url, self.database))

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200 and all(
                httpx.get(f"{p.probe_url}/readyz", timeout=5).status_code == 200 for p in self.procs if p.probe_url)
        except httpx.HTTPError:
            return False

    def start_job(self, **overrides) -> str:
        return start_job(self.url, **overrides)

    def wait_for_job(self, job_id: str, timeout: float) -> dict:
        return wait_for_job(self.url, job_id, timeout, self.procs)

    def job(self, job_id: str) -> dict:
        return httpx.get(f"{self.url}/api/tuning/jobs/{job_id}", timeout=10).json()

    def trail(self, job_id: str) -> list[dict]:
        return trail(self.url, job_id)
