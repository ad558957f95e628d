"""Steering and carrying results forward: who sent each command and why, a job's lineage,
each trial's cost, and the model registry.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tunix_tuning_events", sa.Column("actor", sa.String(200)))
    op.add_column("tunix_tuning_events", sa.Column("reason", sa.Text))
    op.add_column("tunix_tuning_jobs", sa.Column("lineage", JSONB))
    op.add_column("tunix_tuning_trials", sa.Column("cpu_s", sa.Float))
    op.add_column("tunix_tuning_trials", sa.Column("gpu_s", sa.Float))
    op.create_table(
        "tunix_model_versions",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("stage", sa.String(40), nullable=False),
        sa.Column("job_id", UUID(as_uuid=True), nullable=False),
        sa.Column("trial_id", sa.String(200), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("metric_name", sa.String(100), nullable=False),
        sa.Column("metric", sa.Float),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tunix_model_versions")
    op.drop_column("tunix_tuning_trials", "gpu_s")
    op.drop_column("tunix_tuning_trials", "cpu_s")
    op.drop_column("tunix_tuning_jobs", "lineage")
    op.drop_column("tunix_tuning_events", "reason")
    op.drop_column("tunix_tuning_events", "actor")
