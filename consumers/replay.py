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
from sqlalchemy import func, select

from consumers.migrate import migrate
from consumers.projector import project_records
from schemas import tables, topics
from schemas.db import make_engine
from schemas.event_log import read_to_end
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
    projected = refused = 0
    async for records in read_to_end(bootstrap_servers, topics.EVENTS.name):
        letters = await project_records(engine, records)
        refused += len(letters)
        projected += len(records) - len(letters)
    return {"events_projected": projected, "refused": refused}


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
        raise SystemExit(f"replay refused: {exc}; pick a new --schema or an empty database") from None
    log.info("replay finished", **summary)


if __name__ == "__main__":
    main()
