"""What syncd remembers. The schema is made by the Alembic migrations in migrations/; a test
checks that these models and the migrations agree."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
}

ID = String(1024)
MEDIA_TYPE = String(32)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class License(Base):
    """One license of the license history, with what became of it."""

    __tablename__ = "licenses"
    __table_args__ = (Index("ix_licenses_asset", "media_type", "media_id"),)

    media_type: Mapped[str] = mapped_column(MEDIA_TYPE, primary_key=True)
    license_id: Mapped[str] = mapped_column(ID, primary_key=True)
    media_id: Mapped[str] = mapped_column(ID)
    size: Mapped[str] = mapped_column(ID)
    format: Mapped[str | None] = mapped_column(ID)
    license: Mapped[str] = mapped_column(ID)
    download_time: Mapped[datetime] = mapped_column(DateTime)
    subscription_id: Mapped[str | None] = mapped_column(ID)
    username: Mapped[str | None] = mapped_column(ID)
    is_downloadable: Mapped[bool | None] = mapped_column(Boolean)
    license_metadata: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    file_key: Mapped[str | None] = mapped_column(String(1024))
    # the switch that would make an unavailable license fetchable ("relicense"): it is queued
    # again whenever that switch is on
    waits_for: Mapped[str | None] = mapped_column(String(32))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Asset(Base):
    """An asset with at least one recorded license: what its sidecar says beyond licenses."""

    __tablename__ = "assets"
    # the details pass looks for the assets whose details are still to be asked for: a seek,
    # not a scan of every asset, when there are none
    __table_args__ = (
        Index("ix_assets_details_pending", "media_type", "status", "details_at", "media_id"),
    )

    media_type: Mapped[str] = mapped_column(MEDIA_TYPE, primary_key=True)
    media_id: Mapped[str] = mapped_column(ID, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    details: Mapped[dict | None] = mapped_column(JSON)
    # when the API last answered for its details (with them, or without the asset): NULL
    # means they are still to be asked for
    details_at: Mapped[datetime | None] = mapped_column(DateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)  # a deletion update's time


class StoredFile(Base):
    """A complete, verified object in one storage: one per storage, asset and size. Licenses
    are the account's, files are each storage's: a storage that lacks a file another one holds
    has its license queued again."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("storage", "media_type", "media_id", "size"),)

    storage: Mapped[str] = mapped_column(String(1024), primary_key=True)
    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    media_type: Mapped[str] = mapped_column(MEDIA_TYPE)
    media_id: Mapped[str] = mapped_column(ID)
    size: Mapped[str] = mapped_column(ID)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_at: Mapped[datetime] = mapped_column(DateTime)
    # the last time `verify` re-hashed it and found it right; NULL: not since it was stored
    checked_at: Mapped[datetime | None] = mapped_column(DateTime)


class Sidecar(Base):
    """A sidecar as it stands in one storage: the sha256 of what was written, or NULL when
    the asset changed since and it must be written again."""

    __tablename__ = "sidecars"
    # covers what the search for sidecars out of date asks of each asset (its storage, kind
    # and sha256), without reading the table
    __table_args__ = (
        Index("ix_sidecars_asset_state", "media_type", "media_id", "storage", "kind", "sha256"),
        # whether anything in a storage is out of date, and how much is written, at a glance
        Index("ix_sidecars_storage_state", "storage", "sha256", "kind"),
    )

    storage: Mapped[str] = mapped_column(String(1024), primary_key=True)
    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    media_type: Mapped[str] = mapped_column(MEDIA_TYPE)
    media_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))  # "json" (metadata.json) or "xmp"
    sha256: Mapped[str | None] = mapped_column(String(64))


class StreamState(Base):
    """Per license stream (apart for team history on and off): the watermark and how the last
    run went."""

    __tablename__ = "stream_state"

    stream: Mapped[str] = mapped_column(MEDIA_TYPE, primary_key=True)
    team_history: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    watermark_license_id: Mapped[str | None] = mapped_column(ID)
    watermark_time: Mapped[datetime | None] = mapped_column(DateTime)
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime)  # last "ok" run


class BackfillState(Base):
    """One backfill of a stream over a range (``--since``/``--until``), kept apart from the
    catch-up's watermark: every license in [checkpoint, fixed_until) is recorded. The walk moves
    ``checkpoint`` down window by window (dates, not page numbers: pages shift as licenses
    arrive); ``paged_at`` once the whole range is recorded, ``finished_at`` once what it queued
    was fetched. A finished backfill of the same range started again walks it anew."""

    __tablename__ = "backfill_state"

    stream: Mapped[str] = mapped_column(MEDIA_TYPE, primary_key=True)
    team_history: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    range_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # "since/until"
    since_at: Mapped[datetime | None] = mapped_column(DateTime)
    until_at: Mapped[datetime | None] = mapped_column(DateTime)
    fixed_until: Mapped[datetime] = mapped_column(DateTime)  # until, or when the walk began
    checkpoint: Mapped[datetime] = mapped_column(DateTime)
    paged_at: Mapped[datetime | None] = mapped_column(DateTime)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    run_id: Mapped[int | None] = mapped_column(Integer)


class UpdateState(Base):
    """Per /updated stream: the mark of the updates applied (the newest ``updated_time`` and
    the ids seen at that second, so that ties are neither skipped nor applied twice), moved
    only when a pass finishes; and how the last pass went."""

    __tablename__ = "update_state"

    stream: Mapped[str] = mapped_column(MEDIA_TYPE, primary_key=True)
    mark_time: Mapped[datetime | None] = mapped_column(DateTime)
    mark_ids: Mapped[list] = mapped_column(JSON, default=list)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime)


class RelicenseIntent(Base):
    """A licensing request for one need (media type, media id, size), recorded before it is
    sent: ``planned`` -> ``sending`` (committed before the request) -> ``confirmed`` (the API
    licensed it), ``failed`` (it did not: may be sent again) or ``unknown`` (no answer: settled
    from the license history before anything is sent again). ``sending`` and ``unknown`` count
    as spent."""

    __tablename__ = "relicense_intents"

    media_type: Mapped[str] = mapped_column(MEDIA_TYPE, primary_key=True)
    media_id: Mapped[str] = mapped_column(ID, primary_key=True)
    size: Mapped[str] = mapped_column(ID, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    license_id: Mapped[str] = mapped_column(ID)  # the license that could not be redownloaded
    subscription_id: Mapped[str | None] = mapped_column(ID)
    credits: Mapped[int] = mapped_column(Integer)  # expected, then what was charged
    new_license_id: Mapped[str | None] = mapped_column(ID)
    day: Mapped[str | None] = mapped_column(String(10), index=True)  # UTC date it was sent
    owner: Mapped[str | None] = mapped_column(String(255))  # host:pid of the sender
    run_id: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime)


class Lease(Base):
    """A lock held in the database, keyed by what it protects (a storage's identity): taken
    and renewed with the database's clock, so that it works across processes and hosts."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))  # host:pid:nonce
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer)
    acquired_at: Mapped[float] = mapped_column(Float)  # seconds since the epoch, database clock
    expires_at: Mapped[float] = mapped_column(Float)


class Run(Base):
    """One run of a command, with its summary, owned by a process (host, pid) that renews its
    heartbeat while it runs: only a run whose owner is gone is marked killed."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    summary: Mapped[dict | None] = mapped_column(JSON)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    storage: Mapped[str | None] = mapped_column(String(1024))
    heartbeat_at: Mapped[float | None] = mapped_column(Float)  # database clock, epoch seconds
