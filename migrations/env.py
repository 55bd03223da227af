"""Alembic environment: syncd passes its own connection (syncd db upgrade, or any writing
command at start); plain `alembic` runs use SYNCD_DATABASE__URL."""

import os

from alembic import context
from sqlalchemy import create_engine

from syncd.db.models import Base

target_metadata = Base.metadata


def run_with(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    engine = create_engine(os.environ.get("SYNCD_DATABASE__URL", "sqlite:///syncd.db"))
    with engine.begin() as conn:
        run_with(conn)
