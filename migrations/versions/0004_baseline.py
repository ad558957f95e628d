"""The job's baseline: its untuned base model scored on the eval split (BaselineEvaluated).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tunix_tuning_jobs", sa.Column("baseline", JSONB))


def downgrade() -> None:
    op.drop_column("tunix_tuning_jobs", "baseline")
