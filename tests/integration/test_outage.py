"""With Kafka or PostgreSQL unreachable the API answers 503 with a clear JSON body, and
recovers when they return."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import Process, free_port
from tests.support.specs import example_spec
from tests.support.waiting import wait_until


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def api_with(service_env, processes, tmp_path):
    """Start an extra api process with some settings overridden (after the projector migrated)."""
    started = []

    def start(**overrides) -> str:
        port = free_port()
        env = {**service_env, **overrides, "TUNIX_API_PORT": str(port), "TUNIX_PUBLISH_TIMEOUT_S": "2"}
        proc = Process("app.main", env, tmp_path)
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url) or proc.proc.poll() is not None, 60, "api up")
        assert proc.proc.poll() is None, proc.output()
        return url

    yield start
    for proc in started:
        proc.stop()


def _assert_clean_503(answer: httpx.Response, service: str) -> None:
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["error"] == f"{service}_unavailable"
    assert "Traceback" not in answer.text


def test_kafka_unreachable_is_503(api_with):
    url = api_with(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    _assert_clean_503(httpx.post(f"{url}/api/tuning/jobs", json=example_spec(), timeout=30), "kafka")
    ready = httpx.get(f"{url}/readyz", timeout=30)
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"] == "ok" and ready.json()["checks"]["kafka"] != "ok"
    # Queries only need the read model, so they still answer.
    assert httpx.get(f"{url}/api/tuning/jobs", timeout=30).status_code == 200


def test_postgres_unreachable_is_503(api_with):
    url = api_with(DATABASE_URL=f"postgresql+asyncpg://tunix:tunix@127.0.0.1:{free_port()}/tunix")
    _assert_clean_503(httpx.get(f"{url}/api/tuning/jobs", timeout=30), "postgres")
    _assert_clean_503(httpx.post(f"{url}/api/tuning/jobs/{'0' * 8}-0000-0000-0000-{'0' * 12}/start",
                                 timeout=30), "postgres")
    ready = httpx.get(f"{url}/readyz", timeout=30)
    assert ready.status_code == 503 and ready.json()["checks"]["kafka"] == "ok"


def test_broker_stopped_then_restarted(stack, api_url):
    """The real broker goes down under the running stack, then comes back with its log."""
    if stack.origin != "local":
        pytest.skip("only the locally provisioned broker can be stopped by the tests")
    from provisioning import kafka

    before = httpx.post(f"{api_url}/api/tuning/jobs", json=example_spec(name="before outage"), timeout=30)
    assert before.status_code == 201
    kafka.stop()
    try:
        started = time.monotonic()
        during = httpx.post(f"{api_url}/api/tuning/jobs", json=example_spec(name="during"), timeout=60)
        _assert_clean_503(during, "kafka")
        assert time.monotonic() - started < 30  # bounded by the publish timeout, not hanging
        assert httpx.get(f"{api_url}/readyz", timeout=60).status_code == 503
    finally:
        kafka.start()
    wait_until(lambda: httpx.get(f"{api_url}/readyz", timeout=30).status_code == 200, 60, "ready again")
    after = httpx.post(f"{api_url}/api/tuning/jobs", json=example_spec(name="after outage"), timeout=30)
    assert after.status_code == 201, after.text  # the projector consumed it too
    trail = httpx.get(f"{api_url}/api/tuning/jobs/{before.json()['job_id']}/events", timeout=30).json()
    assert [e["type"] for e in trail] == ["JobCreated"]
