"""each stream's last successful run, for `syncd status`

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 20:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stream_state") as batch:
        batch.add_column(sa.Column("last_success_at", sa.DateTime(), nullable=True))
    # a stream whose last run went well succeeded then
    op.execute("UPDATE stream_state SET last_success_at = last_run_at WHERE last_outcome = 'ok'")


def downgrade() -> None:
    with op.batch_alter_table("stream_state") as batch:
        batch.drop_column("last_success_at")
