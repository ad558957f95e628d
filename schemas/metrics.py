"""The Prometheus metrics every process exposes at /metrics: names, labels and meaning are a
contract with whoever builds dashboards and alerts on them, so they are declared once here.

Each process registers the same set (prometheus_client's default registry) and fills in
the ones that concern it: the API publishes, the projector consumes and dead-letters, the
tuner consumes, publishes and runs trials.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

_DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600)

EVENTS_PUBLISHED = Counter("tunix_events_published", "Events this process put on the log, by type", ["type"])
EVENTS_CONSUMED = Counter("tunix_events_consumed", "Events this process read from the log and handled, by type", ["type"])
EVENTS_DEAD_LETTERED = Counter("tunix_events_dead_lettered", "Records this process sent to the dead-letter topic")
FENCED_EVENTS = Counter("tunix_events_fenced", "Events ignored by the read model because a later JobClaimed "
                        "superseded the claim they were published under, by type", ["type"])
JOBS_OWNED = Gauge("tunix_tuner_jobs_owned", "Started, unfinished jobs on this tuner's partitions")
TAKEOVER_SECONDS = Histogram("tunix_tuner_takeover_seconds", "Partition assigned to this tuner -> its unfinished "
                             "jobs claimed (state loaded, log caught up)", buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60))
PROJECTOR_LAG = Gauge("tunix_projector_lag_events", "Events on the log the projector has not read yet (all partitions)")
TRIALS_RUNNING = Gauge("tunix_trials_running", "Trials running now")
TRIAL_DURATION = Histogram("tunix_trial_duration_seconds", "Trial wall time, start to end, by how it ended",
                           ["status"], buckets=_DURATION_BUCKETS)
JOB_DURATION = Histogram("tunix_job_duration_seconds", "Experiment wall time, by the job's terminal event",
                         ["outcome"], buckets=_DURATION_BUCKETS)


CONTENT_TYPE = CONTENT_TYPE_LATEST  # text/plain; version=0.0.4; charset=utf-8


def exposition() -> tuple[bytes, str]:
    """(body, content type) of a /metrics answer."""
    return generate_latest(), CONTENT_TYPE_LATEST
