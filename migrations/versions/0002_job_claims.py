"""Job ownership: which tuner claimed a job (JobClaimed) and the claim each event came under;
the Ray node each trial ran on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tunix_tuning_jobs", sa.Column("owner", sa.String(200)))
    op.add_column("tunix_tuning_jobs", sa.Column("claim", sa.Integer))
    op.add_column("tunix_tuning_events", sa.Column("claim", sa.Integer))
    op.add_column("tunix_tuning_trials", sa.Column("node", sa.String(200)))


def downgrade() -> None:
    op.drop_column("tunix_tuning_trials", "node")
    op.drop_column("tunix_tuning_events", "claim")
    op.drop_column("tunix_tuning_jobs", "claim")
    op.drop_column("tunix_tuning_jobs", "owner")
