"""The queries syncd runs: one place that reads and writes licenses, files, watermarks and runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, func, select, tuple_
from sqlalchemy.orm import Session

from syncd.api.records import LicenseRecord
from syncd.db.models import Asset, License, Run, StoredFile, StreamState
from syncd.logs import redact
from syncd.storage.keys import UnsafeValue, check_value
from syncd.streams import Watermark

PENDING, STORED, UNAVAILABLE, FAILED = "pending", "stored", "unavailable", "failed"
QUEUED = (PENDING, FAILED)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


# --- stream state -----------------------------------------------------------------------------


def stream_state(session: Session, stream: str, team_history: bool) -> StreamState:
    state = session.get(StreamState, (stream, team_history))
    if state is None:
        state = StreamState(stream=stream, team_history=team_history)
        session.add(state)
    return state


def watermark_of(state: StreamState) -> Watermark | None:
    if state.watermark_license_id is None or state.watermark_time is None:
        return None
    return Watermark(state.watermark_license_id, state.watermark_time.replace(tzinfo=UTC))


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
    twice is recorded once. Marks the sidecar of each touched asset for rewriting."""
    if not licenses:
        return []
    media_type = licenses[0].media_type
    known = known_license_ids(session, media_type, {lic.license_id for lic in licenses})
    now = utcnow()
    new: list[LicenseRecord] = []
    for lic in licenses:
        if lic.license_id in known:
            continue
        known.add(lic.license_id)
        new.append(lic)
        session.add(
            License(
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
        )
        mark_sidecar_dirty(session, lic.media_type, lic.media_id)
    return new


def queued_licenses(session: Session, media_types: Iterable[str]) -> list[License]:
    """Every license still to handle (new, or pending or failed from earlier runs)."""
    return list(
        session.scalars(
            select(License)
            .where(License.media_type.in_(list(media_types)), License.status.in_(QUEUED))
            .order_by(License.media_type, License.download_time.desc())
        )
    )


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
    ) -> None:
        self.licenses.append(
            {
                "b_type": media_type,
                "b_id": license_id,
                "b_status": status,
                "b_reason": redact(reason) if reason else None,
                "b_key": file_key,
                "b_now": utcnow(),
            }
        )

    def file(
        self, media_type: str, media_id: str, size: str, key: str, size_bytes: int, sha256: str
    ) -> StoredFile:
        values = dict(
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

    def sidecar_written(self, media_type: str, media_id: str, sha256: str) -> None:
        self.sidecars.append({"b_type": media_type, "b_id": media_id, "b_sha": sha256})

    def write(self, session: Session) -> None:
        connection = session.connection()
        if self.files:
            files = StoredFile.__table__
            connection.execute(
                files.delete().where(
                    (files.c.key == bindparam("key"))
                    | (
                        (files.c.media_type == bindparam("media_type"))
                        & (files.c.media_id == bindparam("media_id"))
                        & (files.c.size == bindparam("size"))
                    )
                ),
                self.files,
            )
            connection.execute(files.insert(), self.files)
            self._set_sidecars(
                connection,
                [
                    {"b_type": f["media_type"], "b_id": f["media_id"], "b_sha": None}
                    for f in self.files
                ],
            )
        if self.licenses:
            licenses = License.__table__
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
                    attempts=licenses.c.attempts + 1,
                    updated_at=bindparam("b_now"),
                ),
                self.licenses,
            )
        if self.sidecars:
            self._set_sidecars(connection, self.sidecars)
        self.licenses, self.files, self.sidecars = [], [], []

    @staticmethod
    def _set_sidecars(connection, rows: list[dict]) -> None:
        assets = Asset.__table__
        connection.execute(
            assets.update()
            .where(
                (assets.c.media_type == bindparam("b_type"))
                & (assets.c.media_id == bindparam("b_id"))
            )
            .values(sidecar_sha256=bindparam("b_sha")),
            rows,
        )


# --- files and assets -------------------------------------------------------------------------


def _in_chunks(items: list, size: int = 400):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def assets_with_rows(session: Session, assets: Iterable[tuple[str, str]]):
    """For many assets at once: their asset rows, licenses and stored files, by asset."""
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
            .where(tuple_(StoredFile.media_type, StoredFile.media_id).in_(chunk))
            .order_by(StoredFile.key)
        ):
            files[(f.media_type, f.media_id)].append(f)
    return rows, licenses, files


def mark_sidecar_dirty(session: Session, media_type: str, media_id: str) -> None:
    """The asset's sidecar must be (re)written. Assets whose id cannot be a key get none."""
    try:
        check_value("media id", media_id)
    except UnsafeValue:
        return
    asset = session.get(Asset, (media_type, media_id))
    if asset is None:
        session.add(Asset(media_type=media_type, media_id=media_id, status="active"))
    else:
        asset.sidecar_sha256 = None


def dirty_assets(session: Session) -> list[Asset]:
    return list(session.scalars(select(Asset).where(Asset.sidecar_sha256.is_(None))))


# --- runs -------------------------------------------------------------------------------------


def abandon_unfinished_runs(session: Session) -> None:
    """Runs still marked running were killed (the caller holds the storage lock)."""
    for run in session.scalars(select(Run).where(Run.outcome == "running")):
        run.outcome = "killed"


def start_run(session: Session, command: str) -> Run:
    run = Run(command=command, started_at=utcnow(), outcome="running")
    session.add(run)
    session.flush()
    return run


def finish_run(session: Session, run: Run, outcome: str, exit_code: int, summary: dict) -> None:
    run.finished_at = utcnow()
    run.outcome = outcome
    run.exit_code = exit_code
    run.summary = summary
