"""The pager's page arithmetic, page by page: the API's per_page, total_count as a stop, and a
history cut short."""

from datetime import UTC, datetime, timedelta

import pytest

from syncd.api.records import LicensePage, LicenseRecord
from syncd.streams import HistoryCutShort, Watermark, newest, pages_until

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def lic(n, seconds=None):
    moment = T0 + timedelta(seconds=n if seconds is None else seconds)
    return LicenseRecord("images", f"i{n}", str(n), "huge", "jpg", "standard", moment)


def served(pages):
    """fetch_page over fixed pages; records the page numbers asked for."""
    asked = []

    def fetch(number):
        asked.append(number)
        return pages[number - 1]

    return fetch, asked


def test_ties_keep_the_first_license_seen():
    a, b = lic(1, 100), lic(2, 100)
    assert newest([a, b], None) == Watermark("i1", a.download_time)
    assert newest([lic(3, 50)], Watermark("i9", a.download_time)) == Watermark(
        "i9", a.download_time
    )


def test_the_page_size_the_api_answers_wins_over_the_one_asked_for():
    history = [lic(n) for n in range(9, 0, -1)]
    pages = [LicensePage(history[i : i + 3], i // 3 + 1, 3, None) for i in (0, 3, 6)]
    pages.append(LicensePage([], 4, 3, None))
    fetch, asked = served(pages)
    assert [n for n, _ in pages_until(fetch, None, per_page=200)] == [1, 2, 3, 4]
    assert asked == [1, 2, 3, 4]


def test_without_a_page_size_in_the_answer_the_asked_one_is_used():
    pages = [LicensePage([lic(3), lic(2)], 1, None, None), LicensePage([lic(1)], 2, None, None)]
    fetch, asked = served(pages)
    assert [n for n, _ in pages_until(fetch, None, per_page=2)] == [1, 2]


def test_total_count_stops_after_the_page_that_reaches_it():
    history = [lic(n) for n in range(6, 0, -1)]
    pages = [LicensePage(history[0:3], 1, 3, 6), LicensePage(history[3:6], 2, 3, 6)]
    fetch, asked = served(pages)
    list(pages_until(fetch, None, per_page=3))
    assert asked == [1, 2]


def test_a_short_page_that_matches_total_count_ends_the_history():
    pages = [LicensePage([lic(5), lic(4), lic(3)], 1, 3, 5), LicensePage([lic(2), lic(1)], 2, 3, 5)]
    fetch, asked = served(pages)
    list(pages_until(fetch, None, per_page=3))
    assert asked == [1, 2]


def test_a_short_page_before_total_count_is_a_history_cut_short():
    pages = [LicensePage([lic(6), lic(5), lic(4)], 1, 3, 6), LicensePage([lic(3)], 2, 3, 6)]
    fetch, asked = served(pages)
    with pytest.raises(HistoryCutShort) as caught:
        list(pages_until(fetch, None, per_page=3))
    assert str(caught.value) == "page 2 has 1 licenses, but total_count 6 promises more"
    assert asked == [1, 2]
