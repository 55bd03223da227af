"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 00:58:29.546016
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("media_id", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("sidecar_sha256", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("media_type", "media_id", name=op.f("pk_assets")),
    )
    op.create_table(
        "files",
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("media_id", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.String(length=1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_files")),
        sa.UniqueConstraint(
            "media_type", "media_id", "size", name=op.f("uq_files_media_type_media_id_size")
        ),
    )
    op.create_table(
        "licenses",
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("license_id", sa.String(length=1024), nullable=False),
        sa.Column("media_id", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.String(length=1024), nullable=False),
        sa.Column("format", sa.String(length=1024), nullable=True),
        sa.Column("license", sa.String(length=1024), nullable=False),
        sa.Column("download_time", sa.DateTime(), nullable=False),
        sa.Column("subscription_id", sa.String(length=1024), nullable=True),
        sa.Column("username", sa.String(length=1024), nullable=True),
        sa.Column("is_downloadable", sa.Boolean(), nullable=True),
        sa.Column("license_metadata", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("file_key", sa.String(length=1024), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("media_type", "license_id", name=op.f("pk_licenses")),
    )
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.create_index("ix_licenses_asset", ["media_type", "media_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_licenses_status"), ["status"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("command", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_table(
        "stream_state",
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("team_history", sa.Boolean(), nullable=False),
        sa.Column("watermark_license_id", sa.String(length=1024), nullable=True),
        sa.Column("watermark_time", sa.DateTime(), nullable=True),
        sa.Column("checkpoint_run_id", sa.Integer(), nullable=True),
        sa.Column("checkpoint_page", sa.Integer(), nullable=True),
        sa.Column("checkpoint_head_id", sa.String(length=1024), nullable=True),
        sa.Column("checkpoint_head_time", sa.DateTime(), nullable=True),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["last_run_id"], ["runs.id"], name=op.f("fk_stream_state_last_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("stream", "team_history", name=op.f("pk_stream_state")),
    )


def downgrade() -> None:
    op.drop_table("stream_state")
    op.drop_table("runs")
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licenses_status"))
        batch_op.drop_index("ix_licenses_asset")

    op.drop_table("licenses")
    op.drop_table("files")
    op.drop_table("assets")
