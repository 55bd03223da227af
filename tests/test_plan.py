"""The planner: a pure decision per license."""

from datetime import UTC, datetime

from syncd.api.records import LicenseRecord
from syncd.plan import INVALID, REDOWNLOAD, STORED, UNAVAILABLE, plan
from syncd.streams import LICENSE_STREAMS

T = datetime(2024, 1, 1, tzinfo=UTC)


def lic(license_id, media_id="123", is_downloadable=True, size="huge", media_type="images"):
    return LicenseRecord(
        media_type,
        license_id,
        media_id,
        size,
        "jpg",
        "standard",
        T,
        is_downloadable=is_downloadable,
    )


def test_missing_downloadable_license_is_redownloaded():
    assert plan(lic("i1"), LICENSE_STREAMS["images"], stored=False).kind == REDOWNLOAD
    assert (
        plan(lic("i2", is_downloadable=None), LICENSE_STREAMS["images"], stored=False).kind
        == REDOWNLOAD
    )


def test_stored_asset_and_size_is_recorded_only():
    assert (
        plan(lic("i3", is_downloadable=False), LICENSE_STREAMS["images"], stored=True).kind
        == STORED
    )


def test_not_downloadable_is_unavailable_with_a_reason():
    action = plan(lic("i4", is_downloadable=False), LICENSE_STREAMS["images"], stored=False)
    assert action.kind == UNAVAILABLE and "is_downloadable" in action.reason


def test_editorial_is_unavailable_without_relicensing():
    action = plan(
        lic("e5", media_id="9804979n", size="original", media_type="editorial/images"),
        LICENSE_STREAMS["editorial/images"],
        stored=False,
    )
    assert action.kind == UNAVAILABLE and "editorial" in action.reason


def test_hostile_values_are_invalid_before_any_request():
    assert (
        plan(lic("i6", media_id="../../x"), LICENSE_STREAMS["images"], stored=False).kind == INVALID
    )
    assert plan(lic("i7", size="../huge"), LICENSE_STREAMS["images"], stored=False).kind == INVALID
    assert plan(lic("../i8"), LICENSE_STREAMS["images"], stored=False).kind == INVALID
