"""Nothing the API accepts may be refused downstream: generated job bodies (odd numbers, NaN,
Infinity, huge integers, NUL and lone surrogates in text) go through the API's validation; every
one it accepts must survive the projector's parser and the read model's encodings."""

from __future__ import annotations

import json

import orjson
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.settings import Settings
from app.main import create_app
from service.read.projection import project_job
from schemas import events as ev
from tests.support.specs import example_spec
from tests.unit.fakes import fake_gateway

ODD_TEXT = st.text(alphabet=st.sampled_from(["a", "é", " ", "\x00", "\ud800", "_", "1"]), max_size=6)
NUMBERS = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, 1e-5, 2**63, -(2**63) - 1, float("inf"), float("nan")]))
SCALARS = st.one_of(st.booleans(), NUMBERS, ODD_TEXT)


@st.composite
def job_bodies(draw) -> dict:
    kind = draw(st.sampled_from(["uniform", "loguniform", "quniform", "qloguniform", "normal", "choice", "grid"]))
    if kind in ("choice", "grid"):
        param = {"type": kind, "values": draw(st.lists(SCALARS, min_size=1, max_size=3))}
    elif kind == "normal":
        param = {"type": kind, "mean": draw(NUMBERS), "sd": draw(NUMBERS)}
    else:
        param = {"type": kind, "min": draw(NUMBERS), "max": draw(NUMBERS)}
        if kind.startswith("q"):
            param["q"] = draw(NUMBERS)
    body = example_spec(search_space={"learning_rate": param})
    body.update(draw(st.fixed_dictionaries({}, optional={
        "name": ODD_TEXT, "num_samples": NUMBERS, "time_budget_s": NUMBERS, "seed": NUMBERS,
        "fixed_params": st.dictionaries(st.sampled_from(["max_steps", "weight_decay", "lora_rank"]), SCALARS, max_size=2),
        "resources_per_trial": st.fixed_dictionaries({"cpu": NUMBERS}),
    })))
    return body


def test_every_body_the_api_accepts_is_an_event_every_consumer_can_store():
    gateway = fake_gateway(projects=False, wait_s=0)
    with TestClient(create_app(Settings(), gateway=gateway), base_url="http://localhost") as client:

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(job_bodies())
        def check(body):
            published = len(gateway.publisher.published)
            raw = json.dumps(body, allow_nan=True)  # NaN/Infinity tokens, as Python clients send them
            answer = client.post("/api/tuning/jobs", content=raw, headers={"content-type": "application/json"})
            assert answer.status_code in (202, 422), answer.text
            if answer.status_code == 422:
                assert len(gateway.publisher.published) == published  # refused: nothing published
                return
            wire = ev.serialize_event(gateway.publisher.published[-1])
            event = ev.parse_event(wire)  # the projector's and the tuner's parser
            row = project_job(None, event)
            orjson.dumps(row["spec"])  # JSONB goes through orjson: 64-bit integers, finite numbers
            assert "\x00" not in json.dumps(row["spec"], ensure_ascii=False)  # PostgreSQL text has no NUL
            wire.decode("utf-8")

        check()
