"""The jobs of one tuner's partitions, and how far each partition's log is folded (no I/O).

A partition comes with its snapshot (or none that can be trusted: then it is folded from offset
0, once) and the offset to fold from; it acts once folded up to the end it had when assigned
("live"). The tuner (service.py) reads records, hands each event here, and acts on the jobs
`fold` returns; it saves what `changes` lists and forgets what it hands over. Tested with
plain events in tests/unit/test_tuner_ledger.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from consumers.tuner.state import TunerJob, next_state
from schemas import events as ev


@dataclass(frozen=True)
class Live:
    """A partition that has just caught up: its unfinished jobs to run, and since when it folded."""

    partition: int
    since: float
    jobs: list[TunerJob]


@dataclass
class PartitionLedger:
    jobs: dict[UUID, TunerJob] = field(default_factory=dict)  # every job seen on the partitions (finished ones slim)
    partition_of: dict[UUID, int] = field(default_factory=dict)
    dirty: set[UUID] = field(default_factory=set)  # jobs whose state changed since the last snapshot
    folded: dict[int, int] = field(default_factory=dict)  # partition -> next offset to fold
    catching_up: dict[int, tuple[int, float]] = field(default_factory=dict)  # partition -> (end to reach, since)
    unmarked: set[int] = field(default_factory=set)  # partitions whose snapshot lacks this format's mark

    def assign(self, partition: int, snapshot: dict[UUID, TunerJob] | None, committed: int, end: int,
               now: float) -> None:
        """A partition assigned with its snapshot (None: not trusted, fold from 0) and offsets."""
        for job_id, job in (snapshot or {}).items():
            self.jobs[job_id], self.partition_of[job_id] = job, partition
        if snapshot is None:
            self.folded[partition] = 0
            self.unmarked.add(partition)
        else:
            self.folded[partition] = committed
        self.catching_up[partition] = (end, now)

    def admits(self, partition: int, offset: int) -> bool:
        """Whether a record is ours to fold: fetched before a rebalance, it may be from a partition
        this tuner no longer has, or one it folded already. Admitting moves the partition on."""
        if offset < self.folded.get(partition, offset + 1):
            return False
        self.folded[partition] = offset + 1
        return True

    def fold(self, partition: int, event: ev.Event) -> TunerJob | None:
        """Fold an event of `partition` into its job; the changed job when the partition is live
        (the tuner acts on it), else None. Raises what next_state raises on an event no rule foresaw."""
        before = self.jobs.get(event.job_id)
        job = next_state(before, event)
        if job is None or job is before:
            return None
        self.record(job, partition)
        return None if partition in self.catching_up else job

    def record(self, job: TunerJob, partition: int | None = None) -> None:
        """A job's new state (folded, or claimed by this tuner), to be saved with the next snapshot."""
        self.jobs[job.job_id] = job
        self.dirty.add(job.job_id)
        if partition is not None:
            self.partition_of[job.job_id] = partition

    def went_live(self) -> list[Live]:
        """Partitions folded up to their end since the last call: they start acting now."""
        live = []
        for p, (end, since) in list(self.catching_up.items()):
            if self.folded.get(p, 0) >= end:
                del self.catching_up[p]
                live.append(Live(p, since, [j for j in self.jobs.values()
                                            if self.partition_of[j.job_id] == p and j.should_run]))
        return live

    def changes(self, partitions: set[int]) -> tuple[dict[UUID, tuple[int, TunerJob]], set[int]]:
        """What a save of `partitions` writes: the changed jobs, and the caught-up partitions
        whose snapshot is whole again (a format mark to write)."""
        changed = {j: (self.partition_of[j], self.jobs[j]) for j in self.dirty if self.partition_of.get(j) in partitions}
        return changed, {p for p in self.unmarked & partitions if p not in self.catching_up}

    def saved(self, jobs: set[UUID], marked: set[int]) -> None:
        self.dirty -= jobs
        self.unmarked -= marked

    def offsets(self, partitions: set[int]) -> dict[int, int]:
        return {p: self.folded[p] for p in partitions if p in self.folded}

    def forget(self, partitions: set[int]) -> None:
        """Partitions handed over: their jobs and offsets are the next owner's."""
        for job_id in [j for j, p in self.partition_of.items() if p in partitions]:
            self.jobs.pop(job_id, None)
            self.partition_of.pop(job_id, None)
            self.dirty.discard(job_id)
        for p in partitions:
            self.folded.pop(p, None)
            self.catching_up.pop(p, None)
            self.unmarked.discard(p)

    def owned(self) -> int:
        """Jobs this tuner should be running."""
        return sum(job.should_run for job in self.jobs.values())


@dataclass
class JobSlots:
    """Which jobs run (at most `limit` at once, TUNIX_TUNER_MAX_JOBS) and which wait, in order."""

    limit: int
    running: dict[UUID, object] = field(default_factory=dict)  # job -> its task
    waiting: list[UUID] = field(default_factory=list)

    def holds(self, job_id: UUID) -> bool:
        return job_id in self.running or job_id in self.waiting

    def has_room(self) -> bool:
        return len(self.running) < self.limit

    def wait(self, job_id: UUID) -> None:
        self.waiting.append(job_id)

    def unqueue(self, job_id: UUID) -> bool:
        """Take a waiting job out of the queue (cancelled); whether it was waiting."""
        if job_id in self.waiting:
            self.waiting.remove(job_id)
            return True
        return False

    def drop_waiting(self, partitions: set[int], partition_of: dict[UUID, int]) -> None:
        """Waiting jobs of partitions handed over: the next owner runs them."""
        self.waiting = [j for j in self.waiting if partition_of.get(j) not in partitions]

    def ended(self, job_id: UUID) -> UUID | None:
        """A job's run ended: the waiting job that gets its slot, if any."""
        self.running.pop(job_id, None)
        return self.waiting.pop(0) if self.waiting else None
