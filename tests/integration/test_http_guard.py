"""The HTTP guard on the real api process (uvicorn, Kafka, PostgreSQL): security headers on the
dashboard and the API, a foreign Host refused when no token is configured, a slow body closed
with 408, and request values the database cannot take refused with 422 instead of a 500."""

from __future__ import annotations

import socket
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Process, _api_ready, free_port
from tests.support.specs import example_spec
from tests.support.waiting import wait_until

BODY_TIMEOUT_S = 1  # the second api's TUNIX_API_BODY_TIMEOUT_S: short, so a slow body ends soon


@pytest.fixture(scope="module")
def guarded_api(service_env, tmp_path_factory):
    """A second api process with a short body timeout and an allow-listed name."""
    env = {**service_env, "TUNIX_API_PORT": str(free_port()), "TUNIX_API_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
           "TUNIX_API_ALLOWED_HOSTS": "tune.internal"}
    api = Process("app.main", env, tmp_path_factory.mktemp("guarded-api"))
    url = f"http://127.0.0.1:{env['TUNIX_API_PORT']}"
    try:
        wait_until(lambda: _api_ready(url) or api.proc.poll() is not None, 90, "the second api ready")
        assert api.proc.poll() is None, api.output()
        yield url
    finally:
        api.stop()


@pytest.mark.parametrize("path", ["/ui/", "/ui/app.js", "/ui/vendor/plotly.min.js", "/api/tuning/jobs", "/openapi.json"])
async def test_the_dashboard_and_the_api_answer_with_security_headers(client, path):
    answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    policy = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert ("default-src 'self'" if path.startswith("/ui/") else "default-src 'none'") in policy
    assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["x-frame-options"] == "DENY"


async def test_without_tokens_a_foreign_host_is_refused(client, guarded_api):
    refused = await client.get("/api/tuning/jobs", headers={"host": "rebound.attacker.example"})
    assert refused.status_code == 421
    assert refused.json()["error"] == "host_not_allowed" and "TUNIX_API_ALLOWED_HOSTS" in refused.json()["message"]
    refused = await client.post("/api/tuning/jobs", json=example_spec(), headers={"host": "rebound.attacker.example:80"})
    assert refused.status_code == 421
    assert (await client.get("/api/tuning/jobs", headers={"host": "localhost:1"})).status_code == 200
    assert (await client.get("/readyz", headers={"host": "10.9.8.7:8000"})).status_code == 200  # probes by address
    async with httpx.AsyncClient(base_url=guarded_api, timeout=30) as other:
        assert (await other.get("/api/tuning/jobs", headers={"host": "tune.internal:8000"})).status_code == 200
        assert (await other.get("/api/tuning/jobs", headers={"host": "tune.external"})).status_code == 421


def test_a_body_that_stops_arriving_gets_a_408_and_the_connection_is_closed(guarded_api):
    """Connections that declared 60 kB and sent 8 bytes: each answered 408 and closed by the
    server (the socket's own timeout is only the test's failure bound)."""
    address = urlsplit(guarded_api)
    connections = []
    for _ in range(20):
        conn = socket.create_connection((address.hostname, address.port), timeout=60)
        conn.sendall(b"POST /api/tuning/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 60000\r\n\r\n{\"name\":")
        connections.append(conn)
    for conn in connections:
        with conn:
            answer = b""
            while chunk := conn.recv(65536):  # until the server closes its side
                answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), answer
            assert b"connection: close" in head.lower() and b'"error":"body_timeout"' in body


async def test_times_and_names_the_database_cannot_hold_are_422(client):
    job_id = (await client.post("/api/tuning/jobs", json=example_spec(name="edges"))).json()["job_id"]
    for as_of in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        answer = await client.get(f"/api/tuning/jobs/{job_id}", params={"as_of": as_of})
        assert answer.status_code == 422, answer.text
        assert answer.json()["details"][0]["field"] == "query.as_of"
    for as_of in ("0001-01-01T00:00:00Z", "0001-01-01T10:00:00+09:00"):  # the earliest instants that exist
        answer = await client.get(f"/api/tuning/jobs/{job_id}", params={"as_of": as_of})
        assert answer.status_code == 404 and "at 0001-01-01" in answer.json()["message"], answer.text
    answer = await client.get(f"/api/tuning/jobs/{job_id}", params={"as_of": "9999-12-31T23:59:59Z"})
    assert answer.status_code == 200 and answer.json()["status"] == "created"
    for url, field in ((f"/api/models/a%00b/versions", "path.name"),
                       (f"/api/tuning/jobs/{job_id}/trials/a%00b/why", "path.trial_id"),
                       (f"/api/tuning/jobs/{job_id}/what-if?metric=a%00", "query.metric")):
        answer = await client.get(url)
        assert answer.status_code == 422 and answer.json()["details"][0]["field"] == field, answer.text
    assert (await client.get(f"/api/models/no-such-{uuid.uuid4().hex[:6]}/versions")).status_code == 404
