"""One way to open the read-model database, for the gateway, the projector and replay."""

from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def _dumps(value) -> str:
    return orjson.dumps(value).decode()


def make_engine(database_url: str, schema: str | None = None, **kwargs) -> AsyncEngine:
    """An asyncpg engine; `schema` puts the read model in another PostgreSQL schema (replay)."""
    connect_args = {"timeout": 5, "command_timeout": 60}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        database_url,
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        connect_args=connect_args,
        pool_pre_ping=True,
        **kwargs,
    )
