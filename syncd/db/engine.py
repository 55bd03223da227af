"""One engine factory, and the schema upgrade that every writing command runs first."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    exc,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.errors import ConfigError, SyncdError


class DatabaseError(SyncdError):
    """The database cannot be opened or used (CONTRACT 2: exit 4)."""

    exit_code = 4


def migrations_dir() -> Path:
    import syncd.migrations

    return Path(syncd.migrations.__file__).parent


def check_url(url: str) -> None:
    """Raises ConfigError for a URL SQLAlchemy cannot use (checked before anything is made)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("database.url", "is not a SQLAlchemy URL") from None
    if parsed.get_backend_name() == "postgres":
        raise ConfigError(
            "database.url", "postgres:// is not a SQLAlchemy URL: write postgresql+psycopg://..."
        )
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


def describe(url: str) -> str:
    """Where the database is, for error lines: a SQLite file's path, or PostgreSQL's host,
    port and database (never the password)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(unparsable database.url)"
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        return f"SQLite file {str(path.absolute())!r}" if path else "in-memory SQLite"
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"
    return f"PostgreSQL at {where}"


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)


def connect(url: str, write: bool = True) -> Engine:
    """An engine for ``url``. On SQLite, a writing engine begins every transaction with
    ``BEGIN IMMEDIATE``: it waits (up to the busy timeout) for another process's write to end
    instead of failing at once with "database is locked" when a read turns into a write; a
    reading engine (``status``, a dry run) begins deferred and never blocks a writer."""
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
        event.listen(engine, "begin", _sqlite_begin_immediate if write else _sqlite_begin)
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
HEAD_REVISION = "0008"

# Two processes starting on a new PostgreSQL database at once: one migrates, the other waits
# for it under this advisory lock and then finds the schema at head (on SQLite, BEGIN
# IMMEDIATE does the same).
MIGRATION_LOCK = 0x73796E6364  # "syncd"


def _sqlite_begin(connection) -> None:
    connection.exec_driver_sql("BEGIN")


def _sqlite_begin_immediate(connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def clock_sql(dialect: str) -> str:
    """The database's clock in seconds since the epoch, as an SQL expression: leases and
    heartbeats are compared on one clock, whichever host wrote them."""
    if dialect == "sqlite":
        return "((julianday('now') - 2440587.5) * 86400.0)"
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


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
    """Brings the schema to head: nothing to do (and Alembic not loaded) when it is there; an
    empty database gets the newest schema in one step (``create_schema``); any other is
    migrated by Alembic, one revision after the other."""
    if current_revision(engine) == HEAD_REVISION:
        return
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        if not inspect(connection).get_table_names():
            create_schema(connection)
            return
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def create_schema(connection: Connection) -> None:
    """An empty database's schema in one step: the models' tables, indexes and constraints
    (which a test keeps equal to what the migrations build), and Alembic's version table
    stamped at head, as ``alembic stamp head`` would. Some 10 times faster than running every
    migration (on SQLite, most of them copy whole tables), and Alembic is not even loaded."""
    from syncd.db.models import Base

    Base.metadata.create_all(connection)
    # the table Alembic makes (alembic.ddl.impl.DefaultImpl.version_table_impl)
    version = Table(
        "alembic_version",
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    version.create(connection)
    connection.execute(version.insert().values(version_num=HEAD_REVISION))
