"""Fakes for the command layer's adapters: a publisher that keeps what it was given, and a read
model that 'projects' every published event at once (or never, to see the 202 path)."""

from __future__ import annotations

from uuid import UUID

from adapters.publisher import serialized
from schemas import events as ev
from service.commands.commands import Gateway
from training.folders import Folders


class FakePublisher:
    def __init__(self):
        self.published: list[ev.Event] = []
        self.read_model: FakeReadModel | None = None

    async def publish(self, event: ev.Event) -> None:
        serialized(event)  # an event over the size limit is refused here as by the real publisher
        self.published.append(event)
        if self.read_model is not None:
            self.read_model.apply(event)

    async def ping(self) -> None:
        return None


class FakeReadModel:
    """Job statuses by id, moved by the events it is given (only what the commands look at)."""

    def __init__(self, projects: bool = True):
        self.projects = projects
        self.status: dict[UUID, str] = {}
        self.seen: set[UUID] = set()

    def apply(self, event: ev.Event) -> None:
        if not self.projects:
            return
        self.seen.add(event.event_id)
        moves = {"JobCreated": "created", "JobStarted": "running", "JobCancelRequested": "cancelling"}
        if event.type in moves:
            self.status[event.job_id] = moves[event.type]

    async def job_status(self, job_id: UUID) -> str | None:
        return self.status.get(job_id)

    async def event_projected(self, event_id: UUID) -> bool:
        return event_id in self.seen


def fake_gateway(projects: bool = True, wait_s: float = 0.2, folders: Folders | None = None) -> Gateway:
    publisher, read_model = FakePublisher(), FakeReadModel(projects)
    publisher.read_model = read_model
    return Gateway(publisher, read_model, folders or Folders(), projection_wait_s=wait_s)
