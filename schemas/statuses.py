"""Status names of jobs and trials, in one place for the API, the projection and the tuner."""

from __future__ import annotations

from typing import Literal

JobStatus = Literal["created", "running", "cancelling", "completed", "failed", "cancelled"]
JOB_STATUSES: tuple[str, ...] = JobStatus.__args__
TERMINAL_JOB_STATUSES = ("completed", "failed", "cancelled")

# stale: its worker, node or tuner was lost, it resumes from its last checkpoint (or fails by
# the job's retry rule); preempted: its tuner handed the job to another one, it resumes there.
TrialStatus = Literal["pending", "running", "stale", "preempted", "completed", "failed", "stopped"]
TRIAL_STATUSES: tuple[str, ...] = TrialStatus.__args__
TRIAL_TERMINAL = ("completed", "failed", "stopped")
TRIAL_INTERRUPTED = ("stale", "preempted")
