"""The database: models, engine and Alembic upgrade."""

from syncd.db.engine import connect, upgrade

__all__ = ["connect", "upgrade"]
