"""The planner's actions, compared whole: kind, reason and the switch a license waits for."""

from datetime import UTC, datetime

import pytest

from syncd.api.records import LicenseRecord
from syncd.plan import INVALID, REDOWNLOAD, RELICENSE, STORED, UNAVAILABLE, Action, plan
from syncd.streams import LICENSE_STREAMS

T = datetime(2024, 1, 1, tzinfo=UTC)
IMAGES = LICENSE_STREAMS["images"]
EDITORIAL = LICENSE_STREAMS["editorial/images"]


def lic(license_id="i1", media_id="123", size="huge", is_downloadable=True):
    return LicenseRecord(
        "images", license_id, media_id, size, "jpg", "standard", T, is_downloadable=is_downloadable
    )


def test_a_fetchable_license_is_redownloaded_with_no_reason():
    assert plan(lic(), IMAGES, stored=False) == Action(REDOWNLOAD, None, None)


def test_a_stored_asset_is_recorded_only_even_when_not_downloadable():
    assert plan(lic(is_downloadable=False), IMAGES, stored=True) == Action(STORED, None, None)


@pytest.mark.parametrize(
    "record, reason",
    [
        (
            lic(license_id="../i8"),
            "license id '../i8' is not a safe key part (letters, digits, _ and - only)",
        ),
        (
            lic(media_id="../../x"),
            "media id '../../x' is not a safe key part (letters, digits, _ and - only)",
        ),
        (lic(size="a/b"), "size 'a/b' is not a safe key part (letters, digits, _ and - only)"),
    ],
)
def test_an_unsafe_value_is_invalid_and_the_reason_names_the_field(record, reason):
    assert plan(record, IMAGES, stored=True) == Action(INVALID, reason, None)


def test_editorial_waits_for_relicensing_which_is_off_by_default():
    assert plan(lic(), EDITORIAL, stored=False) == Action(
        UNAVAILABLE, "editorial media has no redownload and relicensing is off", RELICENSE
    )


def test_not_downloadable_waits_for_relicensing():
    assert plan(lic(is_downloadable=False), IMAGES, stored=False, relicense=False) == Action(
        UNAVAILABLE, "not downloadable (is_downloadable: false) and relicensing is off", RELICENSE
    )


def test_with_relicensing_on_what_cannot_be_redownloaded_is_to_be_relicensed():
    assert plan(lic(is_downloadable=False), IMAGES, stored=False, relicense=True) == Action(
        RELICENSE, "not downloadable (is_downloadable: false)"
    )
    assert plan(lic(), EDITORIAL, stored=False, relicense=True) == Action(
        RELICENSE, "editorial media has no redownload"
    )
    # never as a fallback: what can be redownloaded is redownloaded, relicensing on or off
    assert plan(lic(is_downloadable=None), IMAGES, stored=False, relicense=True).kind == REDOWNLOAD
    assert plan(lic(is_downloadable=True), IMAGES, stored=False, relicense=True).kind == REDOWNLOAD
