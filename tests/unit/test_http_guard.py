"""The gateway's HTTP guard in-process (app/http_guard.py, app/body_limit.py, app/errors.py):
security headers on every answer, the Host check of an API without tokens, a 408 for a body
that does not arrive, a 500 that names a logged error id, a database's refusal of a request
value as 422. tests/integration/test_http_guard.py checks the same on the real api process."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import DBAPIError
from structlog.testing import capture_logs

from adapters.settings import Settings
from app.body_limit import BodyLimitMiddleware
from app.http_guard import allowed_hosts, host_name, policy
from app.main import create_app
from tests.unit.fakes import fake_gateway


class _Failing:
    """A read model whose job query fails as given."""

    def __init__(self, error: Exception):
        self.error = error

    async def get_job(self, job_id, as_of=None):
        raise self.error


async def _client(settings: Settings, queries=None, base: str = "http://localhost"):
    app = create_app(settings, gateway=fake_gateway(), queries=queries)
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=base)


@pytest.mark.parametrize("path", ["/ui/", "/ui/app.js", "/api/tuning/jobs/not-a-uuid", "/healthz", "/docs"])
async def test_every_answer_has_the_security_headers(path):
    app, client = await _client(Settings())
    async with app.router.lifespan_context(app), client:
        answer = await client.get(path)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["content-security-policy"] == policy(path)


def test_the_dashboard_may_load_only_its_own_origin_and_the_api_nothing():
    dashboard = dict(d.strip().split(" ", 1) for d in policy("/ui/").split(";"))
    assert dashboard["default-src"] == "'self'" and dashboard["script-src"] == "'self' 'unsafe-eval'"
    assert "'unsafe-inline'" not in dashboard["script-src"] and "http" not in policy("/ui/")
    assert policy("/api/tuning/jobs").startswith("default-src 'none'")
    assert policy("/uix").startswith("default-src 'none'")  # only /ui itself and under it


@pytest.mark.parametrize(("header", "name"), [("localhost:8000", "localhost"), ("LOCALHOST", "localhost"),
                                              ("127.0.0.1:1", "127.0.0.1"), ("[::1]:8000", "[::1]"), ("[::1]", "[::1]"),
                                              ("evil.example.:80", "evil.example"), ("evil:x", None),
                                              ("[::1]evil.com", None), ("[::1].evil.com", None), ("localhost..", None),
                                              ("local host", None), ("localhost:", None), ("a..b", None), ("", None)])
def test_host_names_without_ports(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("host", ["[::1]evil.com", "[::1].evil.com:80", "localhost..", "127.0.0.1 .evil.com"])
async def test_a_host_that_only_starts_like_a_local_one_is_refused(host):
    app, client = await _client(Settings())
    async with app.router.lifespan_context(app), client:
        assert (await client.get("/api/tuning/jobs", headers={"host": host})).status_code == 421


def test_an_allowed_host_entry_that_is_no_host_name_stops_the_api():
    with pytest.raises(ValueError, match="TUNIX_API_ALLOWED_HOSTS: 'evil.com/x'"):
        allowed_hosts("tune.internal, evil.com/x")


async def test_readyz_tells_a_host_that_is_not_allowed_only_its_status():
    app, client = await _client(Settings())  # no engine: the postgres check fails with an error text
    async with app.router.lifespan_context(app), client:
        local = await client.get("/readyz")
        rebound = await client.get("/readyz", headers={"host": "rebound.attacker.example"})
    assert local.status_code == rebound.status_code == 503
    assert "postgres" in local.json()["checks"]  # the operator, on localhost, sees why
    assert rebound.json() == {"status": "unavailable", "checks": {}}


async def test_an_api_without_tokens_answers_only_local_and_allowed_hosts():
    app, client = await _client(Settings(api_allowed_hosts="tune.internal, 10.0.0.5"))
    async with app.router.lifespan_context(app), client:
        for host in ("localhost:8000", "127.0.0.1", "[::1]:9", "tune.internal:443", "10.0.0.5"):
            assert (await client.get("/api/tuning/compare", headers={"host": host})).status_code == 422, host
        refused = await client.get("/api/tuning/jobs", headers={"host": "rebound.attacker.example"})
        assert refused.status_code == 421
        assert refused.json()["error"] == "host_not_allowed" and "TUNIX_API_ALLOWED_HOSTS" in refused.json()["message"]
        assert (await client.get("/healthz", headers={"host": "10.1.2.3:8000"})).status_code == 200  # probes by address
        refused = await client.post("/api/tuning/jobs", json={}, headers={"host": "rebound.attacker.example"})
        assert refused.status_code == 421  # before the body is even read
    assert allowed_hosts("*") >= {"*"}


async def test_with_tokens_the_host_is_not_checked():
    app, client = await _client(Settings(api_tokens="ci:read:0123456789abcdef"), base="http://tune.example")
    async with app.router.lifespan_context(app), client:
        answer = await client.get("/api/tuning/compare", headers={"authorization": "Bearer 0123456789abcdef"})
    assert answer.status_code == 422  # past the Host check and the token: the query's own rule


async def test_a_body_that_does_not_arrive_in_time_is_408_and_closes():
    sent, reached = [], []

    async def app(scope, receive, send):
        reached.append(scope)

    async def receive():
        if not sent:
            sent.append("first")
            return {"type": "http.request", "body": b"12345678", "more_body": True}
        await asyncio.Event().wait()  # the rest never comes

    answers = []

    async def send(message):
        answers.append(message)

    guard = BodyLimitMiddleware(app, max_bytes=64 * 1024, timeout_s=0.05)
    await guard({"type": "http", "headers": [(b"content-length", b"60000")]}, receive, send)
    assert answers[0]["status"] == 408 and (b"connection", b"close") in answers[0]["headers"]
    assert b"body_timeout" in answers[1]["body"] and not reached  # no route saw a partial body


async def test_an_unexpected_error_is_a_500_naming_the_id_it_is_logged_under():
    app, client = await _client(Settings(), queries=_Failing(RuntimeError("secret detail /srv/x")))
    with capture_logs() as logs:
        async with app.router.lifespan_context(app), client:
            answer = await client.get(f"/api/tuning/jobs/{uuid.uuid4()}")
    assert answer.status_code == 500
    body = answer.json()
    assert body["error"] == "internal_error" and "secret" not in answer.text and "Traceback" not in answer.text
    logged = [entry for entry in logs if entry["event"] == "unexpected error"]
    assert len(logged) == 1 and logged[0]["error_id"] in body["message"]
    assert isinstance(logged[0]["exc_info"], RuntimeError)  # rendered as a traceback by the log's processors
    assert answer.headers["x-frame-options"] == "DENY"  # answered inside the security headers


async def test_a_value_the_database_refuses_is_422_not_500():
    refused = asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence for encoding UTF8: 0x00")
    orig = Exception("wrapped")
    orig.__cause__ = refused
    app, client = await _client(Settings(), queries=_Failing(DBAPIError("select", {}, orig)))
    async with app.router.lifespan_context(app), client:
        answer = await client.get(f"/api/tuning/jobs/{uuid.uuid4()}")
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_value"
    assert "0x00" not in answer.text  # the database's words stay in the log


@pytest.mark.parametrize(("url", "field"), [
    ("/api/tuning/jobs/{job}?as_of=0001-01-01T00:00:00%2B14:00", "query.as_of"),
    ("/api/tuning/jobs/{job}?as_of=9999-12-31T23:59:59-14:00", "query.as_of"),
    ("/api/models/a%00b/versions", "path.name"),
    ("/api/models/" + "m" * 101 + "/versions", "path.name"),
    ("/api/tuning/jobs/{job}/trials/a%00b/why", "path.trial_id"),
    ("/api/tuning/jobs/{job}/what-if?metric=a%00b", "query.metric"),
])
async def test_path_and_query_text_is_bounded_storable_text(api, url, field):
    answer = await api.get(url.format(job=uuid.uuid4()))
    assert answer.status_code == 422, answer.text
    assert [d["field"] for d in answer.json()["details"]] == [field]
