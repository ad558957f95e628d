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


# SQLSTATE classes of a write this data can never make, however often it is tried: cardinality
# (21), data exceptions (22: out of range, bad encoding), integrity constraints (23), program
# limits (54: a value too large). Any other refusal (read-only after a failover, a missing
# database or role, revoked rights, a plan cached before a migration) is the database's state,
# not the data's: the batch is retried, never dead-lettered.
_POISON_SQLSTATE_CLASSES = ("21", "22", "23", "54")
# What the fold's rules and the drivers' encoders raise for a value they cannot take.
_POISON_VALUES = (ValueError, TypeError, LookupError, ArithmeticError, AttributeError, RecursionError)


def transient(exc: BaseException) -> bool:
    """Whether a failed write may succeed if tried again unchanged (PostgreSQL down, busy,
    read-only or restarting), as opposed to a write this data can never make (a poison record).
    When in doubt, transient: retrying stalls a partition visibly, dead-lettering loses events."""
    import asyncpg
    from sqlalchemy import exc as sa

    top, seen = exc, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(exc, asyncpg.PostgresError) and isinstance(sqlstate, str):
            return sqlstate[:2] not in _POISON_SQLSTATE_CLASSES
        if isinstance(exc, (OSError, TimeoutError, ConnectionError, asyncpg.InterfaceError, sa.TimeoutError,
                            sa.DisconnectionError)):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return not isinstance(top, _POISON_VALUES)
