"""A file check that never returns (a hung network mount) makes a create and /api/base-models a
503 naming the file system, published nothing, and leaves the rest of the api answering."""

from __future__ import annotations

import threading

import pytest

from service import file_checks
from tests.support.specs import example_spec


@pytest.fixture
def hung_disk(monkeypatch):
    """Every read of the model and dataset folders blocks until the test ends."""
    released = threading.Event()

    def hangs(*args):
        released.wait()
        return []

    monkeypatch.setattr("service.commands.commands.validate_spec", hangs)
    monkeypatch.setattr("service.read.models._base_models", hangs)
    monkeypatch.setattr(file_checks, "FILE_CHECK_TIMEOUT_S", 0.05)  # the deadline, not a measurement
    yield
    released.set()


async def test_a_check_past_its_deadline_is_a_503_and_the_api_still_answers(api, gateway, hung_disk):
    created = await api.post("/api/tuning/jobs", json=example_spec())
    assert created.status_code == 503, created.text
    assert created.json()["error"] == "filesystem_unavailable" and "try again later" in created.json()["message"]
    assert gateway.publisher.published == []
    listed = await api.get("/api/base-models")
    assert listed.status_code == 503 and listed.json()["error"] == "filesystem_unavailable"
    assert (await api.get("/healthz")).status_code == 200
