"""The commands a user or another system sends to the gateway, one small function each.

A command checks its rules, then publishes one event and waits (briefly) for the projector to
have it, so the answer can show the effect. A refused command raises a CommandRefused
(service/errors.py) and publishes nothing. Every event carries who sent it and why (Sender).
The steering commands (adjust, extend, fork, promote) live in service/commands/steering.py.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from uuid import UUID, uuid4

import structlog

from adapters.publisher import EventTooLarge
from schemas import events as ev
from schemas.api import EventOut, JobOut
from schemas.job_spec import JobSpec
from schemas.statuses import TERMINAL_JOB_STATUSES
from service.commands.validation import validate_spec
from service.commands.warm_start import warm_start_lineage
from service.errors import InvalidJob, JobConflict, JobNotFound, Problem, event_values
from service.file_checks import off_loop
from training.folders import Folders

SOURCE = "tunix-tune.gateway"
POLL_INTERVAL_S = 0.05
log = structlog.get_logger("commands")


class Publisher(Protocol):
    async def publish(self, event: ev.Event) -> None: ...


class ReadModel(Protocol):
    async def job_status(self, job_id: UUID) -> str | None: ...

    async def event_projected(self, event_id: UUID) -> bool: ...

    async def get_job(self, job_id: UUID) -> JobOut: ...

    async def latest_version(self, name: str) -> int: ...

    async def job_events(self, job_id: UUID) -> list[EventOut]: ...


@dataclass(frozen=True)
class Sender:
    """Who sent a command (the name bound to the API token; see app/auth.py) and why."""

    actor: str = "anonymous"
    reason: str | None = None


@dataclass(frozen=True)
class Gateway:
    """What the commands need, built once per process (app/main.py), fakes in unit tests."""

    publisher: Publisher
    read_model: ReadModel
    folders: Folders
    projection_wait_s: float = 5.0  # how long a command waits for the projector
    registry_dir: Path = Path("artifacts/models")  # the model registry's folders
    tuning_dir: Path = Path("artifacts/tuning")  # jobs' folders: promote copies only from a job's own


@dataclass(frozen=True)
class Published:
    event: ev.Event
    projected: bool  # the read model had the event before the wait ran out


async def create_job(spec: JobSpec, gw: Gateway, by: Sender = Sender(),
                     relation: Literal["warm_start", "fork"] = "warm_start") -> Published:
    """A new job; with a warm start (or as a fork, `relation`), its lineage from the parents,
    read only once the spec itself is valid."""
    problems = await off_loop(validate_spec, spec, gw.folders)  # reads checkpoint files: off the loop, bounded
    if problems:
        raise InvalidJob(problems)
    lineage = None
    if spec.warm_start is not None:
        lineage, problems = await warm_start_lineage(spec, gw.read_model, relation)
        if problems:
            raise InvalidJob(problems)
    with event_values():
        event = ev.JobCreated(job_id=uuid4(), source=SOURCE, payload=ev.JobCreatedPayload(spec=spec, lineage=lineage))
    try:
        return await publish(gw, event, by)
    except EventTooLarge as exc:
        if lineage is None or not lineage.seeds:
            raise
        raise InvalidJob([_too_many_seeds(exc, lineage.seeds, relation)]) from None


def _too_many_seeds(exc: EventTooLarge, seeds: list, relation: str) -> Problem:
    """Seeds travel in the JobCreated, which must fit in one Kafka record: say what to lower."""
    fitting = max(1, len(seeds) * exc.limit * 9 // 10 // exc.size)  # a tenth spare: seeds differ in size
    if relation == "fork":
        return Problem("at_trials", f"{len(seeds)} seed trials make the JobCreated {exc.size} bytes, over the "
                                    f"{exc.limit}-byte event limit: fork at an earlier point (at_trials of about "
                                    f"{fitting} or fewer)")
    return Problem("warm_start.top_k", f"{len(seeds)} seed trials make the JobCreated {exc.size} bytes, over the "
                                       f"{exc.limit}-byte event limit: set warm_start.top_k (or at_trials) so that "
                                       f"about {fitting} trials or fewer seed in all")


async def start_job(job_id: UUID, gw: Gateway, by: Sender = Sender()) -> Published:
    status = await job_status(gw, job_id)
    if status != "created":
        raise JobConflict(f"job {job_id} is {status}; only a created job can start")
    return await publish(gw, ev.JobStarted(job_id=job_id, source=SOURCE), by)


async def cancel_job(job_id: UUID, gw: Gateway, by: Sender = Sender()) -> Published:
    status = await job_status(gw, job_id)
    if status in TERMINAL_JOB_STATUSES:
        raise JobConflict(f"job {job_id} is already {status}")
    with event_values():
        payload = ev.JobCancelRequestedPayload(reason=by.reason)
    return await publish(gw, ev.JobCancelRequested(job_id=job_id, source=SOURCE, payload=payload), by)


async def job_status(gw: Gateway, job_id: UUID) -> str:
    status = await gw.read_model.job_status(job_id)
    if status is None:
        raise JobNotFound(job_id)
    return status


async def publish(gw: Gateway, event: ev.Event, by: Sender) -> Published:
    """Publish (stamped with its sender), then poll the read model until the projector has the
    event, up to the wait."""
    return await projected(gw, await send(gw, event, by))


async def send(gw: Gateway, event: ev.Event, by: Sender) -> ev.Event:
    """The event stamped with its sender, once Kafka has acknowledged it."""
    event = event.model_copy(update={"actor": by.actor, "reason": by.reason})
    with structlog.contextvars.bound_contextvars(job_id=str(event.job_id), event_id=str(event.event_id)):
        await gw.publisher.publish(event)
        log.info("event published", type=event.type)
    return event


async def projected(gw: Gateway, event: ev.Event) -> Published:
    """Poll the read model until the projector has the event, up to the wait."""
    deadline = time.monotonic() + gw.projection_wait_s
    while not await gw.read_model.event_projected(event.event_id):
        if time.monotonic() >= deadline:
            return Published(event, projected=False)
        await asyncio.sleep(POLL_INTERVAL_S)
    return Published(event, projected=True)
