"""Shared fixtures: real Kafka and PostgreSQL, and the api and projector as real processes.

Each test session gets its own topics (tests/support/session.py), its own database and its own
consumer group, so it never sees a user's jobs or another session's events. Fixtures start
servers only when a test asks for them: tests/unit asks for none.

Layers (a marker each, set from the folder): tests/unit (no servers, fakes for the publisher
and read model; `pytest tests/unit` runs in seconds), tests/integration (real Kafka and
PostgreSQL), tests/e2e (the real tuner, Ray trials, the browser, training).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from adapters.database import create_database, drop_database, make_engine
from adapters.event_log import ensure_topics
from tests.support.gguf_fixtures import smollm2_converted  # noqa: F401  (a session fixture: SmolLM2 converted once)
from tests.support.servers import servers
from tests.support.session import SESSION, TOPICS
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items):
    for item in items:
        layer = next((part for part in Path(item.fspath).parts if part in LAYERS), None)
        if layer:
            item.add_marker(getattr(pytest.mark, layer))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def stack():
    with servers() as found:
        yield found


@pytest.fixture(scope="session")
async def database_url(stack):
    """A fresh database for this session on the chosen server."""
    name = f"tunix_test_{SESSION}"
    yield await create_database(stack.database_url, name)
    await drop_database(stack.database_url, name)


@pytest.fixture(scope="session")
async def service_env(stack, database_url, tmp_path_factory):
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka,
        "DATABASE_URL": database_url,
        "TUNIX_API_PORT": str(free_port()),
        "TUNIX_PROJECTOR_GROUP": f"test-{SESSION}-projector",
        "TUNIX_TOPIC_PREFIX": TOPICS.prefix,
        "TUNIX_LOG_FORMAT": "json",
        # The api reads model folders only under this one (tests put checkpoints, or worse, there).
        "TUNIX_MODELS_DIR": str(tmp_path_factory.mktemp("models")),
        "TUNIX_ARTIFACTS_DIR": str(tmp_path_factory.mktemp("artifacts")),  # jobs' run folders, the registry
        # The GGUF stores and the conversion cache are the test's own, never the machine's.
        "OLLAMA_MODELS": str(tmp_path_factory.mktemp("ollama")),
        "TUNIX_LMSTUDIO_MODELS_DIR": str(tmp_path_factory.mktemp("lmstudio")),
        "TUNIX_CONVERTED_MODELS_DIR": str(tmp_path_factory.mktemp("converted-models")),
    }
    await ensure_topics(stack.kafka, TOPICS.all)
    return env


class Process:
    """A service module running as its own process, its output kept for failure messages."""

    PROBE_PORTS = {"consumers.projector": "TUNIX_PROJECTOR_PROBE_PORT", "consumers.tuner": "TUNIX_TUNER_PROBE_PORT"}

    def __init__(self, module: str, env: dict, log_dir: Path):
        # Every consumer serves health and metrics on a port of its own (several run at once).
        self.env = {**env, **{var: env.get(var) or str(free_port()) for var in self.PROBE_PORTS.values()}}
        port_var = self.PROBE_PORTS.get(module)
        self.probe_url = f"http://127.0.0.1:{self.env[port_var]}" if port_var else None
        self.log_path = log_dir / f"{module}.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module], env=self.env, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _api_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def processes(service_env, tmp_path_factory):
    """The real api and projector processes, pointed at this session's servers."""
    logs = tmp_path_factory.mktemp("service-logs")
    projector = Process("consumers.projector", service_env, logs)
    api = Process("app.main", service_env, logs)
    url = f"http://127.0.0.1:{service_env['TUNIX_API_PORT']}"
    try:
        wait_until(lambda: _api_ready(url) or api.proc.poll() is not None, 90, "api ready")
        assert api.proc.poll() is None, api.output()
        yield {"api": api, "projector": projector, "url": url}
    finally:
        api.stop()
        projector.stop()


@pytest.fixture(scope="session")
def api_url(processes) -> str:
    return processes["url"]


@pytest.fixture
async def client(api_url):
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
async def db(database_url, processes):
    """An engine on the session's read model (after the projector has migrated it)."""
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def producer(stack):
    """A raw Kafka producer: how another system puts events on the topic."""
    p = AIOKafkaProducer(bootstrap_servers=stack.kafka, acks="all")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="session")
def tuning_stack(stack, tmp_path_factory):
    """api + projector + tuner on topics and a database of their own, so the tuner sees only
    the jobs of the tests using it (it resumes every started job it finds in its log)."""
    import asyncio

    run = uuid.uuid4().hex[:8]
    name = f"tuning_{run}"
    url = asyncio.run(create_database(stack.database_url, name))
    folder = tmp_path_factory.mktemp("tuning")
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka, "DATABASE_URL": url,
        "TUNIX_TOPIC_PREFIX": f"tuning-{run}", "TUNIX_API_PORT": str(port),
        "TUNIX_PROJECTOR_GROUP": f"tuning-{run}", "TUNIX_ARTIFACTS_DIR": str(folder / "artifacts"),
        "TUNIX_STATE_DIR": str(folder / "state"), "TUNIX_LOG_FORMAT": "json",
        "TUNIX_MODELS_DIR": str(folder / "models"),  # model folders are read only under it
        "HF_HUB_CACHE": str(folder / "hf-cache"),  # the Hugging Face cache hub ids resolve from, offline
        # ollama: ids resolve from this store (tests write manifests and blobs there), GGUF files convert here.
        "OLLAMA_MODELS": str(folder / "ollama"), "TUNIX_LMSTUDIO_MODELS_DIR": str(folder / "lmstudio"),
        "TUNIX_CONVERTED_MODELS_DIR": str(folder / "converted-models"),
    }
    procs = [Process(m, env, folder) for m in ("consumers.projector", "consumers.tuner", "app.main")]
    base = f"http://127.0.0.1:{port}"

    def ready():
        try:
            return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False
    try:
        wait_until(ready, 90, "tuning stack ready")
        yield {"url": base, "artifacts": folder / "artifacts", "procs": procs, "state": folder / "state", "env": env,
               "hf_cache": folder / "hf-cache", "folder": folder, "ollama": folder / "ollama"}
    finally:
        for p in procs:
            p.stop()
        asyncio.run(drop_database(stack.database_url, name))
