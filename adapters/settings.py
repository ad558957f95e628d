"""Every address, folder and limit of a process, read from the environment once, at start.

The entry points (api, projector, tuner, CLI) call `Settings.from_env()` once and pass the
object down; nothing else reads the environment. The defaults point at the broker and database
that `tunix-tune services up` provisions; KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL point the
whole stack at existing servers instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path

from adapters import kafka_security
from adapters.database import asyncpg_url
from schemas.topics import DEFAULT_PREFIX, Topics
from training.folders import Folders

REPO_ROOT = Path(__file__).resolve().parents[1]

# field -> environment variable; a field not listed here is derived or has no variable.
_ENV = {
    "kafka_port": "TUNIX_KAFKA_PORT",
    "kafka_brokers": "TUNIX_KAFKA_BROKERS",
    "pg_port": "TUNIX_PG_PORT",
    "external_kafka": "KAFKA_BOOTSTRAP_SERVERS",
    "kafka_security_protocol": "TUNIX_KAFKA_SECURITY_PROTOCOL",
    "kafka_sasl_mechanism": "TUNIX_KAFKA_SASL_MECHANISM",
    "kafka_sasl_username": "TUNIX_KAFKA_SASL_USERNAME",
    "kafka_sasl_password": "TUNIX_KAFKA_SASL_PASSWORD",
    "kafka_ssl_cafile": "TUNIX_KAFKA_SSL_CAFILE",
    "kafka_ssl_certfile": "TUNIX_KAFKA_SSL_CERTFILE",
    "kafka_ssl_keyfile": "TUNIX_KAFKA_SSL_KEYFILE",
    "kafka_ssl_key_password": "TUNIX_KAFKA_SSL_KEY_PASSWORD",
    "kafka_local_users": "TUNIX_KAFKA_LOCAL_USERS",
    "external_database_url": "DATABASE_URL",
    "topic_prefix": "TUNIX_TOPIC_PREFIX",
    "api_host": "TUNIX_API_HOST",
    "api_port": "TUNIX_API_PORT",
    "api_token": "TUNIX_API_TOKEN",
    "api_tokens": "TUNIX_API_TOKENS",
    "api_allowed_hosts": "TUNIX_API_ALLOWED_HOSTS",
    "api_body_timeout_s": "TUNIX_API_BODY_TIMEOUT_S",
    "create_wait_s": "TUNIX_CREATE_WAIT_S",
    "publish_timeout_s": "TUNIX_PUBLISH_TIMEOUT_S",
    "max_body_bytes": "TUNIX_MAX_BODY_BYTES",
    "projector_group_id": "TUNIX_PROJECTOR_GROUP",
    "projector_max_batch": "TUNIX_PROJECTOR_MAX_BATCH",
    "tuner_max_jobs": "TUNIX_TUNER_MAX_JOBS",
    "tuner_group_id": "TUNIX_TUNER_GROUP",
    "tuner_id": "TUNIX_TUNER_ID",
    "tuner_session_timeout_s": "TUNIX_TUNER_SESSION_TIMEOUT_S",
    "ray_address": "RAY_ADDRESS",
    "probe_host": "TUNIX_PROBE_HOST",
    "projector_probe_port": "TUNIX_PROJECTOR_PROBE_PORT",
    "tuner_probe_port": "TUNIX_TUNER_PROBE_PORT",
    "artifacts_dir": "TUNIX_ARTIFACTS_DIR",
    "datasets_dir": "TUNIX_DATASETS_DIR",
    "models_dir": "TUNIX_MODELS_DIR",
    "state_dir": "TUNIX_STATE_DIR",
    "jax_cache_dir": "TUNIX_JAX_CACHE_DIR",
    "kafka_heap_opts": "TUNIX_KAFKA_HEAP_OPTS",
    "hf_hub_cache": "HF_HUB_CACHE",
    "hf_home": "HF_HOME",
    "ollama_models": "OLLAMA_MODELS",
    "lmstudio_models_dir": "TUNIX_LMSTUDIO_MODELS_DIR",
    "converted_models_dir": "TUNIX_CONVERTED_MODELS_DIR",
    "log_format": "TUNIX_LOG_FORMAT",
    "log_level": "TUNIX_LOG_LEVEL",
}


@dataclass(frozen=True)
class Settings:
    # The local stack's ports (tunix-tune services up); unused when the servers are external.
    kafka_port: int = 19092
    kafka_brokers: int = 1  # the local Kafka's nodes; node i on kafka_port + 2(i-1)
    kafka_heap_opts: str = "-Xmx512m -Xms256m"
    pg_port: int = 15432
    external_kafka: str | None = None  # comma-separated host:port list
    # How every Kafka client authenticates (adapters/kafka_security.py); secrets stay out of repr.
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    kafka_sasl_mechanism: str = "PLAIN"  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_ssl_cafile: Path | None = None  # the brokers' CA; default: the system's CAs
    kafka_ssl_certfile: Path | None = None  # a client certificate (mTLS), with its key
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: str | None = field(default=None, repr=False)
    # The local broker's extra SASL/PLAIN users, `name:password,...` (services up with SASL_PLAINTEXT).
    kafka_local_users: str | None = field(default=None, repr=False)
    external_database_url: str | None = None  # any PostgreSQL URL; the database must exist
    topic_prefix: str = DEFAULT_PREFIX
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # When set, /api requests need `Authorization: Bearer <token>` (the CLI sends TUNIX_API_TOKEN).
    api_token: str | None = None
    # Named tokens with rights, `name:read|write:token,...`: the name is the actor of commands.
    api_tokens: str | None = None
    # Without tokens, the Host names (comma-separated) the API answers besides localhost,
    # 127.0.0.1 and [::1]: a DNS-rebound page cannot reach it (app/http_guard.py).
    api_allowed_hosts: str | None = None
    # How long a request's whole body may take to arrive before a 408 closes the connection.
    api_body_timeout_s: float = 10.0
    # How long POST /jobs waits for the projector before answering 202 instead of 201.
    create_wait_s: float = 5.0
    # How long a publish may take before the gateway gives up and answers 503.
    publish_timeout_s: float = 5.0
    max_body_bytes: int = 64 * 1024
    projector_group_id: str = "tunix-projector"
    projector_max_batch: int = 5000
    # Jobs the tuner runs at once; more started jobs wait for a free slot.
    tuner_max_jobs: int = 1
    # Tuners form one Kafka consumer group: each job runs on the tuner its partition is assigned to.
    tuner_group_id: str = "tunix-tuner"
    tuner_id: str | None = None  # this tuner's name in claims and in `status`; default host-pid
    # A tuner silent for this long is considered dead and its partitions move to the others.
    tuner_session_timeout_s: float = 10.0
    ray_address: str | None = None  # an existing Ray cluster; else Ray starts locally
    # Health, readiness and /metrics of the consumer processes (the API serves its own).
    probe_host: str = "127.0.0.1"
    projector_probe_port: int = 8001
    tuner_probe_port: int = 8002
    artifacts_dir: Path = Path("artifacts")
    datasets_dir: Path = Path("datasets")
    models_dir: Path = Path("models")
    state_dir: Path = REPO_ROOT / ".state"  # the local stack's data, logs, pids, Ray's files
    jax_cache_dir: Path = REPO_ROOT / ".state" / "jax-cache"  # JAX's persistent compilation cache
    # The Hugging Face cache hub ids are looked up in, offline (HF's own variables and default).
    hf_hub_cache: Path | None = None
    hf_home: Path | None = None
    # GGUF stores ollama: and lmstudio: ids resolve from (Ollama's own variable and default; LM Studio's default).
    ollama_models: Path | None = None
    lmstudio_models_dir: Path | None = None
    # GGUF files converted into Hugging Face folders (one per file's SHA-256), shared by every trial.
    converted_models_dir: Path = REPO_ROOT / ".state" / "converted-models"
    log_format: str | None = None  # "json" or "console"; unset: JSON unless stderr is a terminal
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        environ = os.environ if environ is None else environ
        types = {f.name: f.type for f in fields(cls)}
        values = {}
        for name, var in _ENV.items():
            raw = environ.get(var)
            if raw in (None, ""):
                continue
            kind = types[name]
            values[name] = (
                int(raw) if kind == "int" else float(raw) if kind == "float"
                else Path(raw) if kind.startswith("Path") else raw
            )
        return cls(**values)

    def __post_init__(self) -> None:
        kafka_security.check(self)  # a contradictory Kafka security setting stops the process at start

    @property
    def local_kafka(self) -> str:
        """The brokers `tunix-tune services up` runs."""
        return ",".join(f"127.0.0.1:{self.kafka_port + 2 * i}" for i in range(self.kafka_brokers))

    @property
    def local_database_url(self) -> str:
        """The database `tunix-tune services up` runs."""
        return f"postgresql+asyncpg://tunix:tunix@127.0.0.1:{self.pg_port}/tunix"

    @property
    def kafka_bootstrap_servers(self) -> str:
        return self.external_kafka or self.local_kafka

    @property
    def database_url(self) -> str:
        return asyncpg_url(self.external_database_url) if self.external_database_url else self.local_database_url

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def training_folders(self) -> Folders:
        return Folders(self.datasets_dir, self.models_dir, self.jax_cache_dir, self.hf_cache,
                       ollama=self.ollama_models or Path.home() / ".ollama" / "models",
                       lmstudio=self.lmstudio_models_dir or Path.home() / ".lmstudio" / "models",
                       converted=self.converted_models_dir)

    @property
    def hf_cache(self) -> Path:
        return self.hf_hub_cache or (self.hf_home or Path.home() / ".cache" / "huggingface") / "hub"

    @property
    def tuning_dir(self) -> Path:
        """Where jobs' experiments and run folders live (absolute: Ray wants absolute paths)."""
        return (self.artifacts_dir / "tuning").resolve()

    @property
    def registry_dir(self) -> Path:
        """The model registry's folders: artifacts/models/{name}/{version}/ (promoted models)."""
        return (self.artifacts_dir / "models").resolve()


@cache
def process_settings() -> Settings:
    """The CLI process's settings, read from the environment once: one cache for the CLI and the
    local provisioning it drives (`process_settings.cache_clear()` makes both read it again)."""
    try:
        return Settings.from_env()
    except ValueError as exc:  # a contradictory setting (adapters/kafka_security.py): one line, no secret
        raise SystemExit(f"tunix-tune: {exc}") from None
