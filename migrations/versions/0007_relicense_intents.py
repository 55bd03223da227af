"""relicensing intents: one per need (media type, media id, size), written before a licensing
request is sent, so that no crash or retry can license the same need twice

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relicense_intents",
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("media_id", sa.String(1024), nullable=False),
        sa.Column("size", sa.String(1024), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("license_id", sa.String(1024), nullable=False),
        sa.Column("subscription_id", sa.String(1024), nullable=True),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("new_license_id", sa.String(1024), nullable=True),
        sa.Column("day", sa.String(10), nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint(
            "media_type", "media_id", "size", name=op.f("pk_relicense_intents")
        ),
    )
    op.create_index(
        op.f("ix_relicense_intents_state"), "relicense_intents", ["state"], unique=False
    )
    op.create_index(op.f("ix_relicense_intents_day"), "relicense_intents", ["day"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_relicense_intents_day"), table_name="relicense_intents")
    op.drop_index(op.f("ix_relicense_intents_state"), table_name="relicense_intents")
    op.drop_table("relicense_intents")
