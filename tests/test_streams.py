"""The pager's stop rule, for any history and any interleaving of new licenses."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.api.records import LicensePage, LicenseRecord
from syncd.streams import Watermark, newest, pages_until

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def lic(n, seconds):
    return LicenseRecord(
        "images", f"i{n}", str(n), "huge", "jpg", "standard", T0 + timedelta(seconds=seconds)
    )


class History:
    """A license history served newest-first, into which licenses arrive between pages."""

    def __init__(self, licenses):
        self.licenses = sorted(licenses, key=lambda lic: lic.download_time, reverse=True)
        self.requests = 0
        self.arrivals = {}

    def page(self, number, per_page):
        self.requests += 1
        start = (number - 1) * per_page
        result = LicensePage(
            self.licenses[start : start + per_page], number, per_page, len(self.licenses)
        )
        for arrival in self.arrivals.pop(number, []):
            self.licenses.insert(0, arrival)
        return result


def walk(history, watermark, per_page):
    seen = []
    for _number, page in pages_until(lambda n: history.page(n, per_page), watermark, per_page):
        seen.extend(page.licenses)
    return seen


def test_nothing_new_costs_one_request():
    history = History([lic(i, i) for i in range(500)])
    watermark = Watermark("i499", T0 + timedelta(seconds=499))
    walk(history, watermark, 200)
    assert history.requests == 1


@given(st.integers(0, 700), st.sampled_from([3, 10, 200]))
def test_k_new_licenses_cost_ceil_k_plus_one_over_per_page(k, per_page):
    old = [lic(i, i) for i in range(50)]
    history = History(old + [lic(1000 + i, 1000 + i) for i in range(k)])
    walk(history, Watermark("i49", T0 + timedelta(seconds=49)), per_page)
    assert history.requests == -(-(k + 1) // per_page)


def test_same_download_time_as_the_watermark_is_not_a_reason_to_stop():
    # three licenses share the watermark's second; the watermark is the last of them on page 2
    tie = [lic(i, 100) for i in range(3)]
    history = History([lic(9, 200), lic(8, 150), *tie, lic(1, 50)])
    history.licenses = [
        history.licenses[0],
        history.licenses[1],
        tie[0],
        tie[1],
        tie[2],
        history.licenses[-1],
    ]
    seen = walk(history, Watermark("i2", T0 + timedelta(seconds=100)), 2)
    assert {lic.license_id for lic in seen} >= {"i9", "i8", "i0", "i1", "i2"}


@settings(max_examples=60)
@given(
    st.integers(1, 60),
    st.integers(0, 40),
    st.sampled_from([2, 5, 7]),
    st.lists(st.tuples(st.integers(1, 12), st.integers(1, 5)), max_size=6),
)
def test_licenses_arriving_while_paging_are_never_skipped(old_count, new_count, per_page, arrivals):
    old = [lic(i, i) for i in range(old_count)]
    new = [lic(1000 + i, 1000 + i) for i in range(new_count)]
    history = History(old + new)
    late = 5000
    for page_number, count in arrivals:
        history.arrivals.setdefault(page_number, []).extend(
            lic(late + j, late + j) for j in range(count)
        )
        late += count
    watermark = Watermark(old[-1].license_id, old[-1].download_time)
    seen = walk(history, watermark, per_page)
    seen_ids = {lic.license_id for lic in seen}
    # every license newer than the watermark that existed when paging started is seen
    assert {lic.license_id for lic in new} <= seen_ids


def test_first_run_pages_to_the_end():
    history = History([lic(i, i) for i in range(401)])
    seen = walk(history, None, 200)
    assert len({lic.license_id for lic in seen}) == 401
    assert history.requests == 3


def test_newest_is_the_head_and_never_regresses():
    current = Watermark("i5", T0 + timedelta(seconds=5))
    assert newest([lic(3, 3)], current) == current
    assert newest([lic(9, 9), lic(8, 8)], current).license_id == "i9"
