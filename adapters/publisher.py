"""The one way events reach Kafka: the gateway's commands, the tuner's trial and job events and
the projector's dead letters all go through `EventPublisher`.

Every event type and the dead-letter topic are declared on its FastStream broker, so the
AsyncAPI document (docs/generate_asyncapi.py) is generated from this code and lists every
producer. The connection opens on first use (or `start()`) and is tried again on the next
publish after a failure, so the API starts, and answers 503, while Kafka is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from adapters.event_log import ensure_topics
from schemas import events as ev
from schemas.metrics import EVENTS_DEAD_LETTERED, EVENTS_PUBLISHED
from schemas.topics import (
    DLQ_MAX_VALUE,
    DLQ_ORIGIN_HEADER,
    DLQ_REASON_HEADER,
    DLQ_TRUNCATED_HEADER,
    MAX_EVENT_BYTES,
    Topics,
)


class Unavailable(Exception):
    """A backing service (Kafka or PostgreSQL) did not answer in time."""

    def __init__(self, service: str, detail: str):
        super().__init__(f"{service} unavailable: {detail}")
        self.service = service
        self.detail = detail

    def __reduce__(self):  # rebuilt from its own arguments, not its message, when unpickled
        return type(self), (self.service, self.detail), self.__dict__


class EventTooLarge(Exception):
    """An event over MAX_EVENT_BYTES serialised: refused before sending, since Kafka would refuse
    it (MessageSizeTooLarge) on every try, and consumers refuse a record over it anyway."""

    def __init__(self, event_type: str, size: int, limit: int):
        super().__init__(f"{event_type} would be {size} bytes; an event is at most {limit}")
        self.event_type, self.size, self.limit = event_type, size, limit

    def __reduce__(self):
        return type(self), (self.event_type, self.size, self.limit), self.__dict__


class EventPublisher:
    def __init__(self, bootstrap_servers: str, topics: Topics, timeout_s: float = 30,
                 security: Mapping[str, Any] | None = None):
        """`security`: the process's `adapters.kafka_security.client_options(settings)`."""
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.timeout_s = timeout_s
        self.security = dict(security or {})
        self.broker = KafkaBroker(
            # A list: FastStream would hand a comma-separated string to aiokafka as one host.
            [server.strip() for server in bootstrap_servers.split(",")],
            request_timeout_ms=int(timeout_s * 1000),
            acks="all",
            enable_idempotence=True,
            logger=None,
            security=_faststream_security(self.security),
        )
        for event_type in ev.EVENT_CLASSES:
            name = event_type.__name__
            self.broker.publisher(
                topics.events.name, title=name, schema=event_type,
                description=f"{name}, keyed by job_id; published by {ev.PUBLISHED_BY[name]}.",
            )
        self.broker.publisher(
            topics.dead_letter.name, title="dead-letter",
            description="Records a consumer refused: the original key and bytes, unchanged, with the "
                        "reason and origin in headers. Nothing consumes this topic.",
        )
        self._started = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect and create missing topics (Unavailable when Kafka does not answer)."""
        async with self._lock:
            if self._started:
                return
            try:
                await asyncio.wait_for(self.broker.start(), self.timeout_s)
                await asyncio.wait_for(ensure_topics(self.bootstrap_servers, self.topics.all, self.security),
                                       self.timeout_s)
            except Exception as exc:
                await self.broker.stop()
                raise Unavailable("kafka", _explain(exc)) from exc
            self._started = True

    async def publish(self, event: ev.Event) -> None:
        """Put the event on the log, keyed by its job_id; returns once Kafka acknowledged it.
        EventTooLarge, before anything is sent, for an event over MAX_EVENT_BYTES."""
        await self._send(serialized(event), self.topics.events.name, event.key(),
                         {"content-type": "application/json", "event-type": event.type})
        EVENTS_PUBLISHED.labels(event.type).inc()

    async def dead_letter(self, key: bytes | None, value: bytes | None, reason: str, origin: str) -> None:
        """Put a refused record on the dead-letter topic, byte for byte, with why and whence (a
        record too large to copy whole is cut, and says so)."""
        headers = {DLQ_REASON_HEADER: reason[:2000], DLQ_ORIGIN_HEADER: origin}
        if value is not None and len(value) > DLQ_MAX_VALUE:
            headers[DLQ_TRUNCATED_HEADER] = str(len(value))
            value = value[:DLQ_MAX_VALUE]
        await self._send(value, self.topics.dead_letter.name, key[:1000] if key else key, headers)
        EVENTS_DEAD_LETTERED.inc()

    async def ping(self) -> None:
        """Raise Unavailable unless the broker answers."""
        await self.start()
        if not await self.broker.ping(timeout=self.timeout_s):
            raise Unavailable("kafka", f"no answer from {self.bootstrap_servers}")

    async def close(self) -> None:
        await self.broker.stop()
        self._started = False

    async def _send(self, value: bytes, topic: str, key: bytes | None, headers: dict[str, str]) -> None:
        await self.start()
        try:
            await asyncio.wait_for(self.broker.publish(value, topic=topic, key=key, headers=headers),
                                   self.timeout_s)
        except Exception as exc:
            raise Unavailable("kafka", _explain(exc)) from exc


def serialized(event: ev.Event) -> bytes:
    """The event's record value; EventTooLarge over MAX_EVENT_BYTES."""
    value = ev.serialize_event(event)
    if len(value) > MAX_EVENT_BYTES:
        raise EventTooLarge(event.type, len(value), MAX_EVENT_BYTES)
    return value


def _faststream_security(options: Mapping[str, Any]) -> BaseSecurity | None:
    """The same aiokafka options as FastStream's security object (it takes no raw SASL kwargs)."""
    protocol = options.get("security_protocol", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return None
    context = options.get("ssl_context")
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context)
    kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return kind[options["sasl_mechanism"]](options["sasl_plain_username"], options["sasl_plain_password"],
                                           ssl_context=context, use_ssl=protocol == "SASL_SSL")


def _explain(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
