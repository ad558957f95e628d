"""Write the AsyncAPI 3.0 document of the event topics: docs/asyncapi.json.

    .venv/bin/python docs/generate_asyncapi.py

FastStream (faststream.specification.AsyncAPI) builds the document from two brokers:

* the broker of adapters.publisher.EventPublisher, the one publish path of every producer
  (the gateway, the tuner, the projector's dead letters): it declares one publisher per event
  type (`schema=` the event class, the description naming who publishes it) and the
  dead-letter publisher, so the document follows the code;
* a documentation-only broker for the consumers, declared below. They read raw batches of
  records and parse each with consumers/records.py, so their code holds no typed handler
  FastStream could describe. Here the projector is a subscriber on the events topic typed with
  the `Event` union.

FastStream does not know the Kafka key, the headers or the partition counts; they are added
to the built document (schemas.topics has the numbers).

Nothing connects to Kafka: brokers connect lazily. The server address is
KAFKA_BOOTSTRAP_SERVERS (default: the local stack's 127.0.0.1:19092).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the project's packages
    sys.path.insert(0, str(ROOT))

from faststream.kafka import KafkaBroker  # noqa: E402
from faststream.specification import AsyncAPI  # noqa: E402
from pydantic import Field  # noqa: E402

from adapters.partitioning import PARTITIONER_FIX  # noqa: E402
from adapters.publisher import EventPublisher  # noqa: E402
from adapters.settings import Settings  # noqa: E402
from schemas.events import EVENT_TYPES, Event  # noqa: E402
from schemas.topics import DLQ_ORIGIN_HEADER, DLQ_REASON_HEADER  # noqa: E402

SETTINGS = Settings.from_env()
TOPICS = SETTINGS.topics

OUT_JSON = ROOT / "docs" / "asyncapi.json"
SUBSCRIBER = "project-events"
DEAD_LETTER = "dead-letter"
KAFKA_BINDING_VERSION = "0.4.0"  # the version FastStream writes on the channels

DESCRIPTION = f"""\
Every job and trial event travels on one topic, `{TOPICS.events.name}` \
({TOPICS.events.partitions} partitions, kept forever: retention.ms=-1), keyed by job_id so one \
job's events stay in one partition and in order. The gateway publishes JobCreated, JobStarted \
and JobCancelRequested; JobClaimed, TrialUpdated, DecisionMade, BaselineEvaluated, JobCompleted, JobFailed and \
JobCancelled come from the \
tuner; any other system may publish any of them. Consumers check that a record sits on the \
partition murmur2 maps its key to ({PARTITIONER_FIX}). The projector folds every event into \
the PostgreSQL read model and sends the records it cannot project (invalid, misrouted, unknown \
job) to `{TOPICS.dead_letter.name}`. See docs/events.md."""

EVENT_KEY = {
    "type": "string",
    "format": "uuid",
    "description": "The event's job_id as UTF-8 text: one job's events share a partition.",
}
EVENT_HEADERS = {
    "type": "object",
    "description": (
        "Headers the publisher sets. Consumers read only the key and the body; other producers may "
        "leave headers out. FastStream adds its own correlation_id header, a tracing id "
        "unrelated to the envelope's correlation_id."
    ),
    "properties": {
        "content-type": {"type": "string", "const": "application/json"},
        "event-type": {"type": "string", "enum": list(EVENT_TYPES)},
    },
}
DLQ_HEADERS = {
    "type": "object",
    "required": [DLQ_REASON_HEADER, DLQ_ORIGIN_HEADER],
    "properties": {
        DLQ_REASON_HEADER: {
            "type": "string",
            "description": "Why the record was refused: its validation errors, "
            "'unknown job_id <id>', or the partition its key belongs on.",
        },
        DLQ_ORIGIN_HEADER: {
            "type": "string",
            "description": "Where the record sat: <topic>/<partition>/<offset>.",
            "examples": [f"{TOPICS.events.name}/3/1207"],
        },
    },
}


def projector_broker(settings: Settings) -> KafkaBroker:
    """What the projector reads, declared for the document only (never started)."""
    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)

    @broker.subscriber(
        TOPICS.events.name,
        group_id=settings.projector_group_id,
        auto_offset_reset="earliest",
        title=SUBSCRIBER,
        description=(
            "The projector folds every event into the PostgreSQL read model, in batches. A "
            "record that is not a valid event, sits on another partition than its key's, or "
            "names a job that was never created, goes to the dead-letter topic."
        ),
    )
    async def project(
        event: Annotated[Event, Field(title="Event", description="One event; `type` says which.")],
    ) -> None:
        raise NotImplementedError("documentation only")

    return broker


def build_specification():
    settings = SETTINGS
    publisher = EventPublisher(settings.kafka_bootstrap_servers, settings.topics)
    try:
        app_version = version("tunix-tune")
    except PackageNotFoundError:
        app_version = "0.1.0"
    spec = AsyncAPI(
        publisher.broker,
        projector_broker(settings),
        title="Tunix Tune events",
        version=app_version,
        description=DESCRIPTION,
        schema_version="3.0.0",
    ).to_specification()
    _add_kafka_details(spec)
    return spec


def _add_kafka_details(spec) -> None:
    """Partitions per topic, the Kafka key and the headers: set by our code, not FastStream."""
    partitions = {t.name: t.partitions for t in TOPICS.all}
    for channel in spec.channels.values():
        kafka = channel.bindings.kafka if channel.bindings else None
        if kafka is not None and kafka.topic in partitions:
            kafka.partitions = partitions[kafka.topic]
    for name, message in spec.components.messages.items():
        if name.startswith(f"{DEAD_LETTER}:"):
            message.headers = DLQ_HEADERS
            message.bindings = {
                "kafka": {
                    "key": {"type": "string", "description": "The original record's key."},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            }
            _describe_payload(
                spec,
                message,
                "The original record value, byte for byte: usually JSON, possibly not a "
                "valid event.",
            )
            continue
        message.contentType = "application/json"
        message.bindings = {"kafka": {"key": EVENT_KEY, "bindingVersion": KAFKA_BINDING_VERSION}}
        if not name.startswith(f"{SUBSCRIBER}:"):
            message.headers = EVENT_HEADERS


def _describe_payload(spec, message, description: str) -> None:
    target = message.payload.get("$ref", "").rsplit("/", 1)[-1]
    if target in spec.components.schemas:
        spec.components.schemas[target] = {
            **spec.components.schemas[target],
            "description": description,
        }
    else:
        message.payload = {**message.payload, "description": description}


def main() -> None:
    spec = build_specification()
    OUT_JSON.write_text(json.dumps(spec.to_jsonable(), indent=2) + "\n")
    print(f"wrote {OUT_JSON.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
