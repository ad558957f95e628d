"""The projector: folds the events topic into the PostgreSQL read model.

A batch of records is projected in one database transaction, and that batch's offsets are
committed to Kafka only after the transaction commits, so a crash replays the batch and the
event_id dedupe makes the replay harmless. A record that is not a valid event, or refers to a
job that does not exist, goes to the dead-letter topic with the reason and its original bytes.

Two batches are in flight at most: while PostgreSQL writes batch N, this process fetches and
parses batch N+1, so the database and the Python side work at the same time.

Run it with `tunix-tune serve projector` (or `python -m consumers.projector`); health,
readiness and /metrics on TUNIX_PROJECTOR_PROBE_PORT (8001).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.consumer import consumer_main
from adapters.database import make_engine, transient
from adapters.kafka_security import client_options
from adapters.migrations import migrate
from adapters.publisher import EventPublisher
from adapters.settings import Settings
from consumers.projector.bulk import batch_transaction
from consumers.projector.read_model import apply_batch
from consumers.records import LoggedEvent, Refused, read_records
from schemas.metrics import EVENTS_CONSUMED, PROJECTOR_LAG

log = structlog.get_logger("projector")
RETRY_BACKOFF_S = 1.0
LAG_EVERY_S = 1.0


async def project_parsed(
    engine: AsyncEngine, records: tuple[ConsumerRecord, ...], parsed: list[LoggedEvent]
) -> list[Refused]:
    """Project parsed events in one transaction; return the records refused by the read model.

    A batch that fails for any reason but the database being unreachable or busy (adapters.
    database.transient: those raise, and the batch is retried) is projected again one event per
    transaction, in log order: an event that still fails is refused with its error, so one
    poison record never stalls its partition, and the others are projected."""
    if not parsed:
        return []
    by_position = {(r.partition, r.offset): r for r in records}
    try:
        return await _project_together(engine, by_position, parsed)
    except Exception as exc:
        if transient(exc):
            raise
        log.warning("batch cannot be projected; projecting its events one by one", size=len(parsed),
                    error=_one_line(exc))
    refused: list[Refused] = []
    for logged in parsed:
        try:
            refused += await _project_together(engine, by_position, [logged])
        except Exception as exc:
            if transient(exc):
                raise  # what was projected so far stays; the redelivered batch skips it (event_id)
            refused.append(Refused(by_position[(logged.partition, logged.offset)],
                                   f"cannot be projected: {_one_line(exc)}"))
    return refused


async def _project_together(engine: AsyncEngine, by_position: dict, parsed: list[LoggedEvent]) -> list[Refused]:
    async with batch_transaction(engine) as conn:
        refused = await apply_batch(conn, parsed)
    return [Refused(by_position[(u.logged.partition, u.logged.offset)], u.reason) for u in refused]


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


async def project_records(
    engine: AsyncEngine, records: tuple[ConsumerRecord, ...], partitions: int
) -> list[Refused]:
    """Read and project one batch; return every record that belongs in the DLQ (replay uses it)."""
    parsed, refused = read_records(records, partitions)
    return refused + await project_parsed(engine, records, parsed)


class Projector:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.topic = settings.topics.events
        self.engine = make_engine(settings.database_url)
        self.publisher = EventPublisher(settings.kafka_bootstrap_servers, settings.topics,
                                        security=client_options(settings))
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, **client_options(settings),
            group_id=settings.projector_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._writing: tuple[asyncio.Task, tuple[ConsumerRecord, ...]] | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def checks(self) -> dict[str, str]:
        """Readiness: partitions assigned and the read model answering."""
        results = {"kafka": "ok" if self.consumer.assignment() else "no partitions assigned yet"}
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("select 1 from tunix_tuning_jobs limit 1"))
            results["postgres"] = "ok"
        except Exception as exc:  # any failure to reach the read model means not ready
            results["postgres"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return results

    async def run(self) -> None:
        await self.publisher.start()  # connects and creates the missing topics
        self.consumer.subscribe([self.topic.name], listener=_FinishBeforeRevoke(self))
        await self.consumer.start()
        log.info("projector started", topic=self.topic.name, group=self.settings.projector_group_id)
        lag_measured = 0.0
        try:
            while not self._stop.is_set():
                fetched = await self.consumer.getmany(
                    timeout_ms=500, max_records=self.settings.projector_max_batch
                )
                if time.monotonic() - lag_measured > LAG_EVERY_S:
                    lag_measured = time.monotonic()
                    if (lag := await self._lag()) is not None:
                        PROJECTOR_LAG.set(lag)
                records = tuple(r for tp in sorted(fetched, key=_order) for r in fetched[tp])
                # Reading overlaps the write of the previous batch.
                parsed, dead = read_records(records, self._partitions())
                if not await self.finish_write(also_rewind=records):
                    continue
                if records:
                    self._writing = (asyncio.create_task(self._write(records, parsed, dead)), records)
            await self.finish_write()
        finally:
            await self.consumer.stop()
            await self.publisher.close()
            await self.engine.dispose()

    def _partitions(self) -> int:
        return len(self.consumer.partitions_for_topic(self.topic.name) or ()) or self.topic.partitions

    async def finish_write(self, also_rewind: tuple[ConsumerRecord, ...] = ()) -> bool:
        """Wait for the batch being written. If it failed, rewind to it (and drop the batch
        fetched since) so both are delivered again, and return False."""
        if self._writing is None:
            return True
        (task, in_flight), self._writing = self._writing, None
        try:
            await task
            return True
        except (CommitFailedError, RebalanceInProgressError) as exc:
            # Projected, but the partitions moved: the new owner redelivers, dedupe absorbs it.
            log.warning("offsets not committed after a rebalance", error=str(exc))
            return True
        except Exception:
            log.exception("batch failed; it will be redelivered", size=len(in_flight))
            self._rewind(in_flight + also_rewind)
            await asyncio.sleep(RETRY_BACKOFF_S)  # so a down database is not hammered
            return False

    async def _lag(self) -> int | None:
        """Records on the assigned partitions not fetched yet; None when it cannot be told now
        (a rebalance moves partitions, or a position is unknown): the gauge keeps its value."""
        behind = 0
        try:
            for tp in tuple(self.consumer.assignment()):
                end = self.consumer.highwater(tp)
                if end is not None:
                    behind += max(0, end - await asyncio.wait_for(self.consumer.position(tp), 0.5))
        except (KafkaError, AssertionError, TimeoutError):
            return None
        return behind

    async def _write(self, records, parsed, dead) -> None:
        dead = dead + await project_parsed(self.engine, records, parsed)
        for letter in dead:
            await self._dead_letter(letter)
        await self.consumer.commit(_next_offsets(records))
        for event_type, count in Counter(p.event.type for p in parsed).items():
            EVENTS_CONSUMED.labels(event_type).inc(count)
        log.debug("batch projected", size=len(records), dead_lettered=len(dead))

    def _rewind(self, records: tuple[ConsumerRecord, ...]) -> None:
        assigned = self.consumer.assignment()
        for tp, offset in _first_offsets(records).items():
            if tp in assigned:
                self.consumer.seek(tp, offset)

    async def _dead_letter(self, letter: Refused) -> None:
        record = letter.record
        origin = f"{record.topic}/{record.partition}/{record.offset}"
        key = record.key.decode(errors="replace") if record.key else None
        log.warning("event dead-lettered", origin=origin, reason=letter.reason, job_id=key)
        await self.publisher.dead_letter(record.key, record.value, letter.reason, origin)


class _FinishBeforeRevoke(ConsumerRebalanceListener):
    """Commit the batch in flight before its partitions go to another projector."""

    def __init__(self, projector: Projector):
        self.projector = projector

    async def on_partitions_revoked(self, revoked) -> None:
        await self.projector.finish_write()

    async def on_partitions_assigned(self, assigned) -> None:
        log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))


def _order(tp: TopicPartition) -> tuple[str, int]:
    return tp.topic, tp.partition


def _next_offsets(records) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    return offsets


def _first_offsets(records) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = min(offsets.get(tp, r.offset), r.offset)
    return offsets


def _prepare(settings: Settings) -> None:
    migrate(settings.database_url)
    # Batches allocate many short-lived objects; the default gen-0 threshold (2,000) makes the
    # collector rescan them several times per batch. Start-up objects are frozen out of it.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def main() -> None:
    consumer_main(Projector, lambda s: s.projector_probe_port, before=_prepare)
