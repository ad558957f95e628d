"""Tuner start-up to ready with 1M events of finished-job history on the log vs an empty log.

A tuner learns the jobs of its partitions from the group's committed offsets plus the compact
state topic (consumers/tuner/snapshots.py), so its start-up should not grow with history.
In one run, on fresh topics and tuner groups:

1. empty: a tuner starts on an empty log; time from process start to /readyz 200.
2. history: N events of finished jobs are published; the first tuner of a new group folds
   them once (printed: the one-off cost of adopting an existing log), then stops cleanly.
3. restart: a new tuner of that group starts; time to ready again.
Prints the times, the tuner's resident memory at ready, and the ratios restart / empty
(the issue's target: at most 2).

    .venv/bin/python benchmarks/tuner_startup.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUN = uuid.uuid4().hex[:8]

from aiokafka import AIOKafkaProducer  # noqa: E402

from adapters.event_log import ensure_topics  # noqa: E402
from adapters.settings import Settings  # noqa: E402
from schemas import events as ev  # noqa: E402
from schemas.job_spec import JobSpec  # noqa: E402
from schemas.topics import Topics  # noqa: E402

EVENTS_PER_JOB = 1000
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def finished_job(job_id: uuid.UUID, spec: JobSpec, n: int):
    """One finished job's events: created, started, claimed, n-4 trial updates, completed."""
    at = T0
    yield ev.JobCreated(job_id=job_id, source="bench", occurred_at=at, payload=ev.JobCreatedPayload(spec=spec))
    yield ev.JobStarted(job_id=job_id, source="bench", occurred_at=at)
    yield ev.JobClaimed(job_id=job_id, source="bench", occurred_at=at, claim=1,
                        payload=ev.JobClaimedPayload(tuner_id="bench", generation=1))
    for i in range(n - 4):
        yield ev.TrialUpdated(job_id=job_id, source="bench", claim=1, occurred_at=at + timedelta(milliseconds=i),
                              payload=ev.TrialUpdatedPayload(
                                  trial_id=f"t{i % 20}", status="completed" if i >= n - 24 else "running",
                                  iteration=i // 20, params={"learning_rate": 1e-3},
                                  metrics={"train_loss": 1.0 / (i + 1), "score": float(i)}))
    yield ev.JobCompleted(job_id=job_id, source="bench", claim=1, occurred_at=at, payload=ev.JobCompletedPayload(
        best_trial_id="t0", metric_name="score", best_metric=1.0))


async def publish_history(bootstrap: str, topics: Topics, total: int) -> float:
    spec = JobSpec.model_validate({
        "name": "bench", "dataset_key": "ungar_hcd-v1", "base_model_id": "tiny-gemma3", "metric_name": "score",
        "metric_mode": "max", "num_samples": 20, "max_concurrent_trials": 4,
        "search_space": {"learning_rate": {"type": "loguniform", "min": 1e-5, "max": 1e-2}}})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for _ in range(max(1, total // EVENTS_PER_JOB)):
            for event in finished_job(uuid.uuid4(), spec, EVENTS_PER_JOB):
                pending.append(await producer.send(topics.events.name, ev.serialize_event(event), key=event.key()))
            if len(pending) > 50_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_to_ready(settings: Settings, prefix: str, group: str, state: Path) -> tuple[float, float, subprocess.Popen]:
    """Start a tuner; seconds until /readyz answers 200, its RSS then, and the process."""
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "TUNIX_TOPIC_PREFIX": prefix, "TUNIX_TUNER_GROUP": group, "TUNIX_TUNER_PROBE_PORT": str(port),
           "TUNIX_STATE_DIR": str(state), "TUNIX_ARTIFACTS_DIR": str(state / "artifacts"),
           "TUNIX_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "consumers.tuner"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the tuner exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return time.perf_counter() - started, rss_mb(proc.pid), proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events of finished-job history")
    args = parser.parse_args()
    settings = Settings.from_env()
    empty, history = Topics(f"bench-{RUN}-empty.tuning"), Topics(f"bench-{RUN}-history.tuning")
    for topics in (empty, history):
        await ensure_topics(settings.kafka_bootstrap_servers, topics.all)
    with tempfile.TemporaryDirectory(prefix="tuner-startup-") as tmp:
        state = Path(tmp)
        empty_s, empty_mb, proc = start_to_ready(settings, empty.prefix, f"bench-{RUN}-empty", state)
        stop(proc)
        publish_s = await publish_history(settings.kafka_bootstrap_servers, history, args.events)
        print(f"published {args.events:,} events of finished jobs in {publish_s:.1f}s")
        first_s, first_mb, proc = start_to_ready(settings, history.prefix, f"bench-{RUN}-history", state)
        stop(proc)  # saves the state snapshot and commits the offsets
        again_s, again_mb, proc = start_to_ready(settings, history.prefix, f"bench-{RUN}-history", state)
        stop(proc)
        # The empty log once more, after the others: both ends of the ratio see a warm machine.
        empty2_s, empty2_mb, proc = start_to_ready(settings, empty.prefix, f"bench-{RUN}-empty", state)
        stop(proc)
    baseline_s, baseline_mb = min(empty_s, empty2_s), min(empty_mb, empty2_mb)
    print(f"empty log:                         ready in {empty_s:6.1f}s / {empty2_s:.1f}s, RSS {baseline_mb:6.0f} MB")
    print(f"history, first tuner of the group: ready in {first_s:6.1f}s, RSS {first_mb:6.0f} MB"
          "   (one-off: folds the log once)")
    print(f"history, restarted tuner:          ready in {again_s:6.1f}s, RSS {again_mb:6.0f} MB")
    print(f"ratio restart / empty: start-up {again_s / baseline_s:.2f}, memory {again_mb / baseline_mb:.2f}"
          "   (target: <= 2)")


if __name__ == "__main__":
    asyncio.run(main())
