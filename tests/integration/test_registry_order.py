"""Two jobs' promotions that claim the same model version (another system's events can) sit on two
partitions, which a live projector and a replay interleave differently. The registry keeps the
same promotion either way (the earliest, then the lowest event id), so replaying the log rebuilds
the same registry: here the two orders are projected on real PostgreSQL, in one batch and in two."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import asyncpg
import orjson
import pytest

from adapters.database import create_database, drop_database
from adapters.migrations import migrate
from consumers.projector.read_model import apply_batch
from consumers.records import LoggedEvent
from schemas import events as ev
from schemas.job_spec import JobSpec
from tests.support.specs import example_spec

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _promoted(job_id: uuid.UUID, seconds: int, path: str) -> ev.ModelPromoted:
    return ev.ModelPromoted(job_id=job_id, source="another-system", occurred_at=T0.replace(second=seconds),
                            payload=ev.ModelPromotedPayload(
                                name="shared", version=1, stage="candidate", trial_id="t", path=path, source_path="/x",
                                metric_name="score", metric=1.0, params={}))


async def _registry(admin_url: str, batches: list[list[ev.Event]]) -> list[tuple]:
    name = f"registry_{uuid.uuid4().hex[:8]}"
    url = await create_database(admin_url, name)
    try:
        await asyncio.to_thread(migrate, url)
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        # JSONB as JSON text, the codec SQLAlchemy's asyncpg dialect installs for the projector.
        await conn.set_type_codec("jsonb", encoder=lambda s: b"\x01" + s.encode(),
                                  decoder=lambda b: orjson.loads(b[1:]), schema="pg_catalog", format="binary")
        try:
            offset = 0
            for batch in batches:
                async with conn.transaction():
                    assert await apply_batch(conn, [LoggedEvent(e, 0, offset + i) for i, e in enumerate(batch)]) == []
                offset += len(batch)
            return [tuple(r) for r in await conn.fetch("SELECT name, version, path, event_id FROM tunix_model_versions")]
        finally:
            await conn.close()
    finally:
        await drop_database(admin_url, name)


@pytest.mark.asyncio
async def test_a_version_two_jobs_claim_is_held_by_the_same_promotion_in_any_order(stack):
    spec = JobSpec.model_validate(example_spec())
    one, two = uuid.uuid4(), uuid.uuid4()
    created = [ev.JobCreated(job_id=j, source="t", occurred_at=T0, payload=ev.JobCreatedPayload(spec=spec)) for j in (one, two)]
    early, late = _promoted(two, 5, "/registry/early"), _promoted(one, 9, "/registry/late")
    found = [await _registry(stack.database_url, batches) for batches in (
        [[*created, early, late]], [[*created, late, early]], [[*created, late], [early]], [[*created, early], [late]])]
    assert found == [[("shared", 1, "/registry/early", early.event_id)]] * 4
