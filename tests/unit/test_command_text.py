"""Every string a command body can carry is text every consumer can store, and bounded: the
string positions of every route's body model are found by walking the models (nested models,
dicts' keys and values, lists, unions, free-form JSON), not listed by hand, so a new field is
checked the day it is added. A string position the sample bodies below do not reach fails the
coverage test, which names it."""

from __future__ import annotations

import copy
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError

from adapters.settings import Settings
from app import routes
from schemas import events as ev
from schemas.steering import MAX_REASON
from tests.support.specs import example_spec

KEY = "<key>"  # a path step: the key itself, not the value under it
# A position with a declared bound must refuse one character more; one without, at least a
# whole request body's worth of text.
OVERSIZE = "x" * Settings().max_body_bytes
BAD = {"NUL": "stop\x00now", "lone surrogate": "a\ud800b", "oversize": None}

FULL_SPEC = example_spec(
    search_algorithm="tpe", scheduler="asha", startup_trials=3, seed=1, max_failed_trials=1,
    search_space={
        "learning_rate": {"type": "loguniform", "min": 1e-5, "max": 1e-3},
        "optimizer": {"type": "choice", "values": ["adamw", 1]},
        "schedule": {"type": "grid", "values": ["cosine", "linear"]},
        "warmup": {"type": "uniform", "min": 0, "max": 1},
        "lora_rank": {"type": "randint", "min": 2, "max": 16},
    },
    fixed_params={"max_steps": 20, "note": "from the sample"},
    resources_per_trial={"cpu": 1, "gpu": 0, "custom": {"a100": 1}},
    budget={"cpu_s": 100},
    warm_start={"jobs": ["0b9f0a7e-34a3-4a4e-9d0e-3f2e1a9a1c11"], "top_k": 2, "rename": {"lr": "learning_rate"}},
)
# A valid body of every model a route takes, with every string position filled.
SAMPLES: dict[str, dict] = {
    "JobSpec": FULL_SPEC,
    "CommandNote": {"reason": "because"},
    "JobAdjustment": {"num_samples": 3, "reason": "because"},
    "Extension": {"num_samples": 2, "reason": "because"},
    "Fork": {"at_trials": 1, "reason": "because", "changes": {
        "name": "forked", "fixed_params": {"note": "x"},
        "search_space": {"optimizer": {"type": "choice", "values": ["adamw", "sgd"]}}}},
    "Promotion": {"name": "my-model", "trial_id": "trial_00001", "stage": "candidate", "reason": "because"},
}


def _api_routes(routers=None):
    for route in routers if routers is not None else (routes.router, routes.models_router, routes.tuners_router,
                                                          routes.registry_router, routes.compare_router):
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "routes"):  # an APIRouter
            yield from _api_routes(route.routes)


def _body_models() -> dict[str, type[BaseModel]]:
    """Every model some route of the API takes as its body."""
    found = {}
    for route in _api_routes():
        for param in route.dependant.body_params:
            for member in _members(param.field_info.annotation):
                if isinstance(member, type) and issubclass(member, BaseModel):
                    found[member.__name__] = member
    return found


def _members(annotation) -> list:
    """The annotation without Annotated, and a union as its members (None left out)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for a in get_args(annotation) if a is not type(None) for m in _members(a)]
    return [annotation]


def _declared_max(annotation, metadata=()) -> int | None:
    """The tightest max_length declared for a string position: in its field's metadata, or in
    Annotated metadata of its type (a Field(...) there keeps its own in .metadata), unions too."""
    found = [m.max_length for m in metadata if getattr(m, "max_length", None) is not None]
    pending = [annotation]
    while pending:
        current = pending.pop()
        if get_origin(current) in (Union, types.UnionType):
            pending += [a for a in get_args(current) if a is not type(None)]
        elif get_origin(current) is Annotated:
            inner, *meta = get_args(current)
            pending.append(inner)
            for m in meta:
                found += [x.max_length for x in (m, *getattr(m, "metadata", ()))
                          if getattr(x, "max_length", None) is not None]
    return min(found) if found else None


def _texty(member) -> bool:
    return member is str or member is Any


def _type_slots(annotation, slot: str, seen: set) -> set[str]:
    """Every position where a type lets a string in, by slot name (Model.field, {key}, {value}, [])."""
    found = set()
    for member in _members(annotation):
        origin, args = get_origin(member), get_args(member)
        if _texty(member):
            found.add(slot)
        elif isinstance(member, type) and issubclass(member, BaseModel):
            if member not in seen:
                seen.add(member)
                for name, field in member.model_fields.items():
                    found |= _type_slots(field.annotation, f"{member.__name__}.{name}", seen)
        elif origin is dict:
            found |= _type_slots(args[0], slot + "{key}", seen) | _type_slots(args[1], slot + "{value}", seen)
        elif origin in (list, tuple, set, frozenset):
            found |= _type_slots(args[0], slot + "[]", seen)
    return found


def _value_slots(annotation, value, path: tuple, slot: str, metadata=()):
    """(path to a string in `value`, its slot name, its declared max_length or None) for every
    string position `value` fills."""
    members = _members(annotation)
    if len(members) > 1:  # the member the value is: the first that validates it (a tagged union's one)
        members = [next(m for m in members if _validates(m, value))]
    member = members[0]
    origin, args = get_origin(member), get_args(member)
    if _texty(member) and isinstance(value, str):
        yield path, slot, _declared_max(annotation, metadata)
    elif member is Any:
        yield from _json_slots(value, path, slot)
    elif isinstance(member, type) and issubclass(member, BaseModel) and isinstance(value, dict):
        for name, field in member.model_fields.items():
            if name in value:
                yield from _value_slots(field.annotation, value[name], (*path, name), f"{member.__name__}.{name}",
                                        field.metadata)
    elif origin is dict and isinstance(value, dict):
        for key, item in value.items():
            if any(_texty(m) for m in _members(args[0])):
                yield (*path, KEY, key), slot + "{key}", _declared_max(args[0])
            yield from _value_slots(args[1], item, (*path, key), slot + "{value}")
    elif origin in (list, tuple, set, frozenset) and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _value_slots(args[0], item, (*path, i), slot + "[]")


def _json_slots(value, path: tuple, slot: str):
    """Strings inside free-form JSON (a fork's changes): all in the one slot (no declared bound)."""
    if isinstance(value, str):
        yield path, slot, None
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*path, KEY, key), slot, None
            yield from _json_slots(item, (*path, key), slot)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _json_slots(item, (*path, i), slot)


def _validates(annotation, value) -> bool:
    if get_origin(annotation) is Literal or annotation in (int, float, bool):
        return False  # never a string position: not walked
    try:
        TypeAdapter(annotation).validate_python(value)
    except ValidationError:
        return False
    return True


def _with(body: dict, path: tuple, bad: str) -> dict:
    """A copy of `body` with the string (or the key) at `path` replaced by `bad`."""
    body = copy.deepcopy(body)
    *parents, last = path
    if len(parents) >= 1 and parents[-1] == KEY:
        *parents, _ = parents
        container = _at(body, parents)
        items = list(container.items())
        container.clear()
        container.update({(bad if k == last else k): v for k, v in items})
    else:
        _at(body, parents)[last] = bad
    return body


def _at(body, path):
    for step in path:
        body = body[step]
    return body


def _cases():
    for name, model in sorted(_body_models().items()):
        for path, slot, bound in _value_slots(model, SAMPLES[name], (), name):
            for what, bad in BAD.items():
                if what == "oversize":
                    bad, what = ("x" * (bound + 1), f"oversize {bound + 1}") if bound is not None else (OVERSIZE, what)
                yield pytest.param(model, SAMPLES[name], path, bad, id=f"{slot}:{'.'.join(map(str, path))}:{what}")


def test_every_route_body_has_a_full_sample():
    assert set(_body_models()) == set(SAMPLES), "a new body model: add a valid body using every field to SAMPLES"
    for name, model in _body_models().items():
        model.model_validate(SAMPLES[name])


def test_the_samples_reach_every_string_position_of_every_body():
    for name, model in _body_models().items():
        declared = _type_slots(model, name, set())
        reached = {slot for _, slot, _ in _value_slots(model, SAMPLES[name], (), name)}
        assert declared <= reached, f"{name}: put a string at {sorted(declared - reached)} in SAMPLES[{name!r}]"


@pytest.mark.parametrize(("model", "sample", "path", "bad"), list(_cases()))
def test_every_string_position_refuses_nul_lone_surrogates_and_oversize(model, sample, path, bad):
    with pytest.raises(ValidationError) as refused:
        model.model_validate(_with(sample, path, bad))
    assert all(error["loc"][0] == path[0] for error in refused.value.errors()), refused.value  # refused there


def test_the_walk_finds_the_free_text_fields():
    """The walk itself: it reaches the fields the issue named (a broken walk would test nothing)."""
    slots = {slot for name, model in _body_models().items() for _, slot, _ in _value_slots(model, SAMPLES[name], (), name)}
    assert {"CommandNote.reason", "JobAdjustment.reason", "Extension.reason", "Promotion.trial_id",
            "Fork.changes{key}", "Fork.changes{value}", "WarmStart.rename{key}", "WarmStart.rename{value}",
            "JobSpec.fixed_params{key}", "JobSpec.fixed_params{value}", "Resources.custom{key}",
            "Choice.values[]", "Grid.values[]", "JobSpec.search_space{key}", "JobSpec.name"} <= slots


def test_a_reason_fits_the_envelope_it_goes_on():
    job = "0b9f0a7e-34a3-4a4e-9d0e-3f2e1a9a1c11"
    ev.JobStarted(job_id=job, source="t", reason="r" * MAX_REASON)  # the longest reason a body takes
    with pytest.raises(ValidationError):
        ev.JobStarted(job_id=job, source="t", reason="r" * (MAX_REASON + 1))
    for name, model in _body_models().items():
        if "reason" in model.model_fields:
            model.model_validate({**SAMPLES[name], "reason": "r" * MAX_REASON})
            with pytest.raises(ValidationError):
                model.model_validate({**SAMPLES[name], "reason": "r" * (MAX_REASON + 1)})


def test_a_fork_changes_only_spec_fields_with_storable_json():
    fork = _body_models()["Fork"]
    for changes in ({"warm_start": {"jobs": []}}, {"no_such_field": 1}, {"fixed_params": {"a": float("nan")}},
                    {"fixed_params": {"a": 2**64}}, {"search_space": [[[[[[[[[["deep"]]]]]]]]]]}):
        with pytest.raises(ValidationError) as refused:
            fork.model_validate({"changes": changes})
        assert refused.value.errors()[0]["loc"][0] == "changes"
