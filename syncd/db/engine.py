"""One engine factory, and the Alembic upgrade that every writing command runs first."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.errors import ConfigError, SyncdError


class DatabaseError(SyncdError):
    """The database cannot be opened or used."""

    exit_code = 1


def migrations_dir() -> Path:
    import syncd.migrations

    return Path(syncd.migrations.__file__).parent


def check_url(url: str) -> None:
    """Raises ConfigError for a URL SQLAlchemy cannot use (checked before anything is made)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("database.url", "is not a SQLAlchemy URL") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            "database.url",
            f"backend {parsed.get_backend_name()!r} is not supported (sqlite or postgresql)",
        )
    if parsed.get_backend_name() == "postgresql" and parsed.drivername not in (
        "postgresql",
        "postgresql+psycopg",
    ):
        raise ConfigError("database.url", "use the psycopg 3 driver: postgresql+psycopg://...")


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)


def connect(url: str) -> Engine:
    check_url(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"cannot create the folder of {str(path)!r}: {exc.strerror or exc}"
            ) from None
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # the driver's own transaction handling skips DDL (a migration killed half-way would leave
    # half a schema): transactions are begun explicitly instead, in _sqlite_begin
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# The newest migration; a test keeps it equal to Alembic's head. A database already there is
# not handed to Alembic at all (loading it is a good part of a run's start-up).
HEAD_REVISION = "0001"


def _sqlite_begin(connection) -> None:
    connection.exec_driver_sql("BEGIN")


def alembic_config():
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except exc.DatabaseError:  # no such table yet
        return None


def upgrade(engine: Engine) -> None:
    if current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
