"""Rebuild the read model from offset 0 of the event log into an empty schema or database.

The same projection code as the live projector runs over the whole log, up to the end offsets
seen when the replay starts. It reads without a consumer group, so the live projector's
committed offsets are untouched. Records that the live projector dead-lettered (invalid,
misrouted, unknown job) are refused again here and counted, not re-published.

    python -m consumers.projector.replay --schema S | --database-url URL
"""

from __future__ import annotations

import argparse
import asyncio

import structlog
from sqlalchemy import func, select

from adapters.database import make_engine
from adapters.event_log import Security, partition_ids, read_to_end
from adapters.kafka_security import client_options
from adapters.logs import configure_logging
from adapters.migrations import migrate
from adapters.settings import Settings
from consumers.projector.service import project_records
from schemas import tables

log = structlog.get_logger("replay")


class NotEmpty(Exception):
    pass


async def replay(database_url: str, schema: str | None, bootstrap_servers: str, topic: str,
                 security: Security = None) -> dict:
    engine = make_engine(database_url, schema=schema)
    try:
        async with engine.connect() as conn:
            if await conn.scalar(select(func.count()).select_from(tables.events)):
                raise NotEmpty(f"the target {'schema ' + schema if schema else 'database'} already has events")
        partitions = len(await partition_ids(bootstrap_servers, topic, security))
        projected = refused = 0
        async for records in read_to_end(bootstrap_servers, topic, security=security):
            letters = await project_records(engine, records, partitions)
            refused += len(letters)
            projected += len(records) - len(letters)
        return {"events_projected": projected, "refused": refused}
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema", help="new, empty PostgreSQL schema to rebuild into")
    parser.add_argument("--database-url", help="empty database to rebuild into (default DATABASE_URL); "
                        "postgresql://user:password@host:port/db")
    args = parser.parse_args()
    try:
        settings = Settings.from_env()
    except ValueError as exc:  # a contradictory Kafka security setting
        raise SystemExit(f"replay refused: {exc}") from None
    configure_logging(settings.log_format, settings.log_level)
    url = args.database_url or settings.database_url
    try:
        migrate(url, args.schema)
        summary = asyncio.run(replay(url, args.schema, settings.kafka_bootstrap_servers, settings.topics.events.name,
                                     client_options(settings)))
    except ValueError as exc:  # a URL that is not PostgreSQL's, TLS files that do not load
        raise SystemExit(f"replay refused: {exc}") from None
    except NotEmpty as exc:
        raise SystemExit(f"replay refused: {exc}; pick a new --schema or an empty database") from None
    log.info("replay finished", **summary)


if __name__ == "__main__":
    main()
