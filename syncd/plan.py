"""What to do with a license: a pure decision over plain values."""

from __future__ import annotations

from dataclasses import dataclass

from syncd.api.records import LicenseRecord
from syncd.storage.keys import UnsafeValue, check_value
from syncd.streams import LicenseStream

STORED = "stored"  # the asset and size is already in storage: record the license only
REDOWNLOAD = "redownload"  # fetch a fresh URL for this license and store the file
UNAVAILABLE = "unavailable"  # cannot be fetched: the reason says why
INVALID = "invalid"  # values that cannot become a key: the license fails


@dataclass(frozen=True)
class Action:
    kind: str
    reason: str | None = None


def plan(license: LicenseRecord, stream: LicenseStream, stored: bool) -> Action:
    """``stored``: a file for this license's asset and size is already in storage."""
    try:
        check_value("license id", license.license_id)
        check_value("media id", license.media_id)
        check_value("size", license.size)
    except UnsafeValue as exc:
        return Action(INVALID, str(exc))
    if stored:
        return Action(STORED)
    if not stream.redownload:
        return Action(UNAVAILABLE, "editorial media has no redownload and relicensing is off")
    if license.is_downloadable is False:
        return Action(
            UNAVAILABLE, "not downloadable (is_downloadable: false) and relicensing is off"
        )
    return Action(REDOWNLOAD)
