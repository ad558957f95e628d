"""The projector: folds the events topic into the PostgreSQL read model.

Batches of records are projected in one database transaction; the Kafka offsets are committed
only after that transaction commits, so a crash replays the batch and the event_id dedupe
makes the replay harmless. A record that is not a valid event, or refers to a job that does
not exist, goes to the dead-letter topic with the reason and its original bytes.

Run it with `tunix-tune serve projector` (or `python -m consumers.projector`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from consumers.read_model import LoggedEvent, apply_batch
from schemas import topics
from schemas.db import make_engine
from schemas.events import parse_event
from schemas.logs import configure_logging
from schemas.settings import Settings

log = structlog.get_logger("projector")
RETRY_BACKOFF_S = 1.0


@dataclass(frozen=True)
class DeadLetter:
    record: ConsumerRecord
    reason: str


def parse_records(records: tuple[ConsumerRecord, ...]) -> tuple[list[LoggedEvent], list[DeadLetter]]:
    """Split a batch into valid events (in log order) and records that are not valid events."""
    parsed, dead = [], []
    for record in records:
        try:
            event = parse_event(record.value)
        except ValidationError as exc:
            dead.append(DeadLetter(record, _describe(exc)))
            continue
        parsed.append(LoggedEvent(event, record.partition, record.offset))
    return parsed, dead


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_url=False)[:5]
    )


async def project_records(
    engine: AsyncEngine, records: tuple[ConsumerRecord, ...]
) -> list[DeadLetter]:
    """Project one batch in one transaction; return the records that belong in the DLQ."""
    parsed, dead = parse_records(records)
    if parsed:
        async with engine.begin() as conn:
            refused = await apply_batch(conn, parsed)
        by_position = {(r.partition, r.offset): r for r in records}
        dead += [
            DeadLetter(by_position[(u.logged.partition, u.logged.offset)], u.reason)
            for u in refused
        ]
    return dead


def build_app(settings: Settings | None = None) -> FastStream:
    settings = settings or Settings()
    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
    engine = make_engine(settings.database_url)
    dead_letters = broker.publisher(
        topics.DEAD_LETTER.name,
        title="dead-letter",
        description="Records the projector could not project: original key and bytes, reason in a header.",
    )

    @broker.subscriber(
        topics.EVENTS.name,
        batch=True,
        group_id=settings.projector_group_id,
        auto_offset_reset="earliest",
        max_records=settings.projector_max_batch,
        ack_policy=AckPolicy.MANUAL,
        title="project-events",
        description="Folds every job and trial event into the PostgreSQL read model.",
    )
    async def project(message: KafkaMessage) -> None:
        records = message.raw_message
        try:
            dead = await project_records(engine, records)
        except Exception:
            log.exception("batch failed; it will be redelivered", size=len(records))
            await asyncio.sleep(RETRY_BACKOFF_S)  # back off so a down database is not hammered
            await message.nack()
            raise
        for letter in dead:
            await _dead_letter(dead_letters, letter)
        await message.ack()
        log.debug("batch projected", size=len(records), dead_lettered=len(dead))

    async def prepare() -> None:
        configure_logging()
        await topics.ensure_topics(settings.kafka_bootstrap_servers)

    async def close() -> None:
        await engine.dispose()

    return FastStream(broker, on_startup=[prepare], after_shutdown=[close])


async def _dead_letter(publisher, letter: DeadLetter) -> None:
    record = letter.record
    origin = f"{record.topic}/{record.partition}/{record.offset}"
    structlog.get_logger("projector").warning(
        "event dead-lettered", origin=origin, reason=letter.reason,
        key=record.key.decode(errors="replace") if record.key else None,
    )
    await publisher.publish(
        record.value,
        key=record.key,
        headers={topics.DLQ_REASON_HEADER: letter.reason, topics.DLQ_ORIGIN_HEADER: origin},
    )


if __name__ == "__main__":
    from consumers.migrate import migrate

    configure_logging()
    migrate()
    asyncio.run(build_app().run())
