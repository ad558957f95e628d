"""Read model: jobs, trials, the event audit trail and trial metric history.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tunix_tuning_jobs",
        sa.Column("job_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("dataset_key", sa.String(200), nullable=False),
        sa.Column("base_model_id", sa.String(500), nullable=False),
        sa.Column("metric_name", sa.String(100), nullable=False),
        sa.Column("metric_mode", sa.String(3), nullable=False),
        sa.Column("num_samples", sa.Integer, nullable=False),
        sa.Column("max_concurrent_trials", sa.Integer, nullable=False),
        sa.Column("spec", JSONB, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ),
        sa.Column("finished_at", TZ),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("best_trial_id", sa.String(200)),
        sa.Column("best_metric", sa.Float),
        sa.Column("best_run_id", sa.String(200)),
        sa.Column("best_checkpoint_path", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_index(
        "ix_tunix_tuning_jobs_status_created", "tunix_tuning_jobs", ["status", "created_at"]
    )
    op.create_table(
        "tunix_tuning_trials",
        sa.Column(
            "job_id",
            UUID(as_uuid=True),
            sa.ForeignKey("tunix_tuning_jobs.job_id"),
            primary_key=True,
        ),
        sa.Column("trial_id", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("metrics", JSONB, nullable=False),
        sa.Column("iteration", sa.Integer),
        sa.Column("reason", sa.Text),
        sa.Column("run_id", sa.String(200)),
        sa.Column("artifact_path", sa.Text),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ),
        sa.Column("finished_at", TZ),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "tunix_tuning_events",
        sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("job_id", UUID(as_uuid=True), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("correlation_id", UUID(as_uuid=True)),
        sa.Column("causation_id", UUID(as_uuid=True)),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("kafka_partition", sa.Integer, nullable=False),
        sa.Column("kafka_offset", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_tunix_tuning_events_job_offset", "tunix_tuning_events", ["job_id", "kafka_offset"]
    )
    op.create_table(
        "tunix_tuning_trial_metrics",
        sa.Column("job_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("trial_id", sa.String(200), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("metrics", JSONB, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tunix_tuning_trial_metrics")
    op.drop_table("tunix_tuning_events")
    op.drop_table("tunix_tuning_trials")
    op.drop_table("tunix_tuning_jobs")
