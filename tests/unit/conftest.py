"""The gateway in-process over its fakes: HTTP through the real FastAPI app, no servers."""

from __future__ import annotations

import httpx
import pytest

from adapters.settings import Settings
from app.main import create_app
from tests.unit.fakes import fake_gateway


@pytest.fixture
def gateway():
    return fake_gateway()


@pytest.fixture
async def api(gateway):
    """An httpx client on the app; job queries are not wired (the commands' answers are)."""
    app = create_app(Settings(), gateway=gateway)
    async with app.router.lifespan_context(app):
        # localhost: an API without tokens answers only local Host names (app/http_guard.py)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            yield client
