"""asset details and /updated: when an asset's details were last asked for, when it was
deleted, and the mark of each /updated stream

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        batch.add_column(sa.Column("details_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(), nullable=True))
    op.create_table(
        "update_state",
        sa.Column("stream", sa.String(32), nullable=False),
        sa.Column("mark_time", sa.DateTime(), nullable=True),
        sa.Column("mark_ids", sa.JSON(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.Column("last_outcome", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_update_state")),
    )


def downgrade() -> None:
    op.drop_table("update_state")
    with op.batch_alter_table("assets") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("details_at")
