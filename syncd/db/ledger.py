"""The queries syncd runs: one place that reads and writes licenses, files, watermarks and runs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import Session

from syncd.api.records import LicenseRecord
from syncd.db.engine import clock_sql
from syncd.db.models import (
    Asset,
    BackfillState,
    Base,
    License,
    Run,
    Sidecar,
    StoredFile,
    StreamState,
    UpdateState,
)
from syncd.logs import redact
from syncd.storage.keys import UnsafeValue, check_value, sidecar_key
from syncd.streams import Watermark

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

PENDING, STORED, UNAVAILABLE, FAILED = "pending", "stored", "unavailable", "failed"
QUEUED = (PENDING, FAILED)
RELICENSE = "relicense"  # licenses.waits_for: queued again whenever relicensing is on
UNOWNED = ""  # files and sidecars recorded before storages were told apart (migration 0002)


def insert(session: Session, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """INSERT for this database, with ``on_conflict_do_nothing`` / ``_do_update``: inserts
    that tolerate a concurrent writer on SQLite and PostgreSQL alike. The dialect's module is
    imported here: PostgreSQL's costs a run on SQLite some 20 ms of start-up."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(model)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(model)


def table(model: type[Base]) -> Table:
    """The Core table of a mapped class (``__table__`` is typed as any FromClause)."""
    mapped = model.__table__
    if not isinstance(mapped, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return mapped


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


# --- stream state -----------------------------------------------------------------------------


def stream_state(
    session: Session, stream: str, team_history: bool, create: bool = True
) -> StreamState:
    """The stream's row, made if it is new (a concurrent process may make it too); without
    ``create`` (a dry run), a new one is only in memory."""
    if not create:
        found = session.get(StreamState, (stream, team_history))
        return found or StreamState(stream=stream, team_history=team_history)
    session.execute(
        insert(session, StreamState)
        .values(stream=stream, team_history=team_history)
        .on_conflict_do_nothing()
    )
    state = session.get(StreamState, (stream, team_history))
    assert state is not None
    return state


def watermark_of(state: StreamState) -> Watermark | None:
    if state.watermark_license_id is None or state.watermark_time is None:
        return None
    return Watermark(state.watermark_license_id, state.watermark_time.replace(tzinfo=UTC))


def range_key(since: datetime | None, until: datetime | None) -> str:
    """A backfill's range as a key: ``2026-01-01T00:00:00Z/-`` (``-``: open)."""

    def part(moment: datetime | None) -> str:
        return "-" if moment is None else naive_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")

    return f"{part(since)}/{part(until)}"


def backfill_state(
    session: Session,
    stream: str,
    team_history: bool,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    create: bool = True,
) -> BackfillState:
    """The checkpoint of this stream's backfill over [since, until): the unfinished one to
    resume, or a new walk from ``until`` (or ``now`` when open) when there is none or the last
    one finished. Without ``create`` (a dry run) a new one is only in memory."""
    key = range_key(since, until)
    found = session.get(BackfillState, (stream, team_history, key))
    if found is not None and found.finished_at is None:
        return found
    end = naive_utc(until if until is not None else now)
    fresh = dict(
        since_at=None if since is None else naive_utc(since),
        until_at=None if until is None else naive_utc(until),
        fixed_until=end,
        checkpoint=end,
        paged_at=None,
        started_at=utcnow(),
        finished_at=None,
        run_id=None,
    )
    if not create:
        return BackfillState(stream=stream, team_history=team_history, range_key=key, **fresh)
    if found is None:
        found = BackfillState(stream=stream, team_history=team_history, range_key=key, **fresh)
        session.add(found)
    else:
        for name, value in fresh.items():
            setattr(found, name, value)
    session.flush()
    return found


def backfill_states(session: Session) -> list[BackfillState]:
    return list(
        session.scalars(
            select(BackfillState).order_by(
                BackfillState.stream, BackfillState.team_history, BackfillState.range_key
            )
        )
    )


# --- licenses ---------------------------------------------------------------------------------


def known_license_ids(session: Session, media_type: str, ids: Iterable[str]) -> set[str]:
    ids = list(ids)
    if not ids:
        return set()
    rows = session.scalars(
        select(License.license_id).where(
            License.media_type == media_type, License.license_id.in_(ids)
        )
    )
    return set(rows)


def record_licenses(session: Session, licenses: list[LicenseRecord]) -> list[LicenseRecord]:
    """Inserts the licenses not recorded before (as pending) and returns them; a license seen
    twice, or recorded at the same moment by another process, is recorded once. Marks the
    sidecars of the touched assets for rewriting."""
    if not licenses:
        return []
    now = utcnow()
    unique: dict[tuple[str, str], LicenseRecord] = {}  # each license once, in the order seen
    for lic in licenses:
        unique.setdefault((lic.media_type, lic.license_id), lic)
    rows = [
        dict(
            media_type=lic.media_type,
            license_id=lic.license_id,
            media_id=lic.media_id,
            size=lic.size,
            format=lic.format,
            license=lic.license,
            download_time=naive_utc(lic.download_time),
            subscription_id=lic.subscription_id,
            username=lic.username,
            is_downloadable=lic.is_downloadable,
            license_metadata=lic.metadata,
            status=PENDING,
            attempts=0,
            first_seen_at=now,
            updated_at=now,
        )
        for lic in unique.values()
    ]
    inserted: set[tuple[str, str]] = set()
    for chunk in _in_chunks(rows, 200):
        result = session.execute(
            insert(session, License)
            .values(chunk)
            .on_conflict_do_nothing()
            .returning(License.media_type, License.license_id)
        )
        inserted.update((row[0], row[1]) for row in result)
    new = [lic for key, lic in unique.items() if key in inserted]
    mark_sidecars_dirty(session, {(lic.media_type, lic.media_id) for lic in new})
    return new


QueueKey = tuple[str, datetime, str]  # media type, download time, license id


def queue_key(row: License) -> QueueKey:
    """Where a license stands in the queue's order (for the next batch's ``after``)."""
    return (row.media_type, row.download_time, row.license_id)


def queued_licenses(
    session: Session,
    media_types: Iterable[str],
    storage: str,
    relicense: bool = False,
    *,
    after: QueueKey | None = None,
    limit: int | None = None,
) -> list[License]:
    """The licenses still to handle in this storage: new, pending or failed ones; those
    recorded as stored whose file this storage lacks (another storage fetched it); and, with
    relicensing on, those left unavailable only because it was off. In the queue's order (by
    media type, newest first, then license id), at most ``limit`` of them, from the one after
    ``after``: the queue is read in batches, never whole."""
    here = exists().where(
        StoredFile.storage == storage,
        StoredFile.media_type == License.media_type,
        StoredFile.media_id == License.media_id,
        StoredFile.size == License.size,
    )
    wanted = [License.status.in_(QUEUED), and_(License.status == STORED, ~here)]
    if relicense:
        wanted.append(and_(License.status == UNAVAILABLE, License.waits_for == RELICENSE))
    statement = select(License).where(License.media_type.in_(list(media_types)), or_(*wanted))
    if after is not None:
        media_type, download_time, license_id = after
        statement = statement.where(
            or_(
                License.media_type > media_type,
                and_(License.media_type == media_type, License.download_time < download_time),
                and_(
                    License.media_type == media_type,
                    License.download_time == download_time,
                    License.license_id > license_id,
                ),
            )
        )
    statement = statement.order_by(
        License.media_type, License.download_time.desc(), License.license_id
    )
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


def as_record(row: License) -> LicenseRecord:
    return LicenseRecord(
        media_type=row.media_type,
        license_id=row.license_id,
        media_id=row.media_id,
        size=row.size,
        format=row.format,
        license=row.license,
        download_time=row.download_time.replace(tzinfo=UTC),
        subscription_id=row.subscription_id,
        username=row.username,
        is_downloadable=row.is_downloadable,
        metadata=row.license_metadata or {},
    )


@dataclass
class Outcomes:
    """What a run learnt since its last commit, written with a few batched statements (one
    statement per change would cost a round trip to the database, and a wait for the GIL,
    per license)."""

    storage: str = UNOWNED
    licenses: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    sidecars: list[dict] = field(default_factory=list)

    def license(
        self,
        media_type: str,
        license_id: str,
        status: str,
        reason: str | None,
        file_key: str | None = None,
        waits_for: str | None = None,
    ) -> None:
        self.licenses.append(
            {
                "b_type": media_type,
                "b_id": license_id,
                "b_status": status,
                "b_reason": redact(reason) if reason else None,
                "b_key": file_key,
                "b_waits": waits_for,
                "b_now": utcnow(),
            }
        )

    def file(
        self, media_type: str, media_id: str, size: str, key: str, size_bytes: int, sha256: str
    ) -> StoredFile:
        values = dict(
            storage=self.storage,
            key=key,
            media_type=media_type,
            media_id=media_id,
            size=size,
            size_bytes=size_bytes,
            sha256=sha256,
            stored_at=utcnow(),
        )
        self.files.append(values)
        return StoredFile(**values)

    def sidecar_written(
        self,
        media_type: str,
        media_id: str,
        sha256: str,
        key: str | None = None,
        kind: str = "json",
    ) -> None:
        """A sidecar now in storage: the asset's metadata.json, or (``kind`` ``xmp:STYLE``)
        the XMP packet under ``key``."""
        self.sidecars.append(
            dict(
                storage=self.storage,
                key=sidecar_key(media_type, media_id) if key is None else key,
                media_type=media_type,
                media_id=media_id,
                kind=kind,
                sha256=sha256,
            )
        )

    def write(self, session: Session) -> None:
        connection = session.connection()
        if self.files:
            files = table(StoredFile)
            connection.execute(
                files.delete().where(
                    (files.c.storage == bindparam("storage"))
                    & (
                        (files.c.key == bindparam("key"))
                        | (
                            (files.c.media_type == bindparam("media_type"))
                            & (files.c.media_id == bindparam("media_id"))
                            & (files.c.size == bindparam("size"))
                        )
                    )
                ),
                self.files,
            )
            connection.execute(files.insert(), self.files)
            mark_sidecars_dirty(
                session, {(f["media_type"], f["media_id"]) for f in self.files}, self.storage
            )
        if self.licenses:
            licenses = table(License)
            connection.execute(
                licenses.update()
                .where(
                    (licenses.c.media_type == bindparam("b_type"))
                    & (licenses.c.license_id == bindparam("b_id"))
                )
                .values(
                    status=bindparam("b_status"),
                    reason=bindparam("b_reason"),
                    file_key=func.coalesce(bindparam("b_key"), licenses.c.file_key),
                    waits_for=bindparam("b_waits"),
                    attempts=licenses.c.attempts + 1,
                    updated_at=bindparam("b_now"),
                ),
                self.licenses,
            )
        if self.sidecars:
            statement = insert(session, Sidecar)
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[Sidecar.storage, Sidecar.key],
                    set_={"sha256": statement.excluded.sha256},
                ),
                self.sidecars,
            )
        self.licenses, self.files, self.sidecars = [], [], []


# --- files and assets -------------------------------------------------------------------------


def _in_chunks(items: list, size: int = 400):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def assets_with_rows(session: Session, assets: Iterable[tuple[str, str]], storage: str):
    """For many assets at once: their asset rows, licenses and the files stored in this
    storage, by asset."""
    assets = list(assets)
    rows: dict[tuple[str, str], Asset] = {}
    licenses: dict[tuple[str, str], list[License]] = {a: [] for a in assets}
    files: dict[tuple[str, str], list[StoredFile]] = {a: [] for a in assets}
    for chunk in _in_chunks(assets):
        for asset in session.scalars(
            select(Asset).where(tuple_(Asset.media_type, Asset.media_id).in_(chunk))
        ):
            rows[(asset.media_type, asset.media_id)] = asset
        for lic in session.scalars(
            select(License)
            .where(tuple_(License.media_type, License.media_id).in_(chunk))
            .order_by(License.download_time, License.license_id)
        ):
            licenses[(lic.media_type, lic.media_id)].append(lic)
        for f in session.scalars(
            select(StoredFile)
            .where(
                StoredFile.storage == storage,
                tuple_(StoredFile.media_type, StoredFile.media_id).in_(chunk),
            )
            .order_by(StoredFile.key)
        ):
            files[(f.media_type, f.media_id)].append(f)
    return rows, licenses, files


def mark_sidecars_dirty(
    session: Session, assets: set[tuple[str, str]], storage: str | None = None
) -> None:
    """The assets' sidecars must be (re)written: in every storage, or in ``storage`` only.
    Makes the asset rows of new assets; assets whose id cannot be a key get none."""
    safe = []
    for media_type, media_id in sorted(assets):
        try:
            check_value("media id", media_id)
        except UnsafeValue:
            continue
        safe.append({"media_type": media_type, "media_id": media_id, "status": "active"})
    for chunk in _in_chunks(safe):
        session.execute(insert(session, Asset).values(chunk).on_conflict_do_nothing())
        pairs = [(row["media_type"], row["media_id"]) for row in chunk]
        statement = (
            table(Sidecar)
            .update()
            .where(tuple_(Sidecar.media_type, Sidecar.media_id).in_(pairs))
            .values(sha256=None)
        )
        if storage is not None:
            statement = statement.where(Sidecar.storage == storage)
        session.execute(statement)


def xmp_kind(style: str) -> str:
    """The sidecars table's kind of the XMP sidecars of one style (``xmp:replace``)."""
    return f"xmp:{style}"


def dirty_assets(
    session: Session,
    storage: str,
    *,
    after: tuple[str, str] | None = None,
    limit: int | None = None,
    xmp: str = "off",
) -> list[tuple[str, str]]:
    """Assets (media type, media id) whose sidecars in this storage are missing or out of
    date (metadata.json, and with ``xmp`` not ``off`` the XMP packets beside its files), in
    that order: at most ``limit``, from the one after ``after``. Every asset is looked at, so
    each costs index probes alone: the keys come from the assets' primary key, and
    ``SELECT 1`` lets each probe of ix_sidecars_asset_state answer without the table. A
    first call (no ``after``) without XMP sidecars looks first whether anything is out of
    date at all (``all_sidecars_written``), and with nothing out of date probes no asset."""
    if after is None and xmp == "off" and all_sidecars_written(session, storage):
        return []

    def sidecars(*where):
        return (
            select(literal_column("1"))
            .where(
                Sidecar.storage == storage,
                Sidecar.media_type == Asset.media_type,
                Sidecar.media_id == Asset.media_id,
                *where,
            )
            .exists()
        )

    written = sidecars(Sidecar.kind == "json", Sidecar.sha256.is_not(None))
    dirty = or_(~written, sidecars(Sidecar.sha256.is_(None)))
    if xmp != "off":
        has_files = (
            select(literal_column("1"))
            .where(
                StoredFile.storage == storage,
                StoredFile.media_type == Asset.media_type,
                StoredFile.media_id == Asset.media_id,
            )
            .exists()
        )
        packets = sidecars(Sidecar.kind == xmp_kind(xmp), Sidecar.sha256.is_not(None))
        dirty = or_(dirty, and_(has_files, ~packets))
    statement = select(Asset.media_type, Asset.media_id).where(dirty)
    if after is not None:
        statement = statement.where(
            or_(
                Asset.media_type > after[0],
                and_(Asset.media_type == after[0], Asset.media_id > after[1]),
            )
        )
    statement = statement.order_by(Asset.media_type, Asset.media_id)
    if limit is not None:
        statement = statement.limit(limit)
    return [(media_type, media_id) for media_type, media_id in session.execute(statement)]


def all_sidecars_written(session: Session, storage: str) -> bool:
    """Whether no sidecar in this storage is out of date and every asset has its
    metadata.json written there: a seek and two counts over ix_sidecars_storage_state and the
    assets' primary key, where looking at each asset costs probes per asset. Each written
    metadata.json row is one asset's (its key is made from the asset's, and asset rows are
    never deleted), so as many written as there are assets means none is missing."""
    stale = session.scalar(
        select(literal_column("1"))
        .where(Sidecar.storage == storage, Sidecar.sha256.is_(None))
        .limit(1)
    )
    if stale is not None:
        return False
    written = session.scalar(
        select(func.count())
        .select_from(Sidecar)
        .where(Sidecar.storage == storage, Sidecar.sha256.is_not(None), Sidecar.kind == "json")
    )
    # a condition on the key makes SQLite count an index's entries, not walk the table's rows
    # (each with its details)
    assets = session.scalar(select(func.count()).select_from(Asset).where(Asset.media_type >= ""))
    return (written or 0) >= (assets or 0)


def adopt_unowned(session: Session, storage: str) -> None:
    """Files and sidecars recorded before storages were told apart belong to the first
    storage that runs after the upgrade (the one they were written to, in every ordinary
    set-up)."""
    for model in (StoredFile, Sidecar):
        if session.scalar(select(func.count()).select_from(model).where(model.storage == UNOWNED)):
            session.execute(
                table(model).update().where(model.storage == UNOWNED).values(storage=storage)
            )


# --- runs -------------------------------------------------------------------------------------


STALE_AFTER_S = 60.0  # a run whose heartbeat is older than this has no owner any more


def _runs_marked_running(session: Session) -> list[tuple[int, bool]]:
    """Each run still marked running, with whether its owner is gone: its process ended on
    this host, or its heartbeat stopped (another host, a run without one)."""
    from syncd.db.lease import process_alive, this_host

    now = clock_sql(session.get_bind().dialect.name)
    host = this_host()
    rows = session.execute(
        select(Run.id, Run.host, Run.pid, text(f"{now} - COALESCE(runs.heartbeat_at, 0)")).where(
            Run.outcome == "running"
        )
    )
    return [
        (
            run_id,
            pid is None
            or silent_s > STALE_AFTER_S
            or (host == run_host and not process_alive(pid)),
        )
        for run_id, run_host, pid, silent_s in rows
    ]


def live_runs(session: Session) -> list[Run]:
    """The runs going on now (marked running, and their owner still there), oldest first."""
    alive = [run_id for run_id, gone in _runs_marked_running(session) if not gone]
    if not alive:
        return []
    return list(session.scalars(select(Run).where(Run.id.in_(alive)).order_by(Run.started_at)))


def abandon_unfinished_runs(session: Session) -> list[int]:
    """Marks killed the runs still marked running whose owner is gone. A run of another
    process that is still going is left alone. Returns the ids marked."""
    killed = [run_id for run_id, gone in _runs_marked_running(session) if gone]
    if killed:
        session.execute(
            table(Run)
            .update()
            .where(Run.id.in_(killed), Run.outcome == "running")
            .values(outcome="killed")
        )
    return killed


def start_run(session: Session, command: str, storage: str | None = None) -> Run:
    from syncd.db.lease import this_host

    run = Run(
        command=command,
        started_at=utcnow(),
        outcome="running",
        host=this_host(),
        pid=os.getpid(),
        storage=storage,
        heartbeat_at=literal_column(clock_sql(session.get_bind().dialect.name)),
    )
    session.add(run)
    session.flush()
    return run


def finish_run(session: Session, run: Run, outcome: str, exit_code: int, summary: dict) -> None:
    run.finished_at = utcnow()
    run.outcome = outcome
    run.exit_code = exit_code
    run.summary = summary


# --- details ----------------------------------------------------------------------------------


def assets_without_details(
    session: Session, media_type: str, *, after: str | None = None, limit: int = 2000
) -> list[str]:
    """Ids of this media type's active assets whose details were never asked for (or must be
    asked for again: an edit update), in id order, at most ``limit`` after ``after``."""
    statement = select(Asset.media_id).where(
        Asset.media_type == media_type, Asset.details_at.is_(None), Asset.status == "active"
    )
    if after is not None:
        statement = statement.where(Asset.media_id > after)
    return list(session.scalars(statement.order_by(Asset.media_id).limit(limit)))


def set_details(session: Session, media_type: str, asked: list[str], found: dict[str, dict]) -> int:
    """The API answered for ``asked``: the details of those ``found`` are kept (their
    sidecars marked for rewriting), the rest are not asked for again (the API has no details
    of them). Returns how many assets' details changed."""
    now = utcnow()
    changed = 0
    rows = {
        asset.media_id: asset
        for chunk in _in_chunks(asked)
        for asset in session.scalars(
            select(Asset).where(Asset.media_type == media_type, Asset.media_id.in_(chunk))
        )
    }
    touched = set()
    for media_id in asked:
        asset = rows.get(media_id)
        if asset is None:
            continue
        asset.details_at = now
        details = found.get(media_id)
        if details is not None and details != asset.details:
            asset.details = details
            touched.add((media_type, media_id))
            changed += 1
    session.flush()
    if touched:
        mark_sidecars_dirty(session, touched)
    return changed


def refresh_details(session: Session, assets: Iterable[tuple[str, str]]) -> None:
    """These assets' details are asked for again by the next details pass (an edit)."""
    pairs = list(assets)
    for chunk in _in_chunks(pairs):
        session.execute(
            table(Asset)
            .update()
            .where(tuple_(Asset.media_type, Asset.media_id).in_(chunk))
            .values(details_at=None)
        )


# --- /updated ---------------------------------------------------------------------------------

QUARANTINE = "quarantine/"  # updates.on_deletion = "quarantine" moves files under this


def update_state(session: Session, stream: str) -> UpdateState:
    """The stream's row, made if there is none (another process on the same database may be
    making it at the same moment: the insert gives way)."""
    found = session.get(UpdateState, stream)
    if found is None:
        session.execute(
            insert(session, UpdateState).values(stream=stream, mark_ids=[]).on_conflict_do_nothing()
        )
        found = session.get(UpdateState, stream)
        assert found is not None
    return found


def held_assets(session: Session, media_type: str, ids: Iterable[str]) -> dict[str, str]:
    """Of these ids, those syncd holds (an asset with a recorded license), with its status."""
    held: dict[str, str] = {}
    for chunk in _in_chunks(sorted(set(ids))):
        for media_id, status in session.execute(
            select(Asset.media_id, Asset.status).where(
                Asset.media_type == media_type, Asset.media_id.in_(chunk)
            )
        ):
            held[media_id] = status
    return held


def mark_deleted(session: Session, media_type: str, deleted: dict[str, datetime]) -> list[str]:
    """These assets were deleted from the catalogue (an update at that time): each is marked
    ``deleted`` (never fetched again), its licenses still queued become unavailable, and its
    sidecars are marked for rewriting. Returns the ids newly marked."""
    from syncd.plan import DELETED_REASON

    newly = []
    now = utcnow()
    for chunk in _in_chunks(sorted(deleted)):
        for asset in session.scalars(
            select(Asset).where(
                Asset.media_type == media_type,
                Asset.media_id.in_(chunk),
                Asset.status != "deleted",
            )
        ):
            asset.status = "deleted"
            asset.deleted_at = naive_utc(deleted[asset.media_id])
            newly.append(asset.media_id)
        session.execute(
            table(License)
            .update()
            .where(
                License.media_type == media_type,
                License.media_id.in_(chunk),
                License.status.in_(QUEUED),
            )
            .values(status=UNAVAILABLE, reason=DELETED_REASON, waits_for=None, updated_at=now)
        )
    session.flush()
    mark_sidecars_dirty(session, {(media_type, media_id) for media_id in newly})
    return newly


def files_of_deleted_assets(
    session: Session, storage: str, on_deletion: str, limit: int = 400
) -> list[StoredFile]:
    """Files in this storage of deleted assets that ``on_deletion`` has yet to act on: all of
    them for ``delete``, those not yet under quarantine/ for ``quarantine``, none for
    ``keep``."""
    if on_deletion == "keep":
        return []
    deleted = exists().where(
        Asset.media_type == StoredFile.media_type,
        Asset.media_id == StoredFile.media_id,
        Asset.status == "deleted",
    )
    statement = select(StoredFile).where(StoredFile.storage == storage, deleted)
    if on_deletion == "quarantine":
        statement = statement.where(~StoredFile.key.startswith(QUARANTINE, autoescape=True))
    return list(session.scalars(statement.order_by(StoredFile.key).limit(limit)))


def file_moved(session: Session, row: StoredFile, new_key: str) -> None:
    """The file is now under ``new_key`` (quarantined); its sidecars are rewritten."""
    forget_xmp(session, row)
    session.execute(
        table(StoredFile)
        .update()
        .where(StoredFile.storage == row.storage, StoredFile.key == row.key)
        .values(key=new_key)
    )
    mark_sidecars_dirty(session, {(row.media_type, row.media_id)}, row.storage)


def file_removed(session: Session, row: StoredFile) -> None:
    """The file is gone from storage (``on_deletion = "delete"``): its licenses become
    unavailable (else they would be queued again to fetch it back)."""
    from syncd.plan import DELETED_REASON

    forget_xmp(session, row)
    session.execute(
        table(StoredFile)
        .delete()
        .where(StoredFile.storage == row.storage, StoredFile.key == row.key)
    )
    session.execute(
        table(License)
        .update()
        .where(
            License.media_type == row.media_type,
            License.media_id == row.media_id,
            License.size == row.size,
            License.status == STORED,
        )
        .values(status=UNAVAILABLE, reason=DELETED_REASON, waits_for=None, updated_at=utcnow())
    )
    mark_sidecars_dirty(session, {(row.media_type, row.media_id)}, row.storage)


def forget_xmp(session: Session, row: StoredFile) -> None:
    """The XMP sidecars recorded beside this file (either style) are no longer there."""
    from syncd.storage.keys import XMP_STYLES, xmp_key

    session.execute(
        table(Sidecar)
        .delete()
        .where(
            Sidecar.storage == row.storage,
            Sidecar.key.in_([xmp_key(row.key, style) for style in XMP_STYLES]),
        )
    )


def age_details(session: Session, media_types: Iterable[str], share: int = 30) -> int:
    """Marks a ``share``-th (at least one) of these media types' active assets with details,
    the least recently fetched first, to be fetched again by the next details pass: media
    without an update feed is kept current this way. Returns how many."""
    aged = 0
    for media_type in media_types:
        held = session.scalar(
            select(func.count())
            .select_from(Asset)
            .where(
                Asset.media_type == media_type,
                Asset.status == "active",
                Asset.details_at.is_not(None),
            )
        )
        if not held:
            continue
        count = -(-held // share)
        ids = list(
            session.scalars(
                select(Asset.media_id)
                .where(
                    Asset.media_type == media_type,
                    Asset.status == "active",
                    Asset.details_at.is_not(None),
                )
                .order_by(Asset.details_at, Asset.media_id)
                .limit(count)
            )
        )
        refresh_details(session, [(media_type, media_id) for media_id in ids])
        aged += len(ids)
    return aged
