"""A job through a broker failure on a real 3-broker KRaft cluster (`tunix-tune services up
--kafka-brokers 3`): the leader of the job's partition is killed with -9 mid-job and started
again; the job completes, no event is lost or written twice, and the read model equals a
replay of the log."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from adapters.database import make_engine
from adapters.partitioning import expected_partition
from schemas.events import parse_event
from schemas.topics import Topics
from tests.conftest import REPO
from tests.support.kafka_log import read_all
from tests.support.replay_check import assert_replay_equals_live, drop_schema
from tests.support.service_stack import ServiceStack
from tests.support.waiting import wait_until


def _free_range(count: int) -> int:
    """A base port with `count` free ports after it."""
    for _ in range(50):
        base = random.randrange(30_000, 60_000, 2)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


def _cli(env: dict, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli.main", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def cluster(stack, tmp_path):
    """Three Kafka nodes under a state folder of their own (PostgreSQL: the session's)."""
    env = {**os.environ, "TUNIX_STATE_DIR": str(tmp_path / "kafka-state"), "TUNIX_KAFKA_PORT": str(_free_range(6)),
           "TUNIX_KAFKA_BROKERS": "3", "TUNIX_KAFKA_HEAP_OPTS": "-Xmx256m -Xms128m",
           "DATABASE_URL": stack.database_url}  # an external database: `services up` starts only Kafka
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    _cli(env, "services", "up")
    base = int(env["TUNIX_KAFKA_PORT"])
    try:
        yield {"env": env, "bootstrap": ",".join(f"127.0.0.1:{base + 2 * i}" for i in range(3)),
               "state": Path(env["TUNIX_STATE_DIR"])}
    finally:
        # A throwaway cluster: killed, not shut down in order (three nodes' controlled shutdown
        # took half a minute of the suite).
        for pid_file in Path(env["TUNIX_STATE_DIR"]).glob("kafka*.pid"):
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


async def _leader(bootstrap: str, topic: str, partition: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    (found,) = [p for p in described["partitions"] if p["partition"] == partition]
    assert len(found["replicas"]) == 3 and len(found["isr"]) == 3, found
    return found["leader"]


def test_a_job_survives_the_leader_of_its_partition_killed(cluster, stack, tmp_path):
    with ServiceStack(stack.database_url, tmp_path, KAFKA_BOOTSTRAP_SERVERS=cluster["bootstrap"],
                      TUNIX_PUBLISH_TIMEOUT_S="20") as services:
        topics = Topics(services.env["TUNIX_TOPIC_PREFIX"])
        job_id = services.start_job(
            name="broker killed", num_samples=3, max_concurrent_trials=1,
            fixed_params={"max_steps": 80, "eval_every": 10, "batch_size": 32},
            search_space={"learning_rate": {"type": "loguniform", "min": 1e-3, "max": 1e-2}})
        wait_until(lambda: any(t["status"] == "running" and (t["iteration"] or 0) >= 1
                               for t in services.job(job_id)["trials"]), 300, "a trial reporting progress")
        partition = expected_partition(job_id.encode(), topics.events.partitions)
        leader = asyncio.run(_leader(cluster["bootstrap"], topics.events.name, partition))
        pid_file = cluster["state"] / ("kafka.pid" if leader == 1 else f"kafka-{leader}.pid")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        killed_at = datetime.now(timezone.utc)
        before = len(services.trail(job_id))
        # The job goes on with two brokers (min.insync.replicas=2).
        wait_until(lambda: len(services.trail(job_id)) > before + 2, 300, "the job progressing on two brokers")
        _cli(cluster["env"], "services", "up")  # the killed node starts again with its data

        job = services.wait_for_job(job_id, 600)
        assert job["status"] == "completed", job["error"]
        assert len(job["trials"]) == 3 and all(t["status"] == "completed" for t in job["trials"])
        records = asyncio.run(read_all(cluster["bootstrap"], topics.events.name))
        mine = [r for r in records if r.key == job_id.encode()]
        ids = Counter(parse_event(r.value).event_id for r in mine)
        assert set(ids.values()) == {1}, "an event was written twice"
        trail = services.trail(job_id)
        assert len(trail) == len(mine), "the read model and the log disagree on the job's events"
        after = min(datetime.fromisoformat(e["occurred_at"]) for e in trail
                    if datetime.fromisoformat(e["occurred_at"]) > killed_at)
        print(f"leader {leader} of partition {partition} killed; next event {(after - killed_at).total_seconds():.1f}s "
              f"later; {len(mine)} events, none lost or doubled")

        async def replay_equals_live():
            live = make_engine(services.env["DATABASE_URL"])
            try:
                await drop_schema(live, await assert_replay_equals_live(services.env, live))
            finally:
                await live.dispose()
        asyncio.run(replay_equals_live())
