"""A warm start or fork cannot freeze the gateway or answer 500: every cheap refusal (a parent
named twice, a spec with problems) comes before a parent is read, the parents' trials looked at
are bounded, carrying over runs off the event loop with one set lookup per value, reasons quote
values cut short, and seeds that would make a JobCreated too large for Kafka are a 422 naming
warm_start.top_k."""

from __future__ import annotations

import asyncio
import threading
import uuid

import httpx
import pytest
from pydantic import BaseModel, Field

from adapters.publisher import EventPublisher, EventTooLarge
from adapters.settings import Settings
from app.main import create_app
from schemas import events as ev
from schemas import search_space as ss
from schemas.api import JobOut
from schemas.job_spec import JobSpec
from service.commands import warm_start
from service.commands.warm_start import carry_over, fits
from service.errors import InvalidJob, event_values
from tests.support.specs import example_spec
from tests.unit.fakes import fake_gateway
from tests.unit.test_steering_rules import LR, _parent
from tests.support.waiting import eventually


class _Parents:
    """The fake read model's jobs: parents by id, counting every read."""

    def __init__(self, read_model, parents: list[JobOut]):
        self.jobs = {p.job_id: p for p in parents}
        self.reads = 0
        read_model.get_job = self.get_job

    async def get_job(self, job_id, as_of=None):
        self.reads += 1
        return self.jobs[job_id]


def _child(parents: list, **overrides) -> dict:
    return example_spec(**{"search_space": {"learning_rate": LR}, "warm_start": {"jobs": [str(p) for p in parents]},
                           **overrides})


def _lr_parent(trials: int) -> JobOut:
    return _parent({"learning_rate": LR}, {}, [({"learning_rate": 1e-3}, float(i), "completed") for i in range(trials)])


@pytest.fixture
def gw():
    return fake_gateway(projects=False, wait_s=0)  # a published job is a 202 (no job queries wired)


@pytest.fixture
async def client(gw):
    app = create_app(Settings(), gateway=gw)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as c:
            yield c


async def test_a_parent_named_twice_is_refused_before_any_parent_is_read(gw, client):
    parent = _lr_parent(3)
    parents = _Parents(gw.read_model, [parent])
    answer = await client.post("/api/tuning/jobs", json=_child([parent.job_id] * 50))
    assert answer.status_code == 422
    assert answer.json()["details"] == [{"field": "warm_start.jobs", "rule": "names a parent job twice"}]
    assert parents.reads == 0 and gw.publisher.published == []


async def test_a_spec_with_problems_is_refused_before_any_parent_is_read(gw, client):
    parent = _lr_parent(3)
    parents = _Parents(gw.read_model, [parent])
    answer = await client.post("/api/tuning/jobs", json=_child([parent.job_id], dataset_key="no_such_dataset"))
    assert answer.status_code == 422 and [d["field"] for d in answer.json()["details"]] == ["dataset_key"]
    assert parents.reads == 0


async def test_the_parents_trials_looked_at_are_bounded(gw, client, monkeypatch):
    monkeypatch.setattr(warm_start, "MAX_PARENT_TRIALS", 5)
    carried = []
    monkeypatch.setattr(warm_start, "carry_over", lambda *a, **k: carried.append(a) or ([], []))
    first, second = _lr_parent(3), _lr_parent(3)
    _Parents(gw.read_model, [first, second])
    answer = await client.post("/api/tuning/jobs", json=_child([first.job_id, second.job_id]))
    assert answer.status_code == 422
    [detail] = answer.json()["details"]
    assert detail["field"] == "warm_start.jobs" and "hold 6 trials" in detail["rule"] and "at most 5" in detail["rule"]
    assert carried == []  # refused before any trial was carried over


async def test_the_loop_answers_while_a_warm_start_is_carried_over(gw, client, monkeypatch):
    parent = _lr_parent(3)
    _Parents(gw.read_model, [parent])
    entered, release, order = threading.Event(), threading.Event(), []
    real = warm_start.carry_over

    def held(*args, **kwargs):  # stands for a carry-over that takes long
        entered.set()
        order.append("carried" if release.wait(10) else "never released")
        return real(*args, **kwargs)

    monkeypatch.setattr(warm_start, "carry_over", held)
    creating = asyncio.create_task(client.post("/api/tuning/jobs", json=_child([parent.job_id])))

    async def carrying():
        return entered.is_set()

    await eventually(carrying, 15, "the carry-over to start")
    assert (await client.get("/healthz")).status_code == 200
    order.append("healthz")
    release.set()
    assert (await creating).status_code == 202
    assert order == ["healthz", "carried"]


class _Counting(list):
    """A choice's values that count how often they are scanned."""

    scans = 0

    def __contains__(self, value):
        type(self).scans += 1
        return super().__contains__(value)

    def __iter__(self):
        type(self).scans += 1
        return super().__iter__()


def test_a_choice_is_checked_by_one_set_lookup_per_value_not_a_scan():
    values = _Counting([0] * 999 + [999])
    choice = ss.Choice.model_construct(type="choice", values=values)
    spec = JobSpec.model_validate(example_spec(search_space={"batch_size": {"type": "choice", "values": [4]}}))
    spec = spec.model_copy(update={"search_space": {"batch_size": choice}})
    parent = _parent({"batch_size": {"type": "choice", "values": [999, 4]}}, {},
                     [({"batch_size": 999 if i % 2 else 4}, float(i), "completed") for i in range(200)])
    _Counting.scans = 0
    seeds, _ = carry_over(spec, parent, None, None)
    assert len(seeds) == 100 and _Counting.scans <= 1  # the set is built once


@pytest.mark.parametrize(("values", "value", "found"), [
    ([1], 1.0, True), ([1], True, True), ([1.0], 1, True), ([True], 1, True), ([0], False, True),
    (["a", 2], "b", False), ([2], [2], False), ([2], None, False), (["1"], 1, False)])
def test_set_membership_keeps_the_list_semantics(values, value, found):
    choice = ss.Choice(type="choice", values=values)
    assert fits(choice)(value) is found
    assert (value in values if not isinstance(value, list) else False) is found  # what `in list` said


def test_a_long_fixed_value_is_quoted_short_in_the_reason():
    child = JobSpec.model_validate(example_spec(search_space={"learning_rate": LR, "note": {
        "type": "choice", "values": ["a"]}}))
    parent = _parent({"learning_rate": LR}, {"note": "\x01" * 1000}, [({"learning_rate": 1e-3}, 1.0, "completed")])
    _, mapping = carry_over(child, parent, None, None)
    [note] = [m for m in mapping if m.parameter == "note"]
    assert note.outcome == "dropped" and len(note.reason) < 400 and "..." in note.reason


def test_a_value_an_event_refuses_is_an_invalid_job_naming_the_field():
    class Payload(BaseModel):
        reason: str = Field(max_length=5)

    with pytest.raises(InvalidJob) as refused, event_values("warm_start"):
        Payload(reason="x" * 6)
    [problem] = refused.value.problems
    assert problem.field == "warm_start.reason" and "at most 5 characters" in problem.rule


async def test_seeds_that_make_the_job_created_too_large_are_a_422_naming_top_k(gw, client, monkeypatch):
    parent = _parent({"learning_rate": LR}, {},
                     [({"learning_rate": 1e-3 + i * 1e-6}, float(i), "completed") for i in range(300)])
    _Parents(gw.read_model, [parent])
    monkeypatch.setattr("adapters.publisher.MAX_EVENT_BYTES", 20_000)
    answer = await client.post("/api/tuning/jobs", json=_child([parent.job_id]))
    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["details"]
    assert detail["field"] == "warm_start.top_k" and "300 seed trials" in detail["rule"]
    assert "over the 20000-byte event limit" in detail["rule"]
    assert gw.publisher.published == []
    fewer = await client.post("/api/tuning/jobs", json=_child([parent.job_id], warm_start={
        "jobs": [str(parent.job_id)], "top_k": 20}))
    assert fewer.status_code == 202, fewer.text


async def test_a_fork_too_large_for_one_event_is_a_422_naming_at_trials(gw, client, monkeypatch):
    parent = _parent({"learning_rate": LR}, {},
                     [({"learning_rate": 1e-3 + i * 1e-6}, float(i), "completed") for i in range(300)])
    _Parents(gw.read_model, [parent])
    monkeypatch.setattr("adapters.publisher.MAX_EVENT_BYTES", 20_000)
    answer = await client.post(f"/api/tuning/jobs/{parent.job_id}/fork", json={})
    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["details"]
    assert detail["field"] == "at_trials" and "fork at an earlier point" in detail["rule"]
    assert (await client.post(f"/api/tuning/jobs/{parent.job_id}/fork", json={"at_trials": 20})).status_code == 202


async def test_the_publisher_refuses_an_event_over_the_limit_before_sending(monkeypatch):
    monkeypatch.setattr("adapters.publisher.MAX_EVENT_BYTES", 100)
    publisher = EventPublisher("127.0.0.1:1", Settings().topics, timeout_s=30)  # nothing listens there
    event = ev.JobCancelRequested(job_id=uuid.uuid4(), source="t", payload=ev.JobCancelRequestedPayload(
        reason="r" * 200))
    with pytest.raises(EventTooLarge, match="JobCancelRequested would be"):
        await publisher.publish(event)  # no connection tried: Kafka would only time out
    assert not publisher._started
