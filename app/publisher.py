"""Publishes the gateway's events to Kafka through FastStream, or says the broker is unavailable.

The broker connection is opened on first use and re-tried on the next command after a
failure, so the API starts (and answers 503) while Kafka is down.
"""

from __future__ import annotations

import asyncio

from faststream.kafka import KafkaBroker

from schemas import topics
from schemas.metrics import EVENTS_PUBLISHED
from schemas.events import Event, JobCancelRequested, JobCreated, JobStarted, serialize_event


class Unavailable(Exception):
    """A backing service (Kafka or PostgreSQL) did not answer in time."""

    def __init__(self, service: str, detail: str):
        super().__init__(f"{service} unavailable: {detail}")
        self.service = service
        self.detail = detail


class EventPublisher:
    def __init__(self, bootstrap_servers: str, timeout_s: float):
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self.broker = KafkaBroker(
            bootstrap_servers,
            request_timeout_ms=int(timeout_s * 1000),
            acks="all",
            enable_idempotence=True,
            logger=None,
        )
        # Declared for the AsyncAPI document: what the gateway puts on the events topic.
        for event_type in (JobCreated, JobStarted, JobCancelRequested):
            self.broker.publisher(
                topics.EVENTS.name,
                title=event_type.__name__,
                description=f"{event_type.__name__} events, keyed by job_id.",
                schema=event_type,
            )
        self._started = False
        self._lock = asyncio.Lock()

    async def publish(self, event: Event) -> None:
        await self._ensure_started()
        try:
            await asyncio.wait_for(
                self.broker.publish(
                    serialize_event(event),
                    topic=topics.EVENTS.name,
                    key=event.key(),
                    headers={"content-type": "application/json", "event-type": event.type},
                ),
                self.timeout_s,
            )
        except Exception as exc:
            raise Unavailable("kafka", _explain(exc)) from exc
        EVENTS_PUBLISHED.labels(event.type).inc()

    async def ping(self) -> None:
        """Raise Unavailable unless the broker answers."""
        await self._ensure_started()
        if not await self.broker.ping(timeout=self.timeout_s):
            raise Unavailable("kafka", f"no answer from {self.bootstrap_servers}")

    async def close(self) -> None:
        await self.broker.stop()

    async def _ensure_started(self) -> None:
        async with self._lock:
            if self._started:
                return
            try:
                await asyncio.wait_for(self.broker.start(), self.timeout_s)
                await asyncio.wait_for(
                    topics.ensure_topics(self.bootstrap_servers), self.timeout_s
                )
            except Exception as exc:
                await self.broker.stop()
                raise Unavailable("kafka", _explain(exc)) from exc
            self._started = True


def _explain(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
