"""Where the stack lives: every address and limit comes from the environment, with local defaults.

The defaults point at the broker and database that `tunix-tune services up` provisions;
KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL point the whole stack at existing servers instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

LOCAL_KAFKA_PORT = int(os.environ.get("TUNIX_KAFKA_PORT", "19092"))
LOCAL_PG_PORT = int(os.environ.get("TUNIX_PG_PORT", "15432"))
LOCAL_KAFKA = f"127.0.0.1:{LOCAL_KAFKA_PORT}"
LOCAL_DATABASE_URL = f"postgresql+asyncpg://tunix:tunix@127.0.0.1:{LOCAL_PG_PORT}/tunix"


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = field(
        default_factory=lambda: os.environ.get("KAFKA_BOOTSTRAP_SERVERS", LOCAL_KAFKA)
    )
    database_url: str = field(
        default_factory=lambda: os.environ.get("DATABASE_URL", LOCAL_DATABASE_URL)
    )
    api_host: str = field(default_factory=lambda: os.environ.get("TUNIX_API_HOST", "127.0.0.1"))
    api_port: int = field(default_factory=lambda: int(os.environ.get("TUNIX_API_PORT", "8000")))
    # How long POST /jobs waits for the projector before answering 202 instead of 201.
    create_wait_s: float = field(default_factory=lambda: _env_float("TUNIX_CREATE_WAIT_S", 5.0))
    # How long a publish may take before the gateway gives up and answers 503.
    publish_timeout_s: float = field(
        default_factory=lambda: _env_float("TUNIX_PUBLISH_TIMEOUT_S", 5.0)
    )
    max_body_bytes: int = field(
        default_factory=lambda: int(os.environ.get("TUNIX_MAX_BODY_BYTES", str(64 * 1024)))
    )
    projector_group_id: str = field(
        default_factory=lambda: os.environ.get("TUNIX_PROJECTOR_GROUP", "tunix-projector")
    )
    # Jobs the tuner runs at once; more started jobs wait for a free slot.
    tuner_max_jobs: int = field(default_factory=lambda: int(os.environ.get("TUNIX_TUNER_MAX_JOBS", "1")))
    artifacts_dir: str = field(default_factory=lambda: os.environ.get("TUNIX_ARTIFACTS_DIR", "artifacts"))
    # Health, readiness and /metrics of the consumer processes (the API serves its own).
    probe_host: str = field(default_factory=lambda: os.environ.get("TUNIX_PROBE_HOST", "127.0.0.1"))
    projector_probe_port: int = field(
        default_factory=lambda: int(os.environ.get("TUNIX_PROJECTOR_PROBE_PORT", "8001"))
    )
    tuner_probe_port: int = field(default_factory=lambda: int(os.environ.get("TUNIX_TUNER_PROBE_PORT", "8002")))
    # When set, /api requests need `Authorization: Bearer <token>` (the CLI sends TUNIX_API_TOKEN).
    api_token: str | None = field(default_factory=lambda: os.environ.get("TUNIX_API_TOKEN") or None)
    projector_max_batch: int = field(
        default_factory=lambda: int(os.environ.get("TUNIX_PROJECTOR_MAX_BATCH", "5000"))
    )
