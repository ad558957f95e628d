"""Events at the edges of the contracts, folded as the consumers fold them: nothing raises past
the parser, and the tuner refuses exactly what the projector refuses (one shared rule), so the
two always agree on every job's status."""

from __future__ import annotations

import pickle

import pytest
from pydantic import ValidationError

from consumers.projector.bulk import _column_values
from consumers.projector.read_model import event_row
from consumers.records import LoggedEvent
from consumers.tuner.state import TunerJob, next_state
from schemas import events as ev
from schemas import tables as t
from service.read.projection import fenced, project_job, project_trial, row_refusal
from tests.support.extreme_events import encode, extreme_stream


@pytest.mark.parametrize("seed", range(60))
def test_every_extreme_event_parses_or_is_refused_and_both_folds_agree(seed):
    rows: dict = {}
    tuner: dict[object, TunerJob | None] = {}
    trials: dict = {}
    parsed = 0
    for job_id, body in extreme_stream(seed, jobs=3):
        try:
            event = ev.parse_event(encode(body))
        except ValidationError:
            continue
        parsed += 1
        row, before = rows.get(job_id), tuner.get(job_id)
        after = next_state(before, event)
        if row_refusal(row, event) is not None:
            assert after is before, f"the tuner acted on an event the projector refuses: {body}"
            continue
        if fenced(row, event):
            assert after is before, f"the tuner acted on an event the projector ignores (fenced): {body}"
            continue
        if isinstance(event, ev.TrialUpdated):
            trial = project_trial(trials.get((job_id, event.payload.trial_id)), event)
            trials[(job_id, event.payload.trial_id)] = trial or trials.get((job_id, event.payload.trial_id))
            _column_values(t.trials, [trials[(job_id, event.payload.trial_id)]])
        rows[job_id], tuner[job_id] = project_job(row, event), after
        # Every row the batch writes encodes for PostgreSQL (JSONB through orjson, 64-bit integers).
        _column_values(t.jobs, [rows[job_id]])
        _column_values(t.events, [event_row(LoggedEvent(event, 0, 0))])
        assert (after.status, after.claim) == (rows[job_id]["status"], rows[job_id]["claim"]), body
        if not after.finished:
            assert after.spec.model_dump(mode="json") == rows[job_id]["spec"], body
        pickle.loads(pickle.dumps(after))  # what the snapshot keeps survives a round trip
        assert TunerJob.model_validate_json(after.model_dump_json()) == after
    assert parsed  # some events of every stream are valid


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z"])
def test_a_time_no_consumer_can_store_is_refused_at_parse_naming_the_field(moment):
    (job_id, body), *_ = extreme_stream(0, jobs=1)
    body = {**body, "occurred_at": moment, "payload": {"spec": body["payload"]["spec"] | {"name": "n",
                                                                                           "num_samples": 1}}}
    with pytest.raises(ValidationError, match="occurred_at"):
        ev.parse_event(encode(body))
