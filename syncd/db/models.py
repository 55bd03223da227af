"""What syncd remembers. The schema is made by the Alembic migrations in migrations/; a test
checks that these models and the migrations agree."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
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
    first_seen_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Asset(Base):
    """An asset with at least one recorded license: what its sidecar says beyond licenses."""

    __tablename__ = "assets"

    media_type: Mapped[str] = mapped_column(MEDIA_TYPE, primary_key=True)
    media_id: Mapped[str] = mapped_column(ID, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    details: Mapped[dict | None] = mapped_column(JSON)
    sidecar_sha256: Mapped[str | None] = mapped_column(String(64))


class StoredFile(Base):
    """A complete, verified object in storage: one per asset and size."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("media_type", "media_id", "size"),)

    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    media_type: Mapped[str] = mapped_column(MEDIA_TYPE)
    media_id: Mapped[str] = mapped_column(ID)
    size: Mapped[str] = mapped_column(ID)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_at: Mapped[datetime] = mapped_column(DateTime)


class StreamState(Base):
    """Per license stream (apart for team history on and off): the watermark, the checkpoint
    of a catch-up in progress, and how the last run went."""

    __tablename__ = "stream_state"

    stream: Mapped[str] = mapped_column(MEDIA_TYPE, primary_key=True)
    team_history: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    watermark_license_id: Mapped[str | None] = mapped_column(ID)
    watermark_time: Mapped[datetime | None] = mapped_column(DateTime)
    checkpoint_run_id: Mapped[int | None] = mapped_column(Integer)
    checkpoint_page: Mapped[int | None] = mapped_column(Integer)
    checkpoint_head_id: Mapped[str | None] = mapped_column(ID)
    checkpoint_head_time: Mapped[datetime | None] = mapped_column(DateTime)
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)


class Run(Base):
    """One run of a command, with its summary."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    summary: Mapped[dict | None] = mapped_column(JSON)
