"""each stored file's last hash check, for `syncd verify` and verify.rehash_after

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: never re-hashed since it was stored (its sha256 was computed on the way in, at
    # stored_at, which counts as its last check)
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("checked_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("checked_at")
