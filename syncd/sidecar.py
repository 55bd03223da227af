"""The one place that writes sidecars: ``{media_type}/{media_id}/metadata.json``
(CONTRACT section 4), atomically, and only when its content changed."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy.orm import Session

from syncd.db import ledger
from syncd.db.models import Asset, License, StoredFile
from syncd.storage.base import Storage
from syncd.storage.keys import sidecar_key


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
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write(session: Session, storage: Storage, asset: Asset) -> None:
    data = encode(document(
        asset,
        ledger.asset_licenses(session, asset.media_type, asset.media_id),
        ledger.asset_files(session, asset.media_type, asset.media_id),
    ))
    storage.put_bytes(sidecar_key(asset.media_type, asset.media_id), data)
    asset.sidecar_sha256 = hashlib.sha256(data).hexdigest()


def write_dirty(session: Session, storage: Storage) -> int:
    """Writes the sidecar of every asset marked dirty; returns how many were written."""
    assets = ledger.dirty_assets(session)
    for asset in assets:
        write(session, storage, asset)
    return len(assets)


def write_dirty_asset(session: Session, storage: Storage, media_type: str, media_id: str) -> None:
    session.flush()
    asset = session.get(Asset, (media_type, media_id))
    if asset is not None and asset.sidecar_sha256 is None:
        write(session, storage, asset)
