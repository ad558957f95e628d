"""Projector throughput against a raw asyncpg bulk insert of the same rows, in one run.

1. Publish N TrialUpdated events (plus the JobCreated events they belong to) to fresh topics.
2. Start the real projector process on a fresh database; time from its first projected
   event until the read model holds all N (its start-up is not counted).
3. In the same run, insert the same final rows (events, jobs, trials, metric history), prepared
   beforehand, straight through asyncpg into fresh databases: once with executemany INSERTs,
   once with COPY (the floor any projector could reach). Only the inserts are timed.
Prints the rates and the ratios projector / raw.

    .venv/bin/python benchmarks/projector_throughput.py [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUN = uuid.uuid4().hex[:8]

from aiokafka import AIOKafkaProducer  # noqa: E402

from adapters.database import create_database, drop_database  # noqa: E402
from adapters.event_log import ensure_topics  # noqa: E402
from adapters.migrations import migrate  # noqa: E402
from adapters.settings import Settings  # noqa: E402
from consumers.projector.bulk import _column_values  # noqa: E402
from consumers.projector.read_model import event_row  # noqa: E402
from consumers.records import LoggedEvent  # noqa: E402
from service.read.projection import metric_point, project_job, project_trial  # noqa: E402
from schemas import events as ev  # noqa: E402
from schemas import tables  # noqa: E402
from schemas.job_spec import JobSpec  # noqa: E402
from schemas.topics import Topics  # noqa: E402

TOPICS = Topics(f"bench-{RUN}.tuning")  # fresh topics for this run

JOBS, TRIALS_PER_JOB = 50, 20
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_events(n: int) -> list[ev.Event]:
    spec = JobSpec.model_validate({
        "name": "bench", "dataset_key": "ungar_hcd-v1", "base_model_id": "tiny",
        "metric_name": "score", "metric_mode": "max", "num_samples": TRIALS_PER_JOB,
        "max_concurrent_trials": 4,
        "search_space": {"learning_rate": {"type": "loguniform", "min": 1e-5, "max": 1e-2}},
    })
    jobs = [uuid.uuid4() for _ in range(JOBS)]
    out: list[ev.Event] = [
        ev.JobCreated(job_id=j, source="bench", occurred_at=T0, payload=ev.JobCreatedPayload(spec=spec))
        for j in jobs
    ]
    trials = [(j, f"trial_{k:03d}") for j in jobs for k in range(TRIALS_PER_JOB)]
    for i in range(n):
        job_id, trial_id = trials[i % len(trials)]
        step = i // len(trials)
        out.append(ev.TrialUpdated(
            job_id=job_id, source="bench", occurred_at=T0 + timedelta(milliseconds=i),
            payload=ev.TrialUpdatedPayload(
                trial_id=trial_id, status="running", iteration=step,
                params={"learning_rate": 1e-3, "batch_size": 16},
                metrics={"train_loss": 1.0 / (step + 1), "eval_loss": 1.1 / (step + 1), "score": float(step)},
            )))
    return out


async def publish(bootstrap: str, events: list[ev.Event]) -> float:
    await ensure_topics(bootstrap, TOPICS.all)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(TOPICS.events.name, ev.serialize_event(e), key=e.key()) for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def measure_projector(settings: Settings, url: str, expected: int) -> float:
    await asyncio.to_thread(migrate, url)
    env = {**os.environ, "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "TUNIX_PROJECTOR_GROUP": f"bench-{RUN}", "TUNIX_LOG_LEVEL": "WARNING",
           "TUNIX_TOPIC_PREFIX": TOPICS.prefix,
           "TUNIX_PROJECTOR_PROBE_PORT": "0"}  # any free port: a local stack may hold 8001
    proc = subprocess.Popen([sys.executable, "-m", "consumers.projector"], env=env, cwd=ROOT)
    started = time.perf_counter()
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        first = None
        while True:
            count = await conn.fetchval("select count(*) from tunix_tuning_events")
            now = time.perf_counter()
            if count and first is None:
                first, first_count = now, count
            if count >= expected:
                # Counted from the first projected event seen; when the whole log was projected
                # between two polls, from the projector's start instead (a smoke-sized run).
                if count == first_count:
                    return expected / (now - started)
                return (expected - first_count) / (now - first)
            if proc.poll() is not None:
                raise SystemExit("the projector exited early")
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
        proc.terminate()
        proc.wait(timeout=30)


def read_model_rows(events: list[ev.Event]) -> dict[str, list[tuple]]:
    """The rows the projector ends up with for these events, built by its own rules and row
    builders (service.read.projection, consumers.projector.read_model.event_row) and laid out in
    schemas.tables' column order by its own bulk writer's code: a column a migration adds and the
    rules do not fill is a KeyError here, so the benchmark cannot drift from the read model."""
    jobs: dict = {}
    trials: dict = {}
    points: dict = {}
    for e in events:
        if isinstance(e, ev.TrialUpdated):
            key = (e.job_id, e.payload.trial_id)
            trial = project_trial(trials.get(key), e)
            if trial is not None:
                trials[key] = trial
                if (point := metric_point(e)) is not None:
                    points.setdefault((*key, point["step"]), point)
        jobs[e.job_id] = project_job(jobs.get(e.job_id), e)
    rows = {
        tables.events: [event_row(LoggedEvent(e, 0, i)) for i, e in enumerate(events)],
        tables.jobs: list(jobs.values()),
        tables.trials: list(trials.values()),
        tables.trial_metrics: list(points.values()),
    }
    return {table.name: list(zip(*_column_values(table, records), strict=True)) for table, records in rows.items()}


async def measure_raw(url: str, rows: dict[str, list[tuple]], how: str) -> float:
    """Insert prepared rows straight through asyncpg, in one transaction; time the inserts only."""
    await asyncio.to_thread(migrate, url)
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    # JSONB as JSON text, the same codec SQLAlchemy's asyncpg dialect installs for the projector.
    await conn.set_type_codec("jsonb", encoder=lambda s: b"\x01" + s.encode(),
                              decoder=lambda b: orjson.loads(b[1:]), schema="pg_catalog", format="binary")
    try:
        started = time.perf_counter()
        async with conn.transaction():
            for table, records in rows.items():
                # The rows follow schemas.tables' column order; migrations append new columns.
                columns = [c.name for c in tables.metadata.tables[table].columns]
                if how == "copy":
                    await conn.copy_records_to_table(table, records=records, columns=columns)
                else:
                    marks = ", ".join(f"${i + 1}" for i in range(len(records[0])))
                    await conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", records)
        return len(rows["tunix_tuning_events"]) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="TrialUpdated events (default 100000)")
    args = parser.parse_args()
    settings = Settings.from_env()
    events = make_events(args.events)
    total = len(events)
    publish_s = await publish(settings.kafka_bootstrap_servers, events)
    print(f"published {total} events in {publish_s:.1f}s ({total / publish_s:,.0f}/s)")

    names = [f"bench_{RUN}_{what}" for what in ("projector", "executemany", "copy")]
    urls = [await create_database(settings.database_url, name) for name in names]
    projector_rate = await measure_projector(settings, urls[0], total)
    rows = read_model_rows(events)
    executemany_rate = await measure_raw(urls[1], rows, "executemany")
    copy_rate = await measure_raw(urls[2], rows, "copy")
    print(f"projector (Kafka -> read model):     {projector_rate:>9,.0f} events/s")
    print(f"raw asyncpg executemany INSERT:      {executemany_rate:>9,.0f} events/s"
          f"   ratio projector/raw {projector_rate / executemany_rate:.2f}")
    print(f"raw asyncpg COPY (the floor):        {copy_rate:>9,.0f} events/s"
          f"   ratio projector/raw {projector_rate / copy_rate:.2f}")
    for name in names:
        await drop_database(settings.database_url, name)


if __name__ == "__main__":
    asyncio.run(main())
