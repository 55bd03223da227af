"""Start-up: a command imports only what it uses, and a new database gets its schema in one
step that builds exactly what the migrations build.

Which modules a real ``syncd`` process loaded is read from Python's own import trace
(``PYTHONPROFILEIMPORTTIME=1``, the environment form of ``-X importtime``): one line on stderr
per module imported, whenever and from whichever thread, with nothing added to syncd."""

from __future__ import annotations

import re
import uuid

import pytest
from alembic import command
from sqlalchemy import Engine, inspect

from syncd.db import connect, upgrade
from syncd.db.engine import alembic_config, create_schema, current_revision

# what a sync on the folder backend with an up-to-date database has no use for
NOT_FOR_A_PLAIN_SYNC = ("boto3", "botocore", "alembic", "prometheus_client")
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)$", re.MULTILINE)


def imported(stderr: str) -> set[str]:
    """The modules an import trace on stderr names (an empty trace fails: no silent pass)."""
    names = set(IMPORT_LINE.findall(stderr))
    assert "syncd.cli" in names, "no import trace on stderr"
    return names


def top_packages(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


TRACE = {"PYTHONPROFILEIMPORTTIME": "1"}


@pytest.mark.filesystem_only
def test_a_sync_with_nothing_new_loads_no_s3_alembic_or_prometheus(syncd):
    first = syncd.sync(env=TRACE)  # a new database: its schema in one step, no Alembic either
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.summary["downloaded"] == 9
    assert "alembic" not in top_packages(imported(first.stderr))

    again = syncd.sync(env=TRACE)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.summary["new_licenses"] == 0 and again.summary["downloaded"] == 0
    loaded = top_packages(imported(again.stderr))
    assert "sqlalchemy" in loaded and "requests" in loaded  # the trace is the run's
    assert loaded.isdisjoint(NOT_FOR_A_PLAIN_SYNC), loaded & set(NOT_FOR_A_PLAIN_SYNC)


@pytest.mark.parametrize("args", [("--help",), ("sync", "--help"), ("--version",)])
def test_help_and_version_load_no_database_or_http_library(syncd, args):
    done = syncd.run(*args, env=TRACE)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = top_packages(imported(done.stderr))
    assert loaded.isdisjoint(("sqlalchemy", "requests", *NOT_FOR_A_PLAIN_SYNC)), loaded


def test_a_database_error_is_still_one_line_with_sqlalchemy_loaded_late(syncd, tmp_path):
    """cli.main tells an SQLAlchemy error without importing SQLAlchemy itself: a database
    that cannot be opened is still exit 4 and one line, not an internal error."""
    folder = tmp_path / "not-a-db"
    folder.mkdir()
    done = syncd.sync(env={"SYNCD_DATABASE__URL": f"sqlite:///{folder}"})
    assert done.returncode == 4, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1].startswith("syncd: cannot use the database (")
    assert "internal error" not in done.stderr


# -- the one-step schema ---------------------------------------------------------------------


def migrate(engine: Engine) -> None:
    """Every migration in turn, as Alembic runs them (what a database made before the
    one-step schema went through)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema(engine: Engine) -> dict:
    """The schema as the database reports it: per table its columns (name, type, nullable,
    default; by name: a column a migration added comes last in its table, where the models
    may declare it earlier, which no query of syncd's depends on), primary key, foreign keys,
    indexes, unique and check constraints, all with their names."""
    inspector = inspect(engine)
    tables = {}
    for name in inspector.get_table_names():
        tables[name] = {
            "columns": {
                column["name"]: (
                    repr(column["type"]),
                    column["nullable"],
                    column.get("default"),
                    column.get("autoincrement"),
                )
                for column in inspector.get_columns(name)
            },
            "primary key": inspector.get_pk_constraint(name),
            "foreign keys": sorted(
                inspector.get_foreign_keys(name), key=lambda fk: str(fk.get("name"))
            ),
            "indexes": sorted(inspector.get_indexes(name), key=lambda ix: str(ix.get("name"))),
            "unique": sorted(
                inspector.get_unique_constraints(name), key=lambda uq: str(uq.get("name"))
            ),
            "checks": sorted(
                inspector.get_check_constraints(name), key=lambda ck: str(ck.get("name"))
            ),
        }
    return tables


def assert_one_step_equals_migrations(migrated_url: str, one_step_url: str) -> None:
    migrated, one_step = connect(migrated_url), connect(one_step_url)
    try:
        migrate(migrated)
        assert inspect(one_step).get_table_names() == []  # empty: upgrade takes the one step
        upgrade(one_step)
        assert current_revision(one_step) == current_revision(migrated)
        built, made = schema(migrated), schema(one_step)
        assert sorted(made) == sorted(built)
        assert len(built) >= 10 and "licenses" in built
        for table in built:
            assert made[table] == built[table], table
        assert sum(len(t["indexes"]) + len(t["unique"]) for t in built.values()) >= 5
        migrate(one_step)  # Alembic agrees it is at head: nothing to run, nothing fails
        upgrade(one_step)
        assert schema(one_step) == made
    finally:
        migrated.dispose()
        one_step.dispose()


def test_one_step_schema_equals_the_migrations_on_sqlite(tmp_path):
    assert_one_step_equals_migrations(
        f"sqlite:///{tmp_path / 'migrated.db'}", f"sqlite:///{tmp_path / 'one-step.db'}"
    )


@pytest.mark.postgres
def test_one_step_schema_equals_the_migrations_on_postgresql(postgres_server, postgres_url):
    name = f"syncd_migrated_{uuid.uuid4().hex[:12]}"
    migrated = postgres_server.create_database(name)
    try:
        assert_one_step_equals_migrations(migrated, postgres_url)
    finally:
        postgres_server.drop_database(name)


def test_a_database_with_tables_but_no_version_is_left_to_the_migrations(tmp_path):
    """Only an empty database gets the one step: one with tables of its own (another
    application's, or a half-made schema) goes through Alembic, as before."""
    from sqlalchemy import text

    engine = connect(f"sqlite:///{tmp_path / 'shared.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE licenses (id INTEGER)"))
    with pytest.raises(Exception, match="licenses"):  # Alembic's CREATE TABLE licenses
        upgrade(engine)
    assert current_revision(engine) is None
    engine.dispose()


def test_create_schema_stamps_head(tmp_path):
    from syncd.db.engine import HEAD_REVISION

    engine = connect(f"sqlite:///{tmp_path / 'new.db'}")
    with engine.begin() as connection:
        create_schema(connection)
    assert current_revision(engine) == HEAD_REVISION
    engine.dispose()
