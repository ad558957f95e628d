"""A job as the read model had it at an earlier point of its log, rebuilt by folding the job's
events up to that point through the projector's own rules (service/read/projection.py).

The job's events are keyed by its id, so they share one partition: their offsets order them,
and an offset is a point of the job's log (a "log position"). A time means the last event
that occurred at or before it. Nothing is stored per version: the events table (the log's
copy in the read model) is enough, for running jobs and ended ones alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from schemas import events as ev
from service.read.projection import Row, fenced, project_job, project_trial, row_refusal

AsOf = int | datetime

_ENVELOPE = ("event_id", "job_id", "type", "occurred_at", "schema_version", "source", "correlation_id",
             "causation_id", "claim", "actor", "reason")


def event_of(row: Mapping[str, Any]) -> ev.Event:
    """The event an events-table row recorded, as it was on the log."""
    fields = {name: row[name] for name in _ENVELOPE if row.get(name) is not None}
    payload = row["payload"]
    fields["payload"] = json.loads(payload) if isinstance(payload, str) else payload
    return ev.parse_event(json.dumps(fields, default=str))


def fold(events: Iterable[ev.Event]) -> tuple[Row | None, dict[str, Row]]:
    """The job row and its trial rows after `events` (in log order), as the projector folds them."""
    job: Row | None = None
    trials: dict[str, Row] = {}
    for event in events:
        refused = row_refusal(job, event)
        if refused is not None or fenced(job, event):
            continue
        if isinstance(event, ev.TrialUpdated):
            trial = project_trial(trials.get(event.payload.trial_id), event)
            if trial is not None:
                trials[event.payload.trial_id] = trial
        job = project_job(job, event)
    return job, trials
