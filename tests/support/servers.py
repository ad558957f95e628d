"""Which Kafka and PostgreSQL the tests use, in order: servers given by the environment
(KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL), testcontainers when a Docker daemon answers,
else the broker and database that the project provisions locally (tunix-tune services up)."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Servers:
    kafka: str
    database_url: str
    origin: str  # "env", "testcontainers" or "local"


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def servers():
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL"):
        yield Servers(os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"], "env")
    elif _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with KafkaContainer("apache/kafka:4.4.0").with_kraft() as kafka, PostgresContainer(
            "postgres:16", driver="asyncpg"
        ) as pg:
            yield Servers(kafka.get_bootstrap_server(), pg.get_connection_url(), "testcontainers")
    else:
        from provisioning import kafka, postgres

        kafka.start()
        postgres.start()
        yield Servers(kafka.bootstrap_servers(), postgres.database_url(), "local")
