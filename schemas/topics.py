"""Kafka topics: names, partition counts, retention and the dead-letter headers.

Every job and trial event goes to one topic keyed by job_id, so one job's events stay in one
partition and in order. The topic keeps its data forever: the log is the system of record.
Names share a prefix (Settings.topic_prefix, default `tunix.tuning`).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "tunix.tuning"
EVENTS_PARTITIONS = 6

# Headers a dead-lettered message carries next to its original key and bytes.
DLQ_REASON_HEADER = "tunix-dlq-reason"
DLQ_ORIGIN_HEADER = "tunix-dlq-origin"
# Set when the original bytes were too large to copy whole: their length (the copy is cut).
DLQ_TRUNCATED_HEADER = "tunix-dlq-truncated"
# The largest event body a consumer reads (Kafka's default message size); larger records are
# refused. A dead letter copies at most DLQ_MAX_VALUE bytes, so it always fits under the
# producers' 1 MiB request limit with its headers, whatever another system managed to write.
MAX_EVENT_BYTES = 1_000_000
DLQ_MAX_VALUE = 900_000


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class Topics:
    """The topics of one deployment (one prefix)."""

    prefix: str = DEFAULT_PREFIX

    @property
    def events(self) -> Topic:
        return Topic(f"{self.prefix}.events", partitions=EVENTS_PARTITIONS, config={"retention.ms": "-1"})

    @property
    def dead_letter(self) -> Topic:
        return Topic(f"{self.prefix}.events.dlq", partitions=1, config={"retention.ms": "-1"})

    @property
    def tuner_state(self) -> Topic:
        """The tuners' compact per-job state (consumers/tuner/snapshots.py): keyed by job_id
        like the events, one partition per events partition, compacted to the latest record
        per job; a finished job's tombstone is removed a day after compaction."""
        return Topic(f"{self.prefix}.tuner-state", partitions=EVENTS_PARTITIONS, config={
            "cleanup.policy": "compact", "segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.1",
            "delete.retention.ms": "86400000",
        })

    @property
    def all(self) -> tuple[Topic, ...]:
        return self.events, self.dead_letter, self.tuner_state
