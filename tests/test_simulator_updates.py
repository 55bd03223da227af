"""The simulator's asset details and updated-media endpoints, over real HTTP."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from syncd.simulator import MAX_DETAIL_IDS, STREAMS, Catalog, Simulator

TOKEN = "demo-token"
NOW = datetime(2024, 3, 10, 12, 0, 0, tzinfo=UTC)
NASTY = 'Tom & Jerry <b>"bold"</b> \x00\x01\x07\x1b\x7f tab\tnew\nline \u2028 \ud7ff é ✓'


@pytest.fixture
def sim():
    catalog = Catalog.example()
    catalog.set_now(NOW)
    with Simulator(catalog, token=TOKEN) as simulator:
        yield simulator


def get(api, sim, path, **params):
    return api.get(sim.base_url + path, params=params)


def ok(answer) -> dict:
    assert answer.status_code == 200, answer.text
    return answer.json()


def media_ids(catalog: Catalog, stream: str) -> list[str]:
    return list(dict.fromkeys(lic.media_id for lic in catalog.history(stream)))


# -- details: the catalog ----------------------------------------------------------------------


def test_every_asset_of_every_stream_has_details_of_its_shape():
    catalog = Catalog.generate(3, counts={stream: 20 for stream in STREAMS})
    keys = {
        "images": {"id", "description", "keywords", "categories", "contributor", "image_type"},
        "videos": {"id", "description", "keywords", "categories", "duration", "aspect_ratio"},
        "audio": {"id", "title", "description", "artists", "album", "genres", "bpm", "duration"},
        "editorial/images": {"id", "title", "caption", "byline", "keywords", "date_taken"},
        "editorial/videos": {"id", "title", "caption", "byline", "keywords", "date_taken"},
    }
    media_type = {"images": "image", "videos": "video", "audio": "audio"}
    not_downloadable = 0
    for stream in STREAMS:
        for lic in catalog.history(stream):
            details = catalog.details(stream, lic.media_id)
            assert details is not None and keys[stream] <= set(details), (stream, details)
            assert details["id"] == lic.media_id
            if stream in media_type:
                assert details["media_type"] == media_type[stream]
                assert details.get("is_editorial", False) is False
            not_downloadable += lic.is_downloadable is False
    assert not_downloadable > 0  # their assets have details too


def test_details_are_deterministic_from_the_seed_whatever_the_order():
    first, second, other = Catalog.generate(8), Catalog.generate(8), Catalog.generate(9)
    ids = media_ids(first, "images")
    forwards = [first.details("images", media_id) for media_id in ids]
    backwards = [second.details("images", media_id) for media_id in reversed(ids)][::-1]
    assert forwards == backwards
    assert first.details("images", ids[0]) != other.details("images", ids[0])


def test_details_are_none_for_an_unknown_asset_and_copies_otherwise():
    catalog = Catalog.example()
    assert catalog.details("images", "1") is None
    assert catalog.details("videos", "59656357") is None  # an image id, not a video's
    details = catalog.details("images", "59656357")
    assert details is not None
    details["description"] = "changed by the caller"
    assert catalog.details("images", "59656357")["description"] != "changed by the caller"


def test_set_details_replaces_or_merges_and_makes_the_asset_known():
    catalog = Catalog.example()
    before = catalog.details("videos", "2140697")
    merged = catalog.set_details("videos", "2140697", {"description": NASTY}, merge=True)
    assert merged == {**before, "description": NASTY}
    assert catalog.details("videos", "2140697") == merged
    replaced = catalog.set_details("audio", "777", {"title": "Only this", "id": "other"})
    assert replaced == {"title": "Only this", "id": "777"}
    assert catalog.has_asset("audio", "777")


# -- details: the endpoints ------------------------------------------------------------------


def test_detail_list_full_view_in_the_order_asked_without_unknown_ids(sim, api):
    body = ok(get(api, sim, "/v2/images", id=["114350371", "nope", "59656357"], view="full"))
    assert [item["id"] for item in body["data"]] == ["114350371", "59656357"]
    assert body["data"][1] == sim.catalog.details("images", "59656357")
    assert [(error["data"], error["code"]) for error in body["errors"]] == [("nope", "NOT_FOUND")]


def test_detail_list_defaults_to_the_minimal_view(sim, api):
    minimal = ok(get(api, sim, "/v2/videos", id="2140697"))["data"][0]
    full = ok(get(api, sim, "/v2/videos", id="2140697", view="full"))["data"][0]
    assert {"id", "media_type", "description", "aspect", "assets"} <= set(minimal)
    assert set(minimal) < set(full)
    assert "keywords" not in minimal and "keywords" in full
    assert "errors" not in full


def test_detail_list_takes_comma_separated_ids_and_repeats_once(sim, api):
    body = ok(get(api, sim, "/v2/audio", id="591623,442583", view="full"))
    assert [item["id"] for item in body["data"]] == ["591623", "442583"]
    body = ok(get(api, sim, "/v2/audio", id=["591623", "591623"], view="full"))
    assert [item["id"] for item in body["data"]] == ["591623"]


def test_details_with_markup_and_control_characters_come_back_intact(sim, api):
    sim.catalog.set_details("images", "59656357", {"description": NASTY}, merge=True)
    sim.catalog.set_details("editorial/images", "9804979n", {"title": NASTY}, merge=True)
    answer = get(api, sim, "/v2/images", id="59656357", view="full")
    assert json.loads(answer.content)["data"][0]["description"] == NASTY
    assert b"<b>" not in answer.content or "<b>" in NASTY  # JSON, not HTML-escaped
    editorial = ok(get(api, sim, "/v2/editorial/images/9804979n", country="USA"))
    assert editorial["title"] == NASTY


def test_up_to_max_detail_ids_and_400_above(sim, api):
    assert MAX_DETAIL_IDS == 500
    ids = ["59656357"] + [str(n) for n in range(MAX_DETAIL_IDS - 1)]
    body = ok(get(api, sim, "/v2/images", id=ids))
    assert [item["id"] for item in body["data"]] == ["59656357"]
    over = get(api, sim, "/v2/images", id=[*ids, "one-more"])
    assert over.status_code == 400
    assert str(MAX_DETAIL_IDS) in over.json()["message"]
    assert over.json()["errors"][0]["path"] == "$.id"


def test_detail_list_without_an_id_is_400(sim, api):
    assert get(api, sim, "/v2/images", view="full").status_code == 400


@pytest.mark.parametrize("stream", ["editorial/images", "editorial/videos"])
def test_editorial_details_need_a_country_and_404_for_an_unknown_id(api, stream):
    catalog = Catalog.generate(4, counts={stream: 3})
    media_id = catalog.history(stream)[0].media_id
    with Simulator(catalog, token=TOKEN) as sim:
        found = ok(get(api, sim, f"/v2/{stream}/{media_id}", country="USA"))
        assert found == catalog.details(stream, media_id)
        missing_country = get(api, sim, f"/v2/{stream}/{media_id}")
        assert missing_country.status_code == 400
        assert missing_country.json()["errors"][0]["path"] == "$.country"
        assert get(api, sim, f"/v2/{stream}/{media_id}", country="us").status_code == 400
        assert get(api, sim, f"/v2/{stream}/0n", country="USA").status_code == 404
        assert [r.status for r in sim.detail_requests(stream)] == [200, 400, 400, 404]
        assert sim.detail_ids_requested(stream) == [media_id] * 3 + ["0n"]


def test_deleted_assets_vanish_from_details_and_an_addition_brings_them_back(sim, api):
    catalog = sim.catalog
    catalog.add_update("images", "59656357", NOW - timedelta(minutes=5), ("deletion",))
    catalog.add_update("editorial/images", "9804979n", NOW - timedelta(minutes=5), ("deletion",))
    assert catalog.is_deleted("images", "59656357")
    assert catalog.details("images", "59656357") is None
    body = ok(get(api, sim, "/v2/images", id=["59656357", "114350371"], view="full"))
    assert [item["id"] for item in body["data"]] == ["114350371"]
    assert [error["data"] for error in body["errors"]] == ["59656357"]
    assert get(api, sim, "/v2/editorial/images/9804979n", country="USA").status_code == 404
    catalog.add_update("images", "59656357", NOW, ("addition",))
    body = ok(get(api, sim, "/v2/images", id="59656357"))
    assert [item["id"] for item in body["data"]] == ["59656357"]


def test_an_edit_with_details_changes_them(sim, api):
    sim.catalog.add_update("videos", "2140697", NOW, details={"description": "re-captioned"})
    body = ok(get(api, sim, "/v2/videos", id="2140697", view="full"))
    assert body["data"][0]["description"] == "re-captioned"
    assert body["data"][0]["keywords"]  # the rest kept


# -- /v2/{images,videos}/updated ---------------------------------------------------------------


def updated(api, sim, stream="images", **params) -> dict:
    return ok(get(api, sim, f"/v2/{stream}/updated", **params))


def test_interval_defaults_to_the_hour_before_the_simulators_clock(sim, api):
    add = sim.catalog.add_update
    add("images", "1", NOW - timedelta(minutes=61))
    add("images", "2", NOW - timedelta(minutes=59), ("addition",))
    add("images", "3", NOW)
    add("images", "4", NOW + timedelta(seconds=1))  # in the future of the clock
    body = updated(api, sim)
    assert [item["id"] for item in body["data"]] == ["3", "2"]
    assert body["data"][1] == {
        "id": "2",
        "updated_time": "2024-03-10T07:01:00-04:00",
        "updates": ["addition"],
    }
    assert (body["page"], body["per_page"], body["total_count"]) == (1, 100, 2)
    assert [i["id"] for i in updated(api, sim, interval="2 HOUR")["data"]] == ["3", "2", "1"]
    assert [i["id"] for i in updated(api, sim, interval="30 MINUTE")["data"]] == ["3"]
    sim.set_now(NOW + timedelta(days=1))
    assert updated(api, sim)["total_count"] == 0
    assert updated(api, sim, interval="1 DAY")["total_count"] == 2  # 3 and 4


@pytest.mark.parametrize("interval", ["1 FORTNIGHT", "HOUR", "0 HOUR", "-1 DAY", "1.5 DAY"])
def test_bad_interval_is_400(sim, api, interval):
    answer = get(api, sim, "/v2/images/updated", interval=interval)
    assert answer.status_code == 400
    assert "interval" in answer.json()["message"]


def test_dates_include_start_date_and_exclude_end_date(sim, api):
    add = sim.catalog.add_update
    add("videos", "before", datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC))
    add("videos", "first", datetime(2024, 3, 2, 0, 0, 0, tzinfo=UTC))
    add("videos", "last", datetime(2024, 3, 4, 23, 59, 59, tzinfo=UTC))
    add("videos", "after", datetime(2024, 3, 5, 0, 0, 0, tzinfo=UTC))
    body = updated(api, sim, "videos", start_date="2024-03-02", end_date="2024-03-05")
    assert [item["id"] for item in body["data"]] == ["last", "first"]
    oldest = updated(
        api, sim, "videos", start_date="2024-03-02", end_date="2024-03-05", sort="oldest"
    )
    assert [item["id"] for item in oldest["data"]] == ["first", "last"]


@pytest.mark.parametrize("stream", ["images", "videos"])
def test_a_range_of_more_than_three_days_is_400(sim, api, stream):
    assert updated(api, sim, stream, start_date="2024-03-01", end_date="2024-03-04")["page"] == 1
    answer = get(api, sim, f"/v2/{stream}/updated", start_date="2024-03-01", end_date="2024-03-05")
    assert answer.status_code == 400
    assert "no more than three days" in answer.json()["message"]
    backwards = get(
        api, sim, f"/v2/{stream}/updated", start_date="2024-03-05", end_date="2024-03-01"
    )
    assert backwards.status_code == 400


@pytest.mark.parametrize("date_parameter", ["start_date", "end_date"])
def test_interval_with_a_date_is_400(sim, api, date_parameter):
    answer = get(api, sim, "/v2/images/updated", interval="1 DAY", **{date_parameter: "2024-03-01"})
    assert answer.status_code == 400
    assert "interval cannot be used with" in answer.json()["message"]


@pytest.mark.parametrize("value", ["2024-03-01T00:00:00Z", "03/01/2024", "2024-02-30"])
def test_dates_must_be_dates(sim, api, value):
    assert get(api, sim, "/v2/images/updated", start_date=value).status_code == 400


@pytest.mark.parametrize("per_page, status", [(0, 400), (1, 200), (2000, 200), (2001, 400)])
def test_updated_per_page_is_1_to_2000(sim, api, per_page, status):
    answer = get(api, sim, "/v2/images/updated", per_page=per_page)
    assert answer.status_code == status
    if status == 200:
        assert answer.json()["per_page"] == per_page


def test_type_filters_images_updates(sim, api):
    add = sim.catalog.add_update
    add("images", "a", NOW - timedelta(minutes=3), ("addition",))
    add("images", "e", NOW - timedelta(minutes=2), ("edit",))
    add("images", "d", NOW - timedelta(minutes=1), ("deletion",))
    add("images", "ae", NOW, ("addition", "edit"))
    assert [i["id"] for i in updated(api, sim, type="deletion")["data"]] == ["d"]
    both = updated(api, sim, type=["addition", "deletion"])
    assert [i["id"] for i in both["data"]] == ["ae", "d", "a"]
    assert both["data"][0]["updates"] == ["addition", "edit"]
    assert updated(api, sim)["total_count"] == 4
    assert get(api, sim, "/v2/images/updated", type="removal").status_code == 400


def test_page_numbers_cover_every_update_once_with_ties_at_one_second(sim, api):
    second = NOW - timedelta(minutes=10)
    ids = [f"tie{n:03}" for n in range(57)]
    sim.catalog.add_updates("images", [(media_id, second) for media_id in ids])
    sim.catalog.add_update("images", "later", second + timedelta(seconds=1))
    for sort, expected in (("oldest", [*ids, "later"]), ("newest", ["later", *ids[::-1]])):
        seen: list[str] = []
        for page in range(1, 8):
            body = updated(api, sim, page=page, per_page=10, sort=sort)
            assert body["total_count"] == 58
            seen += [item["id"] for item in body["data"]]
        assert seen == expected
    assert updated(api, sim, page=7, per_page=10)["data"] == []


def test_bulk_updates_are_answered_by_bisecting(api):
    catalog = Catalog.example()
    catalog.set_now(NOW)
    start = NOW - timedelta(minutes=59)
    added = catalog.add_updates(
        "images",
        ((str(10**9 + n), start + timedelta(milliseconds=30 * n)) for n in range(100_000)),
    )
    assert added == 100_000
    catalog.add_update("images", "59656357", NOW - timedelta(days=2))  # outside the window
    with Simulator(catalog, token=TOKEN) as sim:
        started = time.perf_counter()
        pages = [updated(api, sim, page=page, per_page=2000) for page in (1, 25, 50, 51)]
        elapsed = time.perf_counter() - started
    assert [body["total_count"] for body in pages] == [100_000] * 4
    assert pages[0]["data"][0]["id"] == str(10**9 + 99_999)
    assert pages[2]["data"][-1]["id"] == str(10**9)
    assert pages[3]["data"] == []
    assert elapsed < 2.0  # scanning 100,000 events per page would not be


def test_update_requests_are_in_the_request_log(sim, api):
    updated(api, sim)
    updated(api, sim, "videos", interval="1 DAY")
    get(api, sim, "/v2/images/updated", per_page=0)
    get(api, sim, "/v2/images", id="59656357")
    assert [r.status for r in sim.updated_requests("images")] == [200, 400]
    assert [r.query for r in sim.updated_requests("videos")] == [{"interval": ["1 DAY"]}]
    assert [r.query["id"] for r in sim.detail_requests("images")] == [["59656357"]]
    assert sim.detail_requests("videos") == []


def test_add_update_refuses_other_streams_and_kinds():
    catalog = Catalog.example()
    with pytest.raises(ValueError):
        catalog.add_update("audio", "591623", NOW)
    with pytest.raises(ValueError):
        catalog.add_update("images", "1", NOW, ("removal",))
    with pytest.raises(ValueError):
        catalog.add_update("images", "1", datetime(2024, 1, 1))  # no UTC offset
    assert catalog.updates("images") == []


# -- /v2/editorial/images/updated and /v2/editorial/updated ------------------------------------

EDITORIAL_PATHS = ["/v2/editorial/images/updated", "/v2/editorial/updated"]
WINDOW = {
    "date_updated_start": "2024-03-01T00:00:00Z",
    "date_updated_end": "2024-03-02T00:00:00Z",
    "country": "USA",
}


@pytest.fixture
def editorial_sim():
    catalog = Catalog.generate(21, counts={"editorial/images": 30})
    ids = media_ids(catalog, "editorial/images")
    base = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
    for n, media_id in enumerate(ids):
        kinds = ("addition",) if n % 3 == 0 else ("deletion",) if n % 3 == 1 else ("edit",)
        catalog.add_update("editorial/images", media_id, base + timedelta(seconds=n // 4), kinds)
    catalog.add_updates(
        "editorial/images",
        [(f"{n}unknown", base + timedelta(hours=1), ("edit",)) for n in range(250)],
    )
    catalog.add_update("editorial/images", ids[0], datetime(2024, 3, 2, tzinfo=UTC))  # end: out
    with Simulator(catalog, token=TOKEN) as simulator:
        yield simulator


def expected_events(sim, kinds: set[str]) -> list:
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
    return [
        event
        for event in sim.catalog.updates("editorial/images")
        if start <= event.time < end and kinds.intersection(event.updates)
    ]


def cursor_pages(api, sim, path, **params) -> list[dict]:
    pages = [ok(get(api, sim, path, **WINDOW, **params))]
    while "next" in pages[-1]:
        pages.append(ok(get(api, sim, path, **WINDOW, **params, cursor=pages[-1]["next"])))
        assert len(pages) < 20
    return pages


@pytest.mark.parametrize("path", EDITORIAL_PATHS)
@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_cursor_paging_covers_every_item_once(editorial_sim, api, path, sort):
    pages = cursor_pages(api, editorial_sim, path, type="edit", per_page=100, sort=sort)
    items = [item for page in pages for item in page["data"]]
    expected = expected_events(editorial_sim, {"edit", "deletion"})
    assert len(expected) > 260
    assert [len(page["data"]) for page in pages[:-1]] == [100] * (len(pages) - 1)
    assert len(pages) == -(-len(expected) // 100)
    if sort == "newest":
        expected.reverse()
    assert [(item["id"], item["updates"]) for item in items] == [
        (event.media_id, list(event.updates)) for event in expected
    ]
    times = [datetime.fromisoformat(item["updated_time"]) for item in items]
    assert times == sorted(times, reverse=sort == "newest")
    assert "prev" not in pages[0] and all("prev" in page for page in pages[1:])
    assert all(page["per_page"] == 100 for page in pages)


def test_prev_cursor_gives_the_page_before(editorial_sim, api):
    path = EDITORIAL_PATHS[0]
    pages = cursor_pages(api, editorial_sim, path, type="edit", per_page=100)
    back = ok(
        get(api, editorial_sim, path, **WINDOW, type="edit", per_page=100, cursor=pages[2]["prev"])
    )
    assert back["data"] == pages[1]["data"]


def test_editorial_type_edit_includes_deletions_and_addition_only_additions(editorial_sim, api):
    path = EDITORIAL_PATHS[0]
    edits = [i for p in cursor_pages(api, editorial_sim, path, type="edit") for i in p["data"]]
    additions = ok(get(api, editorial_sim, path, **WINDOW, type="addition"))
    assert {tuple(item["updates"]) for item in edits} == {("edit",), ("deletion",)}
    assert {tuple(item["updates"]) for item in additions["data"]} == {("addition",)}
    assert len(additions["data"]) == len(expected_events(editorial_sim, {"addition"})) >= 9
    assert "next" not in additions
    known = next(item for item in additions["data"] if not item["id"].endswith("unknown"))
    assert {"title", "caption", "byline", "keywords", "updated_time"} <= set(known)
    deleted = next(item for item in edits if item["updates"] == ["deletion"])
    assert "caption" in deleted  # as it was before its deletion
    assert editorial_sim.catalog.details("editorial/images", deleted["id"]) is None


def test_ties_at_one_second_page_exactly_with_the_cursor(api):
    catalog = Catalog.example()
    second = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    catalog.add_updates("editorial/images", [(f"{n}n", second) for n in range(1234)])
    with Simulator(catalog, token=TOKEN) as sim:
        pages = cursor_pages(api, sim, EDITORIAL_PATHS[1], type="edit", per_page=100)
    ids = [item["id"] for page in pages for item in page["data"]]
    assert len(pages) == 13
    assert ids == [f"{n}n" for n in reversed(range(1234))]


@pytest.mark.parametrize("path", EDITORIAL_PATHS)
@pytest.mark.parametrize(
    "drop, extra",
    [
        ("type", {}),
        ("date_updated_start", {}),
        ("date_updated_end", {}),
        ("country", {}),
        (None, {"type": "deletion"}),
        (None, {"per_page": "99"}),
        (None, {"per_page": "501"}),
        (None, {"cursor": "not-a-cursor"}),
        (None, {"date_updated_end": "2024-02-01T00:00:00Z"}),
    ],
)
def test_editorial_updated_bad_requests_are_400(editorial_sim, api, path, drop, extra):
    params = {**WINDOW, "type": "edit", **extra}
    params.pop(drop, None)
    answer = api.get(editorial_sim.base_url + path, params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"][0]["path"].startswith("$.")


def test_editorial_per_page_defaults_to_500_and_takes_100_to_500(editorial_sim, api):
    path = EDITORIAL_PATHS[0]
    body = ok(get(api, editorial_sim, path, **WINDOW, type="edit"))
    assert body["per_page"] == 500 and "next" not in body
    assert len(body["data"]) == len(expected_events(editorial_sim, {"edit", "deletion"})) > 260
    for per_page in (100, 500):
        assert ok(get(api, editorial_sim, path, **WINDOW, type="edit", per_page=per_page))["data"]


def test_a_cursor_of_the_other_sort_is_400(editorial_sim, api):
    path = EDITORIAL_PATHS[0]
    first = ok(get(api, editorial_sim, path, **WINDOW, type="edit", per_page=100))
    answer = get(
        api, editorial_sim, path, **WINDOW, type="edit", sort="oldest", cursor=first["next"]
    )
    assert answer.status_code == 400
    assert [len(editorial_sim.updated_requests("editorial/images"))] == [2]
