"""The tuner: runs a Ray Tune experiment for every started job and publishes how it went.

At start-up it reads the whole log to learn every job's state (consumers/tuning_state.py):
a job that was started and never finished is resumed, from its experiment folder when one
exists. Then it follows the log. Experiments run on worker threads, so consuming goes on
while a job trains for hours; trial events come from the Ray callback (producers/), the job's
terminal event from here.

Run it with `tunix-tune serve tuner` (or `python -m consumers.tuner`); health, readiness
and /metrics on TUNIX_TUNER_PROBE_PORT (8002).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import time
from pathlib import Path
from uuid import UUID

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from consumers.probes import bind, serve_probes
from consumers.tuning_state import TunerJob, next_state
from schemas import events as ev
from schemas import topics
from schemas.event_log import end_offsets, read_to_end
from schemas.logs import configure_logging
from schemas.metrics import EVENTS_CONSUMED, EVENTS_PUBLISHED, JOB_DURATION
from schemas.settings import Settings

log = structlog.get_logger("tuner")
PUBLISH_TIMEOUT_S = 30


class Tuner:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.storage = (Path(settings.artifacts_dir) / "tuning").resolve()  # Ray wants absolute paths
        self.broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None, acks="all")
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

    async def run(self, probe_socket: socket.socket | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        probes = serve_probes(probe_socket, self.checks, self.stop) if probe_socket else None
        await topics.ensure_topics(self.settings.kafka_bootstrap_servers)
        await self.broker.start()
        await asyncio.to_thread(_start_ray, self.storage)
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
            await self.broker.stop()
            await asyncio.to_thread(_stop_ray)
            if probes:
                probes.cancel()

    async def _catch_up(self) -> dict[int, int]:
        """Fold the log up to today's end; return where live consumption starts."""
        bootstrap = self.settings.kafka_bootstrap_servers
        ends = await end_offsets(bootstrap, topics.EVENTS.name)
        async for records in read_to_end(bootstrap, topics.EVENTS.name):
            for record in records:
                if record.offset < ends[record.partition]:
                    self._fold(record.value, live=False)
        return ends

    async def _follow(self, positions: dict[int, int]) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers, group_id=None)
        await consumer.start()
        try:
            parts = [TopicPartition(topics.EVENTS.name, p) for p in positions]
            consumer.assign(parts)
            for tp in parts:
                consumer.seek(tp, positions[tp.partition])
            self._following = True
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        self._fold(record.value, live=True)
        finally:
            await consumer.stop()

    def _fold(self, raw: bytes, live: bool) -> None:
        try:
            event = ev.parse_event(raw)
        except ValidationError:
            return  # the projector dead-letters it; the tuner only needs valid events
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
        from consumers.ray_runner import cancel

        if job_id in self.waiting:
            self.waiting.remove(job_id)
            asyncio.create_task(self._publish(ev.JobCancelled(job_id=job_id, source="tunix-tune.tuner")))
        elif job_id in self.running:
            cancel(job_id)
            log.info("cancelling job", job_id=str(job_id))

    async def _run_job(self, job: TunerJob) -> None:
        from consumers.ray_runner import run_experiment

        log.info("experiment starts", job_id=str(job.job_id), num_samples=job.spec.num_samples)
        started = time.monotonic()
        try:
            outcome = await asyncio.to_thread(run_experiment, job, self._publish_from_thread, self.storage)
        except Exception as exc:  # the job fails, the tuner goes on
            log.exception("experiment failed", job_id=str(job.job_id))
            outcome = ev.JobFailed(job_id=job.job_id, source="tunix-tune.tuner",
                                   payload=ev.JobFailedPayload(error=f"{type(exc).__name__}: {exc}"[:10_000]))
        await self._publish(outcome)
        JOB_DURATION.labels(outcome.type).observe(time.monotonic() - started)
        log.info("experiment ended", job_id=str(job.job_id), outcome=outcome.type)
        self.running.pop(job.job_id, None)
        if self.waiting:
            self._schedule(self.waiting.pop(0))

    async def _publish(self, event: ev.Event) -> None:
        await self.broker.publish(ev.serialize_event(event), topic=topics.EVENTS.name, key=event.key(),
                                  headers={"content-type": "application/json", "event-type": event.type})
        EVENTS_PUBLISHED.labels(event.type).inc()

    def _publish_from_thread(self, event: ev.Event) -> None:
        asyncio.run_coroutine_threadsafe(self._publish(event), self._loop).result(PUBLISH_TIMEOUT_S)


def _start_ray(storage: Path) -> None:
    """Local Ray with this machine's CPUs, or the cluster RAY_ADDRESS names."""
    import ray

    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # the metric comes at the end
    storage.mkdir(parents=True, exist_ok=True)
    os.environ[RAY_OWNER_ENV] = str(ray_temp_dir())  # inherited by every Ray process we start
    kill_orphaned_ray()
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 _temp_dir=str(ray_temp_dir()))
    import consumers.ray_runner  # noqa: F401  (Ray Tune, Optuna, training: loaded now, not by the first job)


def ray_temp_dir(state: Path | None = None) -> Path:
    """Ray's files go under the state folder, unless its path would make Ray's unix socket
    paths longer than the 107 bytes Linux allows: then under /tmp, named after it."""
    state = (state or Path(os.environ.get("TUNIX_STATE_DIR", ".state"))).resolve()
    if len(str(state / "ray")) <= 40:
        return state / "ray"
    return Path("/tmp") / f"tunix-ray-{hashlib.sha256(str(state).encode()).hexdigest()[:10]}"


def _stop_ray() -> None:
    import ray

    ray.shutdown()
    kill_orphaned_ray()


RAY_OWNER_ENV = "TUNIX_RAY_OWNER"


def ray_processes_left(owner: str | None = None) -> list[int]:
    """Pids of processes a tuner with this Ray folder started, other than this one."""
    owner = owner or os.environ.get(RAY_OWNER_ENV)
    marker = f"{RAY_OWNER_ENV}={owner}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def kill_orphaned_ray() -> None:
    """A tuner killed with -9 leaves Ray's agents behind; the next one (or this one, at its
    end) removes them, so no Ray process outlives its tuner for long."""
    for pid in ray_processes_left():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def main() -> None:
    settings = Settings()
    probe_socket = bind(settings.probe_host, settings.tuner_probe_port)
    tuner = Tuner(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, tuner.stop)
    await tuner.run(probe_socket)


if __name__ == "__main__":
    configure_logging()
    asyncio.run(main())
