"""Replay equals live: the read model a live projector built equals a rebuild from offset 0.

Used by every test that puts the system through a fault (a crash, an outage, a takeover) and
must end with the read model the log alone gives.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import select, text

from adapters.database import make_engine
from adapters.event_log import end_offsets
from schemas import tables
from schemas.topics import Topics
from tests.support.waiting import eventually

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


async def projector_caught_up(env: dict, timeout: float = 60) -> None:
    """The live projector's committed offsets reach the events topic's end offsets."""
    topic = Topics(env["TUNIX_TOPIC_PREFIX"]).events.name
    end = await end_offsets(env["KAFKA_BOOTSTRAP_SERVERS"], topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    await admin.start()
    try:
        async def caught_up():
            committed = await admin.list_consumer_group_offsets(env["TUNIX_PROJECTOR_GROUP"])
            return all(
                (committed[tp].offset if tp in committed else 0) >= off
                for tp, off in ((TopicPartition(topic, p), off) for p, off in end.items()))
        await eventually(caught_up, timeout, "projector caught up")
    finally:
        await admin.close()


async def all_rows(engine, table) -> list[tuple]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
        return [tuple(r) for r in rows]


async def assert_replay_equals_live(env: dict, live_engine, tables_to_check=None) -> str:
    """Wait for the projector, replay into a new schema with `tunix-tune replay`, compare every
    table row by row; return the schema's name (dropped afterwards)."""
    await projector_caught_up(env)
    schema = f"replay_{uuid.uuid4().hex[:8]}"
    replay = [sys.executable, "-m", "app.cli.main", "replay", "--schema", schema]  # tunix-tune replay
    done = subprocess.run(replay, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    replayed = make_engine(env["DATABASE_URL"], schema=schema)
    try:
        for table in tables_to_check or (tables.jobs, tables.trials, tables.events, tables.trial_metrics):
            live_rows = await all_rows(live_engine, table)
            assert live_rows, f"{table.name} is empty: the comparison would prove nothing"
            replayed_rows = await all_rows(replayed, table)
            assert replayed_rows == live_rows, (
                f"{table.name}: only live {[r for r in live_rows if r not in replayed_rows][:3]}; "
                f"only replayed {[r for r in replayed_rows if r not in live_rows][:3]}")
    finally:
        await replayed.dispose()
    return schema


async def drop_schema(engine, schema: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
