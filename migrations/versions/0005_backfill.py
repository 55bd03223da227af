"""backfill checkpoints: how far each backfill of a stream and range has walked

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfill_state",
        sa.Column("stream", sa.String(32), nullable=False),
        sa.Column("team_history", sa.Boolean(), nullable=False),
        sa.Column("range_key", sa.String(64), nullable=False),
        sa.Column("since_at", sa.DateTime(), nullable=True),
        sa.Column("until_at", sa.DateTime(), nullable=True),
        sa.Column("fixed_until", sa.DateTime(), nullable=False),
        sa.Column("checkpoint", sa.DateTime(), nullable=False),
        sa.Column("paged_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint(
            "stream", "team_history", "range_key", name=op.f("pk_backfill_state")
        ),
    )


def downgrade() -> None:
    op.drop_table("backfill_state")
