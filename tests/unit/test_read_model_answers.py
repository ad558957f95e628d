"""The read model's answers: only an unreachable database is a 503 (any other OSError is a 500
naming an error id), a job is serialised off the event loop, and compare reads each job once."""

from __future__ import annotations

import socket
import threading
import uuid

import httpx
import pytest
from structlog.testing import capture_logs

from adapters.database import make_engine
from adapters.publisher import Unavailable
from adapters.settings import Settings
from app.main import create_app
from service.read.queries import Queries, cost_of
from tests.unit.fakes import fake_gateway
from tests.unit.test_steering_rules import LR, _parent


class _Jobs(Queries):
    """Queries over jobs in memory, counting reads."""

    def __init__(self, jobs):
        super().__init__(engine=None)
        self.jobs = {j.job_id: j for j in jobs}
        self.reads = []

    async def get_job(self, job_id, as_of=None):
        self.reads.append(job_id)
        return self.jobs[job_id]


class _Failing(_Jobs):
    def __init__(self, error: Exception):
        super().__init__([])
        self.error = error

    async def get_job(self, job_id, as_of=None):
        raise self.error


async def _get(queries, url: str) -> httpx.Response:
    app = create_app(Settings(), gateway=fake_gateway(), queries=queries)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.get(url)


def _job():
    job = _parent({"learning_rate": LR}, {}, [({"learning_rate": 1e-3}, 1.0, "completed")])
    return job.model_copy(update={"cost": cost_of(job.trials)})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_database_that_cannot_be_reached_is_unavailable():
    engine = make_engine(f"postgresql+asyncpg://tunix:tunix@127.0.0.1:{_free_port()}/tunix")
    try:
        with pytest.raises(Unavailable) as down:
            await Queries(engine).job_status(uuid.uuid4())
    finally:
        await engine.dispose()
    assert down.value.service == "postgres"


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), PermissionError(13, "Read-only"),
                                   TimeoutError()])
async def test_an_oserror_that_is_not_the_database_is_a_500_with_an_error_id(error):
    with capture_logs() as logged:
        answer = await _get(_Failing(error), f"/api/tuning/jobs/{uuid.uuid4()}")
    assert answer.status_code == 500 and answer.json()["error"] == "internal_error"
    [entry] = [e for e in logged if e["event"] == "unexpected error"]
    assert entry["error_id"] in answer.json()["message"]


async def test_the_unreachable_database_is_a_503():
    answer = await _get(_Failing(Unavailable("postgres", "cannot reach the read model")),
                        f"/api/tuning/jobs/{uuid.uuid4()}")
    assert answer.status_code == 503 and answer.json()["error"] == "postgres_unavailable"


async def test_compare_reads_each_job_once():
    first, second = (_job() for _ in range(2))
    queries = _Jobs([first, second])
    ids = [first.job_id, second.job_id, first.job_id, first.job_id]
    answer = await _get(queries, "/api/tuning/compare?" + "&".join(f"jobs={i}" for i in ids))
    assert answer.status_code == 200
    assert [row["job_id"] for row in answer.json()] == [str(first.job_id), str(second.job_id)]
    assert queries.reads == [first.job_id, second.job_id]


async def test_a_job_is_serialised_off_the_event_loop():
    threads = []
    parent = _job()

    class Recording(type(parent)):
        def model_dump(self, **kwargs):
            threads.append(threading.current_thread())
            return super().model_dump(**kwargs)

    job = Recording.model_validate(parent.model_dump())
    answer = await _get(_Jobs([job]), f"/api/tuning/jobs/{job.job_id}")
    assert answer.status_code == 200 and answer.json()["job_id"] == str(job.job_id)
    assert threads and threading.main_thread() not in threads
