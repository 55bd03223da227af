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

RELICENSE = "relicense"  # an unavailable license that relicensing could fetch: it is queued
#                          again whenever relicensing is on; as an action's kind, relicense it


@dataclass(frozen=True)
class Action:
    kind: str
    reason: str | None = None
    waits_for: str | None = None  # the switch that would make it fetchable (RELICENSE)


DELETED_REASON = "the asset was deleted from Shutterstock's catalogue (an /updated deletion)"


def plan(
    license: LicenseRecord,
    stream: LicenseStream,
    stored: bool,
    relicense: bool = False,
    deleted: bool = False,
) -> Action:
    """``stored``: a file for this license's asset and size is already in storage.
    ``relicense``: ``sync.relicense`` is on. ``deleted``: an update deleted the asset (it is
    never fetched again)."""
    try:
        check_value("license id", license.license_id)
        check_value("media id", license.media_id)
        check_value("size", license.size)
    except UnsafeValue as exc:
        return Action(INVALID, str(exc))
    if stored:
        return Action(STORED)
    if deleted:
        return Action(UNAVAILABLE, DELETED_REASON)
    if not stream.redownload:
        why = "editorial media has no redownload"
    elif license.is_downloadable is False:
        why = "not downloadable (is_downloadable: false)"
    else:
        return Action(REDOWNLOAD)
    if relicense:  # only what truly cannot be redownloaded: never after a failed one
        return Action(RELICENSE, why)
    why += " and relicensing is off"
    return Action(UNAVAILABLE, why, waits_for=RELICENSE)
