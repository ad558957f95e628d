"""From Kafka records to events, the same way for every consumer, live and in replay.

A record becomes an event only if it parses as one and sits on the partition its job_id maps
to (adapters.partitioning); anything else is refused with a reason, and the projector
dead-letters it. The tuner skips what is refused, so both act on exactly the same events.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from adapters.partitioning import misrouted
from schemas.events import Event, parse_event
from schemas.topics import MAX_EVENT_BYTES


@dataclass(frozen=True)
class LoggedEvent:
    """An event with the place it holds in the Kafka log."""

    event: Event
    partition: int
    offset: int


@dataclass(frozen=True)
class Refused:
    record: ConsumerRecord
    reason: str


def read_record(record: ConsumerRecord, partitions: int) -> LoggedEvent | Refused:
    if record.value is not None and len(record.value) > MAX_EVENT_BYTES:
        return Refused(record, f"the record is {len(record.value)} bytes; an event is at most {MAX_EVENT_BYTES}")
    try:
        event = parse_event(record.value)
    except ValidationError as exc:
        return Refused(record, _describe(exc))
    except Exception as exc:  # whatever else a hostile body raises (no body at all, say), never a stop
        return Refused(record, f"not an event: {type(exc).__name__}: {exc}".splitlines()[0][:500])
    reason = misrouted(record.key, record.partition, partitions, str(event.job_id))
    if reason is not None:
        return Refused(record, reason)
    return LoggedEvent(event, record.partition, record.offset)


def read_records(records: tuple[ConsumerRecord, ...], partitions: int) -> tuple[list[LoggedEvent], list[Refused]]:
    """Split a batch into events (in log order) and refused records."""
    events, refused = [], []
    for record in records:
        read = read_record(record, partitions)
        (events if isinstance(read, LoggedEvent) else refused).append(read)
    return events, refused


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_url=False)[:5]
    )
