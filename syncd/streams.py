"""The license streams, declared as data, and the one pager that walks them newest-first.

The stop rule (CONTRACT section 5): page until the watermark's license, or a license whose
download_time is strictly older than the watermark's, and stop at the end of that page. Without a
watermark, page to the end of the history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from syncd.api.records import LicensePage, LicenseRecord

PER_PAGE = 200


@dataclass(frozen=True)
class LicenseStream:
    media_type: str  # as in keys and config: "editorial/images"
    media_key: str  # the item's media object: "image", "video", "audio"
    redownload: bool  # has POST /v2/{path}/licenses/{id}/downloads
    redownload_takes_size: bool  # that endpoint's body is {"size": ...}

    @property
    def path(self) -> str:
        return self.media_type


LICENSE_STREAMS: dict[str, LicenseStream] = {
    stream.media_type: stream
    for stream in (
        LicenseStream("images", "image", redownload=True, redownload_takes_size=True),
        LicenseStream("videos", "video", redownload=True, redownload_takes_size=True),
        LicenseStream("audio", "audio", redownload=True, redownload_takes_size=False),
        LicenseStream("editorial/images", "image", redownload=False, redownload_takes_size=False),
        LicenseStream("editorial/videos", "video", redownload=False, redownload_takes_size=False),
    )
}


@dataclass(frozen=True)
class Watermark:
    license_id: str
    download_time: datetime

    def reached_by(self, license: LicenseRecord) -> bool:
        return license.license_id == self.license_id or license.download_time < self.download_time


def newest(licenses: list[LicenseRecord], current: Watermark | None) -> Watermark | None:
    """The watermark a finished catch-up leaves: its newest license (the first seen on ties)."""
    best = current
    for license in licenses:
        if best is None or license.download_time > best.download_time:
            best = Watermark(license.license_id, license.download_time)
    return best


class HistoryCutShort(ValueError):
    """A page ended the history before ``total_count`` said it would: stopping there would move
    the watermark past licenses never seen."""


def pages_until(
    fetch_page: Callable[[int], LicensePage], watermark: Watermark | None, per_page: int = PER_PAGE
) -> Iterator[tuple[int, LicensePage]]:
    """Yields (page number, page) newest-first until the stop rule says the rest is known.
    Raises HistoryCutShort when a short page contradicts the total the API announced."""
    number = 1
    while True:
        page = fetch_page(number)
        yield number, page
        if watermark is not None and any(watermark.reached_by(lic) for lic in page.licenses):
            return
        size = page.per_page or per_page
        seen_so_far = (number - 1) * size + len(page.licenses)
        if len(page.licenses) < size:
            if page.total_count is not None and seen_so_far < page.total_count:
                raise HistoryCutShort(
                    f"page {number} has {len(page.licenses)} licenses, but total_count "
                    f"{page.total_count} promises more"
                )
            return
        if page.total_count is not None and number * size >= page.total_count:
            return
        number += 1
