"""The read model's job answers are built off the event loop, against the real PostgreSQL: a
job's trials are validated into its answer in a worker thread (a 10,000-trial job is CPU work),
now and as of a point of its log."""

from __future__ import annotations

import threading
from uuid import UUID

from service.read import queries as queries_module
from service.read.queries import Queries
from tests.support.specs import example_spec
from tests.support.waiting import eventually


async def test_a_job_is_built_off_the_event_loop_now_and_as_of(client, db, monkeypatch):
    created = await client.post("/api/tuning/jobs", json=example_spec())
    assert created.status_code in (201, 202), created.text
    job_id = UUID(created.json()["job_id"])

    async def projected():
        return (await client.get(f"/api/tuning/jobs/{job_id}")).status_code == 200

    await eventually(projected, 30, "the job projected")
    threads = []
    real = queries_module._job_out

    def recording(*args):
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(queries_module, "_job_out", recording)
    now = await Queries(db).get_job(job_id)
    then = await Queries(db).get_job(job_id, as_of=now.log_position)
    assert now.job_id == then.job_id == job_id and len(threads) == 2
    assert threading.current_thread() not in threads  # the loop's thread never built one
