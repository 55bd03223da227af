"""The database: migrations make exactly the models' schema, on SQLite and on a real
PostgreSQL; a sync on PostgreSQL behaves as on SQLite."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from syncd.db import connect, upgrade
from syncd.db.models import Base
from tests.conftest import first_pass_updated_requests, requests_by_kind, steady_update_windows


def assert_no_drift(url: str) -> None:
    """The migrations, run one after the other by Alembic (``upgrade`` would give a new
    database the models' schema in one step: tests/test_startup.py holds the two equal)."""
    from alembic import command

    from syncd.db.engine import alembic_config

    engine = connect(url)
    try:
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        upgrade(engine)  # idempotent
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
        assert set(inspect(engine).get_table_names()) >= {
            "licenses",
            "files",
            "assets",
            "stream_state",
            "runs",
            "alembic_version",
        }
    finally:
        engine.dispose()


def test_migrations_match_the_models_on_sqlite(tmp_path):
    assert_no_drift(f"sqlite:///{tmp_path / 'drift.db'}")


@pytest.mark.postgres
def test_migrations_match_the_models_on_postgresql(postgres_url):
    assert_no_drift(postgres_url)


@pytest.mark.postgres
def test_sync_on_postgresql_matches_the_contract_example(syncd, postgres_url):
    env = {"SYNCD_DATABASE__URL": postgres_url}
    first = syncd.sync(env=env)
    assert first.returncode == 0, first.stderr
    assert first.summary["downloaded"] == 9 and first.summary["already_present"] == 1
    # CONTRACT 2's 14, and the details and first /updated pass of sync's defaults
    assert first.summary["unavailable"] == 2 and first.summary["api_requests"] == (
        14 + 4 + first_pass_updated_requests()
    )
    syncd.sim.reset_log()
    windows = steady_update_windows()
    second = syncd.sync(env=env)
    assert second.returncode == 0, second.stderr
    assert requests_by_kind(syncd.sim) == {"list": 5, "updated": 2 * windows + 1}
    assert second.summary["downloaded"] == 0
    assert not syncd.db_path.exists()


def test_db_upgrade_command_creates_the_schema(syncd):
    done = syncd.run("db", "upgrade")
    assert done.returncode == 0, done.stderr
    engine = connect(f"sqlite:///{syncd.db_path}")
    assert "licenses" in inspect(engine).get_table_names()
    engine.dispose()


def test_unreachable_database_is_one_clear_line(syncd):
    done = syncd.sync(env={"SYNCD_DATABASE__URL": "postgresql+psycopg://syncd@127.0.0.1:1/syncd"})
    assert done.returncode == 4
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("syncd: cannot use the database (PostgreSQL at 127.0.0.1:1/syncd): ")
    assert "Traceback" not in done.stderr
    assert syncd.sim.requests == []


def test_unsupported_database_url_is_a_config_error(syncd):
    done = syncd.sync(env={"SYNCD_DATABASE__URL": "mysql://x@127.0.0.1/db"})
    assert done.returncode == 2 and "database.url" in done.stderr


def test_head_revision_constant_is_alembics_head():
    from alembic.script import ScriptDirectory

    from syncd.db.engine import HEAD_REVISION, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_sqlite_schema_changes_are_transactional(tmp_path):
    """A migration killed half-way must leave no half a schema behind."""
    from sqlalchemy import text

    engine = connect(f"sqlite:///{tmp_path / 'ddl.db'}")
    with pytest.raises(RuntimeError):
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE half (id INTEGER)"))
            raise RuntimeError("killed")
    assert "half" not in inspect(engine).get_table_names()
    engine.dispose()
