"""indexes for a long history: the assets whose details are still to be asked for are found
by a seek (not a scan of every asset), and the search for sidecars out of date reads an
index that covers what it asks of each asset (its storage, kind and sha256), not the table,
and is skipped when an index of each storage's sidecars by state shows nothing out of date

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 21:20:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_assets_details_pending",
        "assets",
        ["media_type", "status", "details_at", "media_id"],
        unique=False,
    )
    op.create_index(
        "ix_sidecars_asset_state",
        "sidecars",
        ["media_type", "media_id", "storage", "kind", "sha256"],
        unique=False,
    )
    op.create_index(
        "ix_sidecars_storage_state", "sidecars", ["storage", "sha256", "kind"], unique=False
    )
    op.drop_index("ix_sidecars_asset", table_name="sidecars")


def downgrade() -> None:
    op.create_index("ix_sidecars_asset", "sidecars", ["media_type", "media_id"], unique=False)
    op.drop_index("ix_sidecars_storage_state", table_name="sidecars")
    op.drop_index("ix_sidecars_asset_state", table_name="sidecars")
    op.drop_index("ix_assets_details_pending", table_name="assets")
