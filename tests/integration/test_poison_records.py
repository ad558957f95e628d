"""No record stops the projector: events at the edges of every contract, produced as another
system would, are each projected or dead-lettered, and the valid events after them project.
A record the database still refuses is dead-lettered alone; a database that is down is retried."""

from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka import AIOKafkaProducer, ConsumerRecord
from pydantic import ValidationError
from sqlalchemy import select, text

from adapters.database import create_database, drop_database, make_engine, transient
from adapters.migrations import migrate
from consumers.projector.service import project_records
from schemas import events as ev
from schemas import tables
from schemas.topics import DLQ_MAX_VALUE, DLQ_REASON_HEADER, DLQ_TRUNCATED_HEADER
from service.read.projection import fenced, project_job, row_refusal
from tests.support.extreme_events import encode, extreme_stream, valid_created
from tests.support.kafka_log import read_all
from tests.support.session import TOPICS
from tests.support.waiting import eventually

SEED = 18  # the stream is drawn from a seed, so a failure can be replayed exactly


async def _projected(db, event_ids: list[str]) -> set[str]:
    async with db.connect() as conn:
        rows = await conn.execute(select(tables.events.c.event_id).where(
            tables.events.c.event_id.in_([uuid.UUID(e) for e in event_ids])))
        return {str(r[0]) for r in rows}


async def _job(db, job_id):
    async with db.connect() as conn:
        row = (await conn.execute(select(tables.jobs).where(tables.jobs.c.job_id == job_id))).first()
    return row and dict(row._mapping)


async def _dead_letters(stack, values: set[bytes]) -> dict[bytes, str]:
    return {r.value: dict(r.headers)[DLQ_REASON_HEADER].decode()
            for r in await read_all(stack.kafka, TOPICS.dead_letter.name) if r.value in values}


async def test_a_time_outside_the_calendar_is_dead_lettered_and_its_batch_projects(db, producer, stack, processes):
    bad_id, good_id = uuid.uuid4(), uuid.uuid4()
    bad = {**json.loads(ev.serialize_event(valid_created(bad_id, "year 0"))), "occurred_at": "0001-01-01T00:00:00+14:00"}
    # Sent together, so both land in one of the projector's batches.
    await producer.send(TOPICS.events.name, encode(bad), key=str(bad_id).encode())
    await producer.send(TOPICS.events.name, ev.serialize_event(valid_created(good_id, "next to year 0")),
                        key=str(good_id).encode())
    await producer.flush()

    assert (await eventually(lambda: _job(db, good_id), 20, "the valid job projected"))["name"] == "next to year 0"
    letters = await eventually(lambda: _dead_letters(stack, {encode(bad)}), 20, "the year-0 event dead-lettered")
    assert "occurred_at" in letters[encode(bad)] and "between 1970-01-01 and 9999-12-31" in letters[encode(bad)]
    assert await _job(db, bad_id) is None and processes["projector"].proc.poll() is None


async def test_a_record_too_large_to_copy_is_dead_lettered_cut_and_the_projector_goes_on(db, stack, processes):
    """gzip lets another system put more than a dead letter may hold on the events topic."""
    job_id, after = uuid.uuid4(), uuid.uuid4()
    body = ev.serialize_event(ev.JobStarted(job_id=job_id, source="another-system"))
    huge = body[:-1] + b" " * 1_200_000 + b"}"
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, compression_type="gzip", max_request_size=4_000_000)
    await producer.start()
    try:
        await producer.send_and_wait(TOPICS.events.name, huge, key=str(job_id).encode())
        await producer.send_and_wait(TOPICS.events.name, ev.serialize_event(valid_created(after, "after the giant")),
                                     key=str(after).encode())
    finally:
        await producer.stop()

    await eventually(lambda: _job(db, after), 30, "the event after the giant projected")

    async def letter():
        found = [r for r in await read_all(stack.kafka, TOPICS.dead_letter.name) if r.key == str(job_id).encode()]
        return found and found[0]
    record = await eventually(letter, 30, "the giant dead-lettered")
    headers = {k: v.decode() for k, v in record.headers}
    assert headers[DLQ_TRUNCATED_HEADER] == str(len(huge)) and huge.startswith(record.value)
    assert len(record.value) == DLQ_MAX_VALUE and f"{len(huge)} bytes" in headers[DLQ_REASON_HEADER]
    assert processes["projector"].proc.poll() is None


def _expected_fates(stream) -> dict[str, str]:
    """What the projector's rules make of each event: projected, dead-lettered, or ignored
    (fenced: from a superseded claim, on the log only)."""
    rows, fates = {}, {}
    for job_id, body in stream:
        try:
            event = ev.parse_event(encode(body))
        except ValidationError:
            fates[body["event_id"]] = "dead-lettered"
            continue
        row = rows.get(job_id)
        if row_refusal(row, event) is not None:
            fates[body["event_id"]] = "dead-lettered"
        elif fenced(row, event):
            fates[body["event_id"]] = "ignored"
        else:
            rows[job_id], fates[body["event_id"]] = project_job(row, event), "projected"
    return fates


async def test_events_at_every_edge_are_each_projected_or_dead_lettered(db, producer, stack, processes):
    stream = extreme_stream(SEED, jobs=12)
    for job_id, body in stream:
        await producer.send(TOPICS.events.name, encode(body), key=str(job_id).encode())
    sentinels = [uuid.uuid4() for _ in range(3)]  # after the stream, on other partitions too
    for job_id in sentinels:
        await producer.send(TOPICS.events.name, ev.serialize_event(valid_created(job_id, "after the edges")),
                            key=str(job_id).encode())
    await producer.flush()

    for job_id in sentinels:
        await eventually(lambda: _job(db, job_id), 60, "the valid events after the stream projected")
    sent = {body["event_id"]: encode(body) for _, body in stream}
    fates = _expected_fates(stream)
    should_project = {e for e, fate in fates.items() if fate == "projected"}
    should_dead_letter = {sent[e] for e, fate in fates.items() if fate == "dead-lettered"}
    async def all_projected():  # polled: a partition without a sentinel may still be in flight
        return await _projected(db, list(sent)) == should_project
    await eventually(all_projected, 30, "exactly the events the rules accept projected")
    letters = await eventually(lambda: _all_dead_lettered(stack, should_dead_letter), 30, "the rest dead-lettered")
    assert should_project and letters, "the stream holds both kinds"
    print(f"{len(sent)} events at the edges: {len(should_project)} projected, {len(letters)} dead-lettered, "
          f"{len(sent) - len(should_project) - len(should_dead_letter)} ignored (fenced)")
    assert processes["projector"].proc.poll() is None


async def _all_dead_lettered(stack, values: set[bytes]) -> dict[bytes, str] | None:
    found = await _dead_letters(stack, values)
    return found if set(found) == values else None


def _record(event: ev.Event, offset: int) -> ConsumerRecord:
    value = ev.serialize_event(event)
    return ConsumerRecord(topic="t", partition=0, offset=offset, timestamp=0, timestamp_type=0, key=event.key(),
                          value=value, checksum=None, serialized_key_size=0, serialized_value_size=len(value),
                          headers=())


async def test_a_record_the_database_refuses_is_refused_alone_and_an_outage_is_retried(stack):
    """In-process over a database of its own: its trigger and read-only switch touch no other test."""
    url = await create_database(stack.database_url, f"poison_{uuid.uuid4().hex[:8]}")
    engine = make_engine(url)
    try:
        await asyncio.to_thread(migrate, url)  # alembic runs its own event loop
        # A rule of this database that the contracts do not know: the write of one job fails.
        async with engine.begin() as conn:
            await conn.execute(text(
                "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN IF NEW.name = 'poison' THEN "
                "RAISE EXCEPTION 'no poison here' USING ERRCODE = '22023'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"))
            await conn.execute(text(f"CREATE TRIGGER refuse_poison BEFORE INSERT ON {tables.jobs.name} "
                                    "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"))
        ids = [uuid.uuid4() for _ in range(3)]
        records = tuple(_record(valid_created(job_id, name), offset)
                        for offset, (job_id, name) in enumerate(zip(ids, ("before", "poison", "after"))))
        refused = await project_records(engine, records, partitions=1)
        assert [(r.record.offset, r.reason.split(":")[0]) for r in refused] == [(1, "cannot be projected")]
        assert "no poison here" in refused[0].reason
        async with engine.connect() as conn:
            names = set((await conn.execute(select(tables.jobs.c.name))).scalars())
        assert names == {"before", "after"}

        # A database that went read-only (a failover to a standby) refuses every write: retried, not poison.
        name = url.rsplit("/", 1)[1]
        async with engine.begin() as conn:
            await conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        read_only = make_engine(url)
        try:
            fresh = tuple(_record(valid_created(uuid.uuid4(), "on a standby"), offset) for offset in range(2))
            try:
                await project_records(read_only, fresh, partitions=1)
                raise AssertionError("a read-only database must raise (the batch is retried)")
            except Exception as exc:  # noqa: BLE001 - whichever error the driver gives, it must read as transient
                assert transient(exc) and "read-only" in str(exc), repr(exc)
        finally:
            await read_only.dispose()

        down = make_engine(url.rsplit("@", 1)[0] + "@127.0.0.1:1/" + url.rsplit("/", 1)[1])
        try:
            await project_records(down, records, partitions=1)
            raise AssertionError("a database that cannot be reached must raise (the batch is retried)")
        except Exception as exc:  # noqa: BLE001 - whichever error the driver gives, it must read as transient
            assert transient(exc), repr(exc)
        finally:
            await down.dispose()
    finally:
        await engine.dispose()
        await drop_database(stack.database_url, url.rsplit("/", 1)[1])
