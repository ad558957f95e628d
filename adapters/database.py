"""One way to open the read-model database, for the gateway, the projector and replay."""

from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


_DRIVER_PREFIXES = ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql+psycopg2://",
                    "postgresql://", "postgres://")


def asyncpg_url(database_url: str) -> str:
    """The URL with the asyncpg driver, whichever form it was written in: a plain libpq URL
    (postgresql://, postgres://) or a SQLAlchemy URL naming another driver."""
    for prefix in _DRIVER_PREFIXES:
        if database_url.startswith(prefix):
            return "postgresql+asyncpg://" + database_url.removeprefix(prefix)
    raise ValueError(f"not a PostgreSQL URL: {database_url.split('://')[0]}://... "
                     "(expected postgresql://user:password@host:port/database)")


def _dumps(value) -> str:
    return orjson.dumps(value).decode()


def make_engine(database_url: str, schema: str | None = None, **kwargs) -> AsyncEngine:
    """An asyncpg engine; `schema` puts the read model in another PostgreSQL schema (replay)."""
    connect_args = {"timeout": 5, "command_timeout": 60}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        asyncpg_url(database_url),
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        connect_args=connect_args,
        pool_pre_ping=True,
        **kwargs,
    )


def _server_dsn(database_url: str) -> str:
    return asyncpg_url(database_url).replace("postgresql+asyncpg://", "postgresql://")


def sibling_database_url(database_url: str, name: str) -> str:
    """The URL of database `name` on the same server as `database_url`."""
    return database_url.rpartition("/")[0] + f"/{name}"


async def create_database(database_url: str, name: str) -> str:
    """Create database `name` next to `database_url` (tests, benchmarks); return its URL."""
    import asyncpg

    admin = await asyncpg.connect(_server_dsn(database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return sibling_database_url(database_url, name)


async def drop_database(database_url: str, name: str, timeout_s: float = 15) -> None:
    """Drop database `name`, waiting out sessions that are still closing (an autovacuum
    worker, a process just terminated) instead of failing on them."""
    import asyncio
    import time

    import asyncpg

    deadline = time.monotonic() + timeout_s
    admin = await asyncpg.connect(_server_dsn(database_url))
    try:
        while True:
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
                return
            except asyncpg.ObjectInUseError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


# SQLSTATE classes that say the database cannot take the write now, whatever was written:
# connection (08), rollback (40: serialization, deadlock), resources (53), object state (55),
# operator intervention (57: shutdown, cancel), system (58), internal (XX).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "55", "57", "58", "XX")


def transient(exc: BaseException) -> bool:
    """Whether a failed write may succeed if tried again unchanged (PostgreSQL down, busy or
    restarting), as opposed to a write this data can never make (a poison record)."""
    import asyncpg
    from sqlalchemy import exc as sa

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (OSError, TimeoutError, ConnectionError, asyncpg.InterfaceError, sa.TimeoutError,
                            sa.DisconnectionError)):
            return True
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(exc, asyncpg.PostgresError) and isinstance(sqlstate, str):
            return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
        if isinstance(exc, (sa.OperationalError, sa.InterfaceError)) and getattr(exc, "orig", None) is None:
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False
