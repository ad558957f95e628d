"""Event bodies at the edges of what the contracts allow, and just past them, as another system
might publish them: the property tests send them through the projector and fold them through
the tuner, and every one must be projected or refused while the events after it go on.

Bodies are JSON documents (dicts), not schemas.events objects: many of them are invalid on
purpose, and the point is what a consumer makes of bytes it did not write.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

from schemas import events as ev
from schemas.job_spec import JobSpec
from tests.support.specs import example_spec

# (at the edge but allowed, just past the edge): drawn from the second list one time in eight.
TIMES = (["1970-01-01T00:00:00Z", "9999-12-30T23:59:59.999999+00:00", "2026-06-01T12:00:00",
          "2026-01-01T00:00:00.5+05:45", "9999-12-30T10:00:00-13:59"],
         ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z"])
FLOATS = ([1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -0.0, 0.0, 1e-308, 2.0**53 + 1], [])
INTS = ([0, 1, 2**31 - 1], [2**31, -1, 2**63 - 1, -(2**63), 2**63, 10**30])
SCALARS = ([2**63 - 1, -(2**63), 1.7976931348623157e308, True, "😀" * 100], [2**63, 10**30])
TEXTS = (["x" * 200, "😀" * 200, "\u2028\u202e\ufeff", "ok", "\\u0000", "'; DROP TABLE tunix_tuning_jobs; --",
          "<script>alert(1)</script>", "ä" * 100],
         ["", "x" * 201, "\u0000", "😀" * 2001, "ä" * 10_001])


def _pick(rng: random.Random, values: tuple[list, list]) -> Any:
    allowed, past = values
    return rng.choice(past) if past and rng.random() < 1 / 8 else rng.choice(allowed)


def envelope(job_id: uuid.UUID, event_type: str, payload: dict, rng: random.Random, **fields) -> dict:
    return {"event_id": str(uuid.uuid4()), "job_id": str(job_id), "type": event_type, "occurred_at": _pick(rng, TIMES),
            "schema_version": 1, "source": _pick(rng, TEXTS) or "other-system", "payload": payload, **fields}


def spec_body(rng: random.Random, **overrides) -> dict:
    spec = JobSpec.model_validate(example_spec()).model_dump(mode="json")
    return {**spec, **overrides}


def _trial_payload(rng: random.Random) -> dict:
    return {"trial_id": _pick(rng, TEXTS) or "t", "status": rng.choice(["pending", "running", "completed", "stale"]),
            "params": {_pick(rng, TEXTS): _pick(rng, SCALARS)},
            "metrics": {_pick(rng, TEXTS): _pick(rng, FLOATS)}, "iteration": _pick(rng, INTS),
            "reason": _pick(rng, TEXTS), "artifact_path": _pick(rng, TEXTS), "cpu_s": abs(_pick(rng, FLOATS)),
            "gpu_s": abs(_pick(rng, FLOATS))}


def _nested(depth: int) -> Any:
    return {"d": _nested(depth - 1)} if depth else [10**30, -(10**30), 1e308]


def _payloads(rng: random.Random, job_id: uuid.UUID) -> list[tuple[str, dict, dict]]:
    """(type, payload, extra envelope fields), one or more of every event type."""
    return [
        ("JobCreated", {"spec": spec_body(rng, name=_pick(rng, TEXTS), num_samples=_pick(rng, INTS))}, {}),
        ("JobCreated", {"spec": spec_body(rng, max_concurrent_trials=_pick(rng, INTS))}, {}),
        ("JobStarted", {}, {"claim": _pick(rng, INTS)}),
        ("JobCancelRequested", {"reason": _pick(rng, TEXTS)}, {"reason": _pick(rng, TEXTS)}),
        ("JobClaimed", {"tuner_id": _pick(rng, TEXTS) or "t", "generation": (generation := rng.choice([1, 2, 3, 2**31 - 1])),
                        "budget_spent_s": abs(_pick(rng, FLOATS))}, {"claim": rng.choice([generation, None, 1])}),
        ("JobClaimed", {"tuner_id": "another", "generation": 1}, {"claim": 1}),
        ("TrialUpdated", _trial_payload(rng), {"claim": rng.choice([None, 1, 2])}),
        ("TrialUpdated", _trial_payload(rng), {"actor": _pick(rng, TEXTS)}),
        ("JobAdjusted", {"changes": {"num_samples": _pick(rng, INTS)}}, {}),
        ("JobAdjusted", {"changes": {"max_concurrent_trials": _pick(rng, (INTS[0] + [None], INTS[1])),
                                     "time_budget_s": _pick(rng, (FLOATS[0] + [None], [0.0, -1.0]))}}, {}),
        ("JobAdjusted", {"changes": {"search_space": "anything"}}, {}),
        ("JobAdjusted", {"changes": {"time_budget_s": rng.choice(["100", True, " 50 ", 100])}}, {}),
        ("JobExtended", {"num_samples_added": _pick(rng, INTS), "spec": spec_body(rng),
                         "claim": _pick(rng, (INTS[0] + [None], INTS[1]))}, {"claim": rng.choice([None, 1, 99])}),
        ("JobCreated", {"spec": spec_body(rng), "lineage": {"relation": "fork", "parents": [str(uuid.uuid4())],
                                                              "at_trials": rng.choice([0, 5, 2**63 - 1, 2**63, 10**30])}}, {}),
        ("ModelPromoted", {"name": _pick(rng, TEXTS), "version": _pick(rng, INTS), "stage": "candidate",
                           "trial_id": "t", "path": _pick(rng, TEXTS), "source_path": "/x", "metric_name": "score",
                           "metric": _pick(rng, FLOATS), "params": {"lr": _pick(rng, INTS)}}, {}),
        ("DecisionMade", {"kind": "suggestion", "decider": "tpe", "outcome": "suggest", "summary": _pick(rng, TEXTS),
                          "inputs": {"nested": _nested(rng.randrange(1, 60)), "big": _pick(rng, INTS)}}, {}),
        ("JobCompleted", {"best_trial_id": _pick(rng, TEXTS), "metric_name": "score", "best_metric": _pick(rng, FLOATS),
                          "best_params": {"x": _pick(rng, INTS)}}, {}),
        ("BaselineEvaluated", {"metrics": {_pick(rng, TEXTS) or "m": _pick(rng, FLOATS)}, "error": _pick(rng, TEXTS),
                               "path": _pick(rng, TEXTS), "eval_size": _pick(rng, INTS)}, {"claim": rng.choice([None, 1])}),
        ("JobFailed", {"error": _pick(rng, TEXTS)}, {}),
        ("JobCancelled", {"reason": _pick(rng, TEXTS)}, {}),
    ]


def extreme_stream(seed: int, jobs: int) -> list[tuple[uuid.UUID, dict]]:
    """For each of `jobs` jobs: every event type with values drawn at the edges (seeded), in
    a shuffled order after a first JobCreated (valid for most jobs). (job_id, body)."""
    rng = random.Random(seed)
    stream = []
    for _ in range(jobs):
        job_id = uuid.uuid4()
        bodies = [envelope(job_id, kind, payload, rng, **extra) for kind, payload, extra in _payloads(rng, job_id)]
        created = [i for i, body in enumerate(bodies) if body["type"] == "JobCreated"]
        first = bodies.pop(rng.choice(created))
        rest = bodies
        rng.shuffle(rest)
        if rng.random() < 0.7:  # most jobs exist, so the rest of their events reach the folds
            first = json.loads(ev.serialize_event(valid_created(job_id, "at the edges")))
        stream += [(job_id, body) for body in [first, *rest]]
    return stream


def valid_created(job_id: uuid.UUID, name: str) -> ev.JobCreated:
    return ev.JobCreated(job_id=job_id, source="tests.other-system",
                         payload=ev.JobCreatedPayload(spec=JobSpec.model_validate(example_spec(name=name))))


def encode(body: dict) -> bytes:
    """The body as another system's JSON encoder writes it (integers of any size, \\u escapes)."""
    return json.dumps(body).encode()
