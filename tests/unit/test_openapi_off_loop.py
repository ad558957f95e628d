"""The OpenAPI document's first build lists the datasets folder: off the event loop, within the
file checks' deadline (a hung folder is a 503 for the document, never a frozen API)."""

from __future__ import annotations

import asyncio
import threading

import httpx

from adapters.settings import Settings
from app import openapi
from app.main import create_app
from service import file_checks
from tests.unit.fakes import fake_gateway
from tests.support.waiting import eventually


def _held_listing(monkeypatch, order: list | None = None):
    """A datasets listing that waits for `release` (`order` notes whether it was released)."""
    entered, release = threading.Event(), threading.Event()
    real = openapi.available_datasets

    def held(root):
        entered.set()
        released = release.wait(10)
        if order is not None:
            order.append("listed" if released else "never released")
        return real(root)

    monkeypatch.setattr(openapi, "available_datasets", held)
    return entered, release


async def _client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


async def test_the_loop_answers_while_the_document_lists_the_datasets(monkeypatch):
    order = []
    entered, release = _held_listing(monkeypatch, order)
    app = create_app(Settings(), gateway=fake_gateway())
    async with app.router.lifespan_context(app), await _client(app) as client:
        document = asyncio.create_task(client.get("/openapi.json"))

        async def listing():
            return entered.is_set()

        try:
            await eventually(listing, 15, "the datasets listing to start")
            assert (await client.get("/healthz")).status_code == 200
            order.append("healthz")
        finally:
            release.set()
        answer = await document
    assert order == ["healthz", "listed"]  # the loop answered while the listing was held
    assert answer.status_code == 200 and "ungar_hcd-v1" in answer.json()["components"]["schemas"]["JobSpec"][
        "properties"]["dataset_key"]["enum"]


async def test_a_listing_that_does_not_answer_is_a_503_for_the_document(monkeypatch):
    entered, release = _held_listing(monkeypatch)
    monkeypatch.setattr(file_checks, "FILE_CHECK_TIMEOUT_S", 0.2)
    app = create_app(Settings(), gateway=fake_gateway())
    try:
        async with app.router.lifespan_context(app), await _client(app) as client:
            answer = await client.get("/openapi.json")
        assert answer.status_code == 503 and answer.json()["error"] == "filesystem_unavailable"
        # The listing ran on the pool, not the loop (it may start after the deadline when the
        # pool is still busy with an earlier test's work, so wait for it rather than assume).
        assert await asyncio.to_thread(entered.wait, 10)
    finally:
        release.set()
