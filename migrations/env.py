"""Alembic environment: runs migrations over asyncpg, optionally inside another schema (replay)."""

import asyncio

from alembic import context
from sqlalchemy import text

from adapters.database import make_engine
from adapters.settings import Settings
from schemas.tables import metadata

config = context.config
# Set by adapters.migrations.migrate; the environment only for a bare `alembic upgrade`.
database_url = config.attributes.get("database_url") or Settings.from_env().database_url
schema = config.attributes.get("schema") or context.get_x_argument(as_dictionary=True).get("schema")


def _run(sync_conn) -> None:
    context.configure(connection=sync_conn, target_metadata=metadata, version_table_schema=schema)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = make_engine(database_url, schema=schema)
    async with engine.begin() as conn:
        if schema:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
asyncio.run(_main())
