"""A no-op sync stays cheap on a long history: the queries it makes find what is left to do
through indexes (a seek), not by reading every row. Each test syncs the simulator for real
first, then asks the database for the plan of the query the run makes, with the statement
and parameters the ledger sends (captured as it sends them)."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from syncd.db import connect, ledger, upgrade
from syncd.db.ledger import table
from syncd.db.models import Sidecar


def sent_by(engine, call) -> list[tuple[str, object]]:
    """The statements (and their parameters) ``call(session)`` sends."""
    sent: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as session:
            call(session)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return [(s, p) for s, p in sent if s.lstrip().upper().startswith("SELECT")]


def sqlite_plan(engine, statement: str, parameters) -> list[str]:
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        return [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)]


def postgres_plan(engine, statement: str, parameters) -> str:
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        return "\n".join(row[0] for row in cursor.fetchall())


def grow_postgres_ledger(engine, storage: str, assets: int = 20_000) -> None:
    """Many more assets, each with its details and its sidecar written, then ANALYZE: the
    planner chooses by the table's size, and on a test's few rows a scan would win anyway."""
    from sqlalchemy import text

    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO assets (media_type, media_id, status, details_at) "
                "SELECT 'images', 'g' || n, 'active', now() FROM generate_series(1, :n) AS n"
            ),
            {"n": assets},
        )
        connection.execute(
            text(
                "INSERT INTO sidecars (storage, key, media_type, media_id, kind, sha256) "
                "SELECT :storage, 'images/g' || n || '/metadata.json', 'images', 'g' || n, "
                "'json', md5(n::text) FROM generate_series(1, :n) AS n"
            ),
            {"n": assets, "storage": storage},
        )
        connection.execute(text("ANALYZE"))


def synced(syncd, env: dict | None = None):
    done = syncd.sync(env=env)
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 9  # a real sync, CONTRACT 2's example
    again = syncd.sync(env=env)
    assert again.returncode == 0 and again.summary["new_licenses"] == 0


def details_query(session):
    assert ledger.assets_without_details(session, "images") == []


def storage_of(syncd) -> str:
    return "file://" + str(syncd.root.resolve())


def dirty_query(syncd, expected: list[tuple[str, str]] | None = None):
    def call(session):
        found = ledger.dirty_assets(session, storage_of(syncd), limit=2000)
        assert found == (expected or [])

    return call


def add_asset_without_sidecars(engine) -> None:
    """An asset another storage's run recorded: this storage has no sidecar row for it."""
    from sqlalchemy import text

    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO assets (media_type, media_id, status) "
                "VALUES ('images', '777', 'active')"
            )
        )


def test_the_details_pass_finds_assets_without_details_by_a_seek_on_sqlite(syncd):
    synced(syncd)
    engine = connect(f"sqlite:///{syncd.db_path}")
    try:
        ((statement, parameters),) = sent_by(engine, details_query)
        plan = sqlite_plan(engine, statement, parameters)
    finally:
        engine.dispose()
    assert plan == [
        "SEARCH assets USING COVERING INDEX ix_assets_details_pending "
        "(media_type=? AND status=? AND details_at=?)"
    ], plan


def test_sidecars_out_of_date_are_found_from_the_covering_index_on_sqlite(syncd):
    synced(syncd)
    engine = connect(f"sqlite:///{syncd.db_path}")
    try:
        add_asset_without_sidecars(engine)
        sent = sent_by(engine, dirty_query(syncd, [("images", "777")]))
        plans = [sqlite_plan(engine, statement, parameters) for statement, parameters in sent]
    finally:
        engine.dispose()
    (plan,) = [plan for plan in plans if any("CORRELATED" in step for step in plan)]
    sidecar_steps = [step for step in plan if "sidecars" in step]
    assert len(sidecar_steps) == 2, plan
    # each asset costs a probe of the index, never a read of the sidecars table
    assert all("USING COVERING INDEX ix_sidecars_asset_state" in s for s in sidecar_steps), plan


def test_with_every_sidecar_written_no_asset_is_probed_on_sqlite(syncd):
    synced(syncd)
    engine = connect(f"sqlite:///{syncd.db_path}")
    try:
        sent = sent_by(engine, dirty_query(syncd))
        plans = [sqlite_plan(engine, statement, parameters) for statement, parameters in sent]
        with engine.begin() as connection:  # one out of date: found
            connection.execute(
                table(Sidecar)
                .update()
                .where(Sidecar.media_id == "2140697", Sidecar.kind == "json")
                .values(sha256=None)
            )
        sent_by(engine, dirty_query(syncd, [("videos", "2140697")]))
    finally:
        engine.dispose()
    steps = [step for plan in plans for step in plan]
    assert not any(step.startswith("SCAN") and "sidecars" in step for step in steps), steps
    assert not any("CORRELATED" in step for step in steps), steps  # no probe per asset
    assert not any(step.startswith("SCAN") for step in steps), steps  # counts of indexes
    assert not any("ix_sidecars_asset_state" in step for step in steps), steps
    assert sum("ix_sidecars_storage_state" in step for step in steps) == 2, steps


@pytest.mark.postgres
def test_the_details_pass_finds_assets_by_its_index_on_postgresql(syncd, postgres_url):
    synced(syncd, env={"SYNCD_DATABASE__URL": postgres_url})
    engine = connect(postgres_url)
    try:
        upgrade(engine)  # already at head: nothing to do
        grow_postgres_ledger(engine, "file://" + str(syncd.root.resolve()))
        ((details, details_params),) = sent_by(engine, details_query)
        add_asset_without_sidecars(engine)
        dirty_sent = sent_by(engine, dirty_query(syncd, [("images", "777")]))
        (dirty, dirty_params) = next(sql for sql in dirty_sent if "EXISTS" in sql[0])
        details_plan = postgres_plan(engine, details, details_params)
        dirty_plan = postgres_plan(engine, dirty, dirty_params)
    finally:
        engine.dispose()
    assert "ix_assets_details_pending" in details_plan, details_plan
    # PostgreSQL reads each table once (the sidecars into a hash) rather than probing per
    # asset: no index is needed for that, and none of the assets' rows is read either
    assert dirty_plan.count("hashed SubPlan") == 2, dirty_plan
    assert "Index Only Scan using pk_assets on assets" in dirty_plan, dirty_plan
