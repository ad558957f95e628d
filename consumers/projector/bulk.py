"""Bulk statements for the projector's hot path: one round trip per table per batch.

Rows travel as one PostgreSQL array per column (`unnest`), or through COPY, on the asyncpg
connection inside the caller's transaction (see `batch_transaction`). This is several times
faster than SQLAlchemy's executemany for thousands of rows, and the SQL stays derived from
the schemas.tables columns.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from sqlalchemy import BigInteger, DateTime, Float, Integer, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from asyncpg import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_PG_TYPES = [
    (UUID, "uuid"),
    (BigInteger, "int8"),
    (Integer, "int4"),
    (Float, "float8"),
    (DateTime, "timestamptz"),
    (JSONB, "jsonb"),
    (String, "text"),
    (Text, "text"),
]


def _pg_type(column) -> str:
    return next(name for kind, name in _PG_TYPES if isinstance(column.type, kind))


@cache
def _insert_sql(table: Table, on_conflict: str, lowest: tuple[str, ...] = ()) -> str:
    cols = [c.name for c in table.columns]
    arrays = ", ".join(f"${i}::{_pg_type(c)}[]" for i, c in enumerate(table.columns, start=1))
    keys = [c.name for c in table.primary_key.columns]
    if on_conflict == "update":
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
        conflict = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
        if lowest:  # only a row lower by these columns replaces the stored one
            conflict += (f" WHERE ({', '.join(f'excluded.{c}' for c in lowest)}) < "
                         f"({', '.join(f'{table.name}.{c}' for c in lowest)})")
    else:
        conflict = "ON CONFLICT DO NOTHING"
    return (
        f"INSERT INTO {table.name} ({', '.join(cols)}) "
        f"SELECT * FROM unnest({arrays}) {conflict}"
    )


def _json_text(value: Any) -> str:
    """JSONB travels as JSON text (the encoder SQLAlchemy's asyncpg dialect installs)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _column_values(table: Table, rows: list[dict[str, Any]]) -> list[list]:
    values = []
    for column in table.columns:
        if isinstance(column.type, JSONB):
            values.append([_json_text(r[column.name]) for r in rows])
        else:
            values.append([r[column.name] for r in rows])
    return values


@asynccontextmanager
async def batch_transaction(engine: AsyncEngine) -> AsyncIterator[Connection]:
    """A pooled connection's asyncpg driver, inside one asyncpg transaction.

    The transaction is asyncpg's own: SQLAlchemy's adapter sends BEGIN only before statements
    that go through SQLAlchemy, so statements sent to the driver directly would otherwise run
    in autocommit, one by one."""
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        async with driver.transaction():
            yield driver


async def insert_rows(
    conn: Connection, table: Table, rows: list[dict[str, Any]], on_conflict: str, lowest: tuple[str, ...] = ()
) -> None:
    """INSERT rows; on a primary-key conflict either 'update' the row (with `lowest`: only when
    the new row is lower by those columns) or do 'nothing'. Rows must not repeat a key."""
    if rows:
        await conn.execute(
            _insert_sql(table, on_conflict, lowest), *_column_values(table, rows)
        )


async def copy_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """COPY rows that are known to be new (a duplicate key fails the whole transaction)."""
    if rows:
        names = [c.name for c in table.columns]
        columns = _column_values(table, rows)
        await conn.copy_records_to_table(
            table.name, records=list(zip(*columns, strict=True)), columns=names
        )
