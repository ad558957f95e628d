"""The PostgreSQL read model, built only from events by the projector (see migrations/).

Every column is derived from the event log, so replaying the log into an empty schema
rebuilds the same rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

jobs = Table(
    "tunix_tuning_jobs",
    metadata,
    Column("job_id", UUID(as_uuid=True), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("dataset_key", String(200), nullable=False),
    Column("base_model_id", String(500), nullable=False),
    Column("metric_name", String(100), nullable=False),
    Column("metric_mode", String(3), nullable=False),
    Column("num_samples", Integer, nullable=False),
    Column("max_concurrent_trials", Integer, nullable=False),
    Column("spec", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("best_trial_id", String(200)),
    Column("best_metric", Float),
    Column("best_run_id", String(200)),
    Column("best_checkpoint_path", Text),
    Column("error", Text),
    # The tuner that owns the job now, and the generation of its claim (JobClaimed).
    Column("owner", String(200)),
    Column("claim", Integer),
    # Warm start or fork: relation, parent jobs, fork point, how each parameter was carried
    # over, and how many parent trials seeded the searcher (the seeds stay in its JobCreated).
    Column("lineage", JSONB),
    # The untuned base model's scores on the eval split (a BaselineEvaluated), or None.
    Column("baseline", JSONB),
    Index("ix_tunix_tuning_jobs_status_created", "status", "created_at"),
)

trials = Table(
    "tunix_tuning_trials",
    metadata,
    Column("job_id", UUID(as_uuid=True), ForeignKey(jobs.c.job_id), primary_key=True),
    Column("trial_id", String(200), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("params", JSONB, nullable=False),
    Column("metrics", JSONB, nullable=False),
    Column("iteration", Integer),
    Column("reason", Text),
    Column("run_id", String(200)),
    Column("artifact_path", Text),
    Column("node", String(200)),  # the Ray node of its latest report
    Column("cpu_s", Float),  # reserved CPU-seconds so far (its cost ledger line)
    Column("gpu_s", Float),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Append-only audit trail: every event the projector accepted, where it sat in the log.
events = Table(
    "tunix_tuning_events",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("job_id", UUID(as_uuid=True), nullable=False),
    Column("type", String(40), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("source", String(200), nullable=False),
    Column("correlation_id", UUID(as_uuid=True)),
    Column("causation_id", UUID(as_uuid=True)),
    Column("claim", Integer),
    Column("actor", String(200)),  # who sent the command (gateway events)
    Column("reason", Text),
    Column("payload", JSONB, nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Index("ix_tunix_tuning_events_job_offset", "job_id", "kafka_offset"),
)

trial_metrics = Table(
    "tunix_tuning_trial_metrics",
    metadata,
    Column("job_id", UUID(as_uuid=True), primary_key=True),
    Column("trial_id", String(200), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("metrics", JSONB, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# The model registry: every promoted version of every named model (ModelPromoted).
model_versions = Table(
    "tunix_model_versions",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("stage", String(40), nullable=False),
    Column("job_id", UUID(as_uuid=True), nullable=False),
    Column("trial_id", String(200), nullable=False),
    Column("path", Text, nullable=False),
    Column("source_path", Text, nullable=False),
    Column("metric_name", String(100), nullable=False),
    Column("metric", Float),
    Column("params", JSONB, nullable=False),
    Column("promoted_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200)),
    Column("reason", Text),
    Column("event_id", UUID(as_uuid=True), nullable=False),
)
