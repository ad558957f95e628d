"""The tuner: runs a Ray Tune experiment for every started job and publishes how it went.

At start-up it reads the whole log to learn every job's state (state.py): a job that was
started and never finished is resumed, from its experiment folder when one exists. Then it
follows the log. Experiments run on worker threads, so consuming goes on while a job trains
for hours; each running job has one JobRun (producers/job_run.py) that the Ray callback and
schedulers act through; the job's terminal event is published here.

Run it with `tunix-tune serve tuner` (or `python -m consumers.tuner`); health, readiness
and /metrics on TUNIX_TUNER_PROBE_PORT (8002).
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from adapters.consumer import consumer_main
from adapters.event_log import end_offsets, read_to_end
from adapters.publisher import EventPublisher
from adapters.settings import Settings
from consumers.records import LoggedEvent, read_record
from consumers.tuner.ray_processes import start_ray, stop_ray
from consumers.tuner.state import TunerJob, next_state
from producers.job_outcome import job_failed
from producers.job_run import SOURCE, JobRun
from schemas import events as ev
from schemas.metrics import EVENTS_CONSUMED, JOB_DURATION

log = structlog.get_logger("tuner")
PUBLISH_TIMEOUT_S = 30


class Tuner:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.topic = settings.topics.events
        self.publisher = EventPublisher(settings.kafka_bootstrap_servers, settings.topics, PUBLISH_TIMEOUT_S)
        self.jobs: dict[UUID, TunerJob] = {}
        self.running: dict[UUID, asyncio.Task] = {}
        self.waiting: list[UUID] = []
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ray_up = self._following = False

    def stop(self) -> None:
        self._stop.set()

    async def checks(self) -> dict[str, str]:
        """Readiness: Ray is up and the tuner follows the log live."""
        return {
            "ray": "ok" if self._ray_up else "starting",
            "kafka": "ok" if self._following else "reading the log up to its end",
        }

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.publisher.start()  # connects and creates the missing topics
        await asyncio.to_thread(start_ray, self.settings.state_dir, self.settings.ray_address)
        self._ray_up = True
        try:
            positions = await self._catch_up()
            for job in self.jobs.values():
                if job.should_run:
                    log.info("resuming unfinished job", job_id=str(job.job_id))
                    self._schedule(job.job_id)
            await self._follow(positions)
        finally:
            for task in self.running.values():
                task.cancel()
            await self.publisher.close()
            await asyncio.to_thread(stop_ray, self.settings.state_dir)

    async def _catch_up(self) -> dict[int, int]:
        """Fold the log up to today's end; return where live consumption starts."""
        bootstrap = self.settings.kafka_bootstrap_servers
        ends = await end_offsets(bootstrap, self.topic.name)
        async for records in read_to_end(bootstrap, self.topic.name):
            for record in records:
                if record.offset < ends[record.partition]:  # later records come live, once
                    self._fold(record, len(ends), live=False)
        return ends

    async def _follow(self, positions: dict[int, int]) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers, group_id=None)
        await consumer.start()
        try:
            parts = [TopicPartition(self.topic.name, p) for p in positions]
            consumer.assign(parts)
            for tp in parts:
                consumer.seek(tp, positions[tp.partition])
            self._following = True
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        self._fold(record, len(positions), live=True)
        finally:
            await consumer.stop()

    def _fold(self, record: ConsumerRecord, partitions: int, live: bool) -> None:
        read = read_record(record, partitions)
        if not isinstance(read, LoggedEvent):
            return  # the projector dead-letters it; the tuner acts on the same events it projects
        event = read.event
        EVENTS_CONSUMED.labels(event.type).inc()
        self.jobs[event.job_id] = job = next_state(self.jobs.get(event.job_id), event)
        if not live or job is None:
            return
        with structlog.contextvars.bound_contextvars(job_id=str(event.job_id), event_id=str(event.event_id)):
            if isinstance(event, ev.JobStarted) and job.should_run:
                self._schedule(job.job_id)
            elif isinstance(event, ev.JobCancelRequested):
                self._cancel(job.job_id)

    def _schedule(self, job_id: UUID) -> None:
        if job_id in self.running or job_id in self.waiting:
            return  # a JobStarted for a job already running is ignored
        if len(self.running) < self.settings.tuner_max_jobs:
            self.running[job_id] = asyncio.create_task(self._run_job(self.jobs[job_id]))
        else:
            log.info("job waits for a free slot", job_id=str(job_id), running=len(self.running))
            self.waiting.append(job_id)

    def _cancel(self, job_id: UUID) -> None:
        if job_id in self.waiting:
            self.waiting.remove(job_id)
            asyncio.create_task(self.publisher.publish(ev.JobCancelled(job_id=job_id, source=SOURCE)))
        elif (run := JobRun.find(job_id)) is not None:
            run.cancel()
            log.info("cancelling job", job_id=str(job_id))

    async def _run_job(self, job: TunerJob) -> None:
        from consumers.tuner.runner import run_experiment

        log.info("experiment starts", job_id=str(job.job_id), num_samples=job.spec.num_samples)
        started = time.monotonic()
        with JobRun.open(job.job_id, self._publish_from_thread, job.ended_trials) as run:
            if self.jobs[job.job_id].cancel_requested:  # asked before this run could be found
                run.cancel()
            try:
                outcome = await asyncio.to_thread(
                    run_experiment, job.spec, run, self.settings.tuning_dir, self.settings.training_folders)
            except Exception as exc:  # the job fails, the tuner goes on
                log.exception("experiment failed", job_id=str(job.job_id))
                outcome = job_failed(job.job_id, f"{type(exc).__name__}: {exc}")
        try:
            await self.publisher.publish(outcome)
            JOB_DURATION.labels(outcome.type).observe(time.monotonic() - started)
            log.info("experiment ended", job_id=str(job.job_id), outcome=outcome.type)
        except Exception:  # the outcome is lost to the log: the job resumes at the next tuner start
            log.exception("could not publish the job's outcome", job_id=str(job.job_id))
        finally:
            self.running.pop(job.job_id, None)
            if self.waiting:
                self._schedule(self.waiting.pop(0))

    def _publish_from_thread(self, event: ev.Event) -> None:
        asyncio.run_coroutine_threadsafe(self.publisher.publish(event), self._loop).result(PUBLISH_TIMEOUT_S)


def main() -> None:
    consumer_main(Tuner, lambda s: s.tuner_probe_port)
