"""The one place that writes sidecars: ``{media_type}/{media_id}/metadata.json``
(CONTRACT section 4), atomically, whenever the asset's licenses or files change."""

from __future__ import annotations

import hashlib
import json
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy.orm import Session

from syncd.api.records import LicenseRecord
from syncd.db import ledger
from syncd.db.models import Asset, License, StoredFile
from syncd.storage.base import Storage
from syncd.storage.keys import sidecar_key, xmp_key


def format_time(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def document(asset: Asset, licenses: list[License], files: list[StoredFile]) -> dict:
    return {
        "media_type": asset.media_type,
        "media_id": asset.media_id,
        "status": asset.status,
        "licenses": [
            {
                "license_id": lic.license_id,
                "license": lic.license,
                "size": lic.size,
                "format": lic.format,
                "download_time": format_time(lic.download_time),
                "subscription_id": lic.subscription_id,
                "username": lic.username,
                "is_downloadable": lic.is_downloadable,
                "metadata": lic.license_metadata or {},
            }
            for lic in licenses
        ],
        "files": [{"key": f.key, "size_bytes": f.size_bytes, "sha256": f.sha256} for f in files],
        "details": asset.details,
    }


def encode(doc: dict) -> bytes:
    # a lone surrogate from the API (JSON can carry "\ud800") stays the same JSON escape
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode(
        "utf-8", "backslashreplace"
    )


class SidecarBook:
    """The sidecars of the assets one run touches, kept in memory so that a change costs no
    query, and written by background threads (in order for each asset; writes fsync, the run
    goes on).
    A sidecar is marked written in the ledger only once it is in storage, so a crash before
    that leaves it marked for rewriting by the next run."""

    LANES = 4

    def __init__(
        self,
        session: Session,
        storage: Storage,
        assets: set[tuple[str, str]],
        xmp: str = "off",
    ):
        self.storage = storage
        self.xmp = xmp  # storage.xmp_sidecars: off, replace or append
        self._rows, self._licenses, self._files = ledger.assets_with_rows(
            session, assets, storage.identity
        )
        # one single-threaded lane per shard of assets: an asset's writes stay in order,
        # different assets' fsyncs overlap
        self._lanes = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sidecar{n}")
            for n in range(self.LANES)
        ]
        self._pending: list[tuple[tuple[str, str, str, str, str], Future]] = []
        self._lock = threading.Lock()

    def stored_file(self, media_type: str, media_id: str, size: str) -> StoredFile | None:
        return next(
            (f for f in self._files.get((media_type, media_id), []) if f.size == size), None
        )

    def details(self, media_type: str, media_id: str) -> dict | None:
        asset = self._rows.get((media_type, media_id))
        return asset.details if asset is not None else None

    def deleted(self, media_type: str, media_id: str) -> bool:
        asset = self._rows.get((media_type, media_id))
        return asset is not None and asset.status == "deleted"

    def add_file(self, row: StoredFile) -> None:
        files = self._files.setdefault((row.media_type, row.media_id), [])
        files[:] = sorted(
            [f for f in files if f.key != row.key and f.size != row.size] + [row],
            key=lambda f: f.key,
        )

    def add_license(self, lic: LicenseRecord) -> None:
        """A license recorded during the run (a new one from relicensing)."""
        held = self._licenses.setdefault((lic.media_type, lic.media_id), [])
        if any(row.license_id == lic.license_id for row in held):
            return
        row = License(
            media_type=lic.media_type,
            license_id=lic.license_id,
            media_id=lic.media_id,
            size=lic.size,
            format=lic.format,
            license=lic.license,
            download_time=ledger.naive_utc(lic.download_time),
            subscription_id=lic.subscription_id,
            username=lic.username,
            is_downloadable=lic.is_downloadable,
            license_metadata=lic.metadata,
        )
        held[:] = sorted([*held, row], key=lambda r: (r.download_time, r.license_id))

    def write(self, media_type: str, media_id: str) -> None:
        asset = self._rows.get((media_type, media_id))
        if asset is None:  # no asset row: its id cannot be a key
            return
        files = self._files[(media_type, media_id)]
        doc = document(asset, self._licenses[(media_type, media_id)], files)
        writes = [(sidecar_key(media_type, media_id), "json", encode(doc))]
        if self.xmp != "off":
            from syncd.xmp import xmp_packet  # ElementTree and the XMP tables: only when asked

            packet = xmp_packet(media_type, media_id, doc["licenses"], asset.details)
            kind = ledger.xmp_kind(self.xmp)
            writes += [(xmp_key(f.key, self.xmp), kind, packet) for f in files]
        # one lane per asset: its sidecars are written in order, after its earlier writes
        lane = self._lanes[zlib.crc32(writes[0][0].encode()) % self.LANES]
        for key, kind, data in writes:
            future = lane.submit(self.storage.put_bytes, key, data)
            entry = (media_type, media_id, key, kind, hashlib.sha256(data).hexdigest())
            with self._lock:
                self._pending.append((entry, future))

    def written(
        self, wait: bool = False
    ) -> tuple[list[tuple[str, str, str, str, str]], BaseException | None]:
        """The sidecars now in storage (all of them, with ``wait``), and the first error a
        write raised, if any."""
        done, still, error = [], [], None
        with self._lock:
            pending, self._pending = self._pending, []
        for entry, future in pending:
            if wait or future.done():
                exc = future.exception()
                if exc is None:
                    done.append(entry)
                elif error is None:
                    error = exc
            else:
                still.append((entry, future))
        with self._lock:
            self._pending[:0] = still
        return done, error

    def close(self) -> None:
        for lane in self._lanes:
            lane.shutdown(wait=True)
