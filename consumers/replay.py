"""Rebuild the read model from offset 0 of the event log into an empty schema or database.

The same projection code as the live projector runs over the whole log, up to the end offsets
seen when the replay starts. It reads without a consumer group, so the live projector's
committed offsets are untouched. Records that the live projector dead-lettered are refused
again here and counted, not re-published.
"""

from __future__ import annotations

import argparse
import asyncio

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from consumers.migrate import migrate
from consumers.projector import project_records
from schemas import tables, topics
from schemas.db import make_engine
from schemas.logs import configure_logging
from schemas.settings import Settings

log = structlog.get_logger("replay")


class NotEmpty(Exception):
    pass


async def replay(database_url: str, schema: str | None, bootstrap_servers: str) -> dict:
    engine = make_engine(database_url, schema=schema)
    try:
        async with engine.connect() as conn:
            if await conn.scalar(select(func.count()).select_from(tables.events)):
                raise NotEmpty(f"the target {'schema ' + schema if schema else 'database'} already has events")
        return await _consume_to_end(engine, bootstrap_servers)
    finally:
        await engine.dispose()


async def _consume_to_end(engine, bootstrap_servers: str) -> dict:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(topics.EVENTS.name, p)
            for p in sorted(consumer.partitions_for_topic(topics.EVENTS.name) or ())
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        remaining = {tp for tp in parts if end[tp] > 0}
        projected = dead = 0
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            records = tuple(r for tp in sorted(batches, key=lambda tp: tp.partition)
                            for r in batches[tp] if r.offset < end[tp])
            if records:
                letters = await project_records(engine, records)
                dead += len(letters)
                projected += len(records) - len(letters)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return {"events_projected": projected, "refused": dead,
                "end_offsets": {tp.partition: end[tp] for tp in parts}}
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema", help="new, empty PostgreSQL schema to rebuild into")
    parser.add_argument("--database-url", help="empty database to rebuild into (default DATABASE_URL)")
    args = parser.parse_args()
    configure_logging()
    settings = Settings()
    url = args.database_url or settings.database_url
    migrate(url, args.schema)
    try:
        summary = asyncio.run(replay(url, args.schema, settings.kafka_bootstrap_servers))
    except NotEmpty as exc:
        raise SystemExit(f"replay refused: {exc}; pick a new --schema or an empty database")
    log.info("replay finished", **summary)


if __name__ == "__main__":
    main()
