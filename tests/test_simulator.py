"""The API simulator, over real HTTP."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from syncd.simulator import STREAMS, Catalog, RandomFaults, Simulator, cli

TOKEN = "demo-token"


class FakeClock:
    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim():
    with Simulator(Catalog.example(), token=TOKEN) as simulator:
        yield simulator


def list_page(api, sim, stream, **params) -> dict:
    answer = api.get(f"{sim.base_url}/v2/{stream}/licenses", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def redownload_url(api, sim, stream, license_id, size=None) -> str:
    body = {"json": {"size": size}} if size else {}
    answer = api.post(f"{sim.base_url}/v2/{stream}/licenses/{license_id}/downloads", **body)
    assert answer.status_code == 200, answer.text
    return answer.json()["url"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def media(item: dict) -> dict:
    return next(item[key] for key in ("image", "video", "audio") if key in item)


# -- the example dataset ------------------------------------------------------------------


def test_example_has_the_contracts_twelve_licenses_and_nine_files(sim, api):
    pages = {stream: list_page(api, sim, stream, per_page=200) for stream in STREAMS}
    assert {stream: page["total_count"] for stream, page in pages.items()} == {
        "images": 6,
        "videos": 3,
        "audio": 2,
        "editorial/images": 1,
        "editorial/videos": 0,
    }
    fetchable = {
        (stream, media(item)["id"], media(item)["format"]["size"])
        for stream, page in pages.items()
        if stream in ("images", "videos", "audio")
        for item in page["data"]
        if item.get("is_downloadable", True)
    }
    assert len(fetchable) == 9
    images = pages["images"]["data"]
    assert len([item for item in images if item.get("is_downloadable", True)]) == 5  # one twin
    assert [item["is_downloadable"] for item in pages["editorial/images"]["data"]] == [False]
    assert "format" not in pages["editorial/images"]["data"][0]["image"]


def test_items_have_the_reference_shape_and_varied_times(sim, api):
    items = [
        item for stream in STREAMS for item in list_page(api, sim, stream, per_page=200)["data"]
    ]
    for item in items:
        assert {"id", "user", "license", "subscription_id", "download_time", "metadata"} <= set(
            item
        )
        assert datetime.fromisoformat(item["download_time"]).tzinfo is not None
    shapes = {item["download_time"][19:] for item in items}
    assert {"-04:00", ".000Z"} <= shapes
    assert any("is_downloadable" not in item for item in items)
    assert any(item["metadata"] == {} for item in items)
    assert any(item["metadata"] for item in items)


def test_media_key_follows_the_stream(sim, api):
    keys = {
        stream: {
            key
            for item in list_page(api, sim, stream)["data"]
            for key in ("image", "video", "audio")
            if key in item
        }
        for stream in ("images", "videos", "audio", "editorial/images")
    }
    assert keys == {
        "images": {"image"},
        "videos": {"video"},
        "audio": {"audio"},
        "editorial/images": {"image"},
    }


# -- license lists ----------------------------------------------------------------------


@pytest.fixture
def big_sim():
    catalog = Catalog.generate(7, counts={"images": 45}, team_users=["akim"])
    with Simulator(catalog, token=TOKEN) as simulator:
        yield simulator


def test_pages_newest_first_with_total_count(big_sim, api):
    everyone = list_page(api, big_sim, "images", per_page=200, team_history="true")["data"]
    pages = [
        list_page(api, big_sim, "images", page=n, per_page=20, team_history="true")
        for n in (1, 2, 3, 4)
    ]
    assert [len(page["data"]) for page in pages] == [20, 20, 5, 0]
    assert {page["total_count"] for page in pages} == {45}
    assert [page["page"] for page in pages] == [1, 2, 3, 4]
    paged = [item for page in pages for item in page["data"]]
    assert paged == everyone
    times = [datetime.fromisoformat(item["download_time"]) for item in paged]
    assert times == sorted(times, reverse=True)


def test_sort_oldest_reverses_the_order(big_sim, api):
    newest = list_page(api, big_sim, "images", per_page=200, team_history="true")["data"]
    oldest = list_page(api, big_sim, "images", per_page=200, team_history="true", sort="oldest")[
        "data"
    ]
    assert oldest == newest[::-1]


def test_default_page_size_is_20(big_sim, api):
    page = list_page(api, big_sim, "images", team_history="true")
    assert (len(page["data"]), page["page"], page["per_page"]) == (20, 1, 20)


def test_team_history_adds_the_teams_licenses(big_sim, api):
    own = list_page(api, big_sim, "images", per_page=200)
    team = list_page(api, big_sim, "images", per_page=200, team_history="true")
    assert {item["user"]["username"] for item in own["data"]} == {"jsmith"}
    assert {item["user"]["username"] for item in team["data"]} == {"jsmith", "akim"}
    assert own["total_count"] < team["total_count"] == 45


def test_filters_by_media_id_license_username_and_dates(sim, api):
    by_image = list_page(api, sim, "images", image_id="59656357")["data"]
    assert sorted(item["id"] for item in by_image) == ["i4117504982", "i4190467223", "i5220931177"]
    enhanced = list_page(api, sim, "images", license="enhanced")["data"]
    assert [item["id"] for item in enhanced] == ["i4388120097"]
    assert list_page(api, sim, "images", license="-standard")["data"] == enhanced
    assert list_page(api, sim, "images", username="akim")["total_count"] == 0
    window = list_page(
        api, sim, "images", start_date="2016-10-03T16:01:12-04:00", end_date="2016-12-01T08:45:00Z"
    )["data"]
    assert [item["id"] for item in window] == ["i4388120097", "i4190467223"]


def test_unknown_query_parameters_are_ignored(sim, api):
    assert list_page(api, sim, "images", colour="blue")["total_count"] == 6


@pytest.mark.parametrize("per_page", ["201", "-1", "ten"])
def test_bad_per_page_is_400_with_errors(sim, api, per_page):
    answer = api.get(f"{sim.base_url}/v2/images/licenses", params={"per_page": per_page})
    assert answer.status_code == 400
    body = answer.json()
    assert body["message"] and body["errors"][0]["path"] == "$.per_page"


@pytest.mark.parametrize(
    "params",
    [{"page": "0"}, {"sort": "random"}, {"team_history": "yes"}, {"start_date": "yesterday"}],
)
def test_other_bad_parameters_are_400(sim, api, params):
    assert api.get(f"{sim.base_url}/v2/images/licenses", params=params).status_code == 400


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "demo-token"])
def test_api_without_the_token_is_401(sim, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [
        ("GET", "/v2/images/licenses"),
        ("POST", "/v2/audio/licenses/a1193046520/downloads"),
    ]:
        answer = requests.request(method, sim.base_url + path, headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {"message": "Invalid or missing token"}


def test_unknown_paths_are_404_with_an_error_body(sim, api):
    for method, path in [
        ("GET", "/v2/sfx/licenses"),
        ("POST", "/v2/editorial/images/licenses/e3f0c2a9d1b84e6a9c7/downloads"),
        ("GET", "/v2/images/licenses/i4117504982/downloads"),
        ("GET", "/elsewhere"),
    ]:
        answer = api.request(method, sim.base_url + path, json={"size": "original"})
        assert answer.status_code == 404
        assert answer.json()["message"]


def test_answers_keep_the_connection_alive_with_exact_lengths(sim):
    connection = http.client.HTTPConnection("127.0.0.1", int(sim.base_url.rsplit(":", 1)[1]))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for path in ["/v2/images/licenses", "/v2/nowhere", "/v2/videos/licenses?per_page=500"]:
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        body = answer.read()
        assert int(answer.headers["Content-Length"]) == len(body)
        assert not answer.will_close
    connection.close()


# -- redownloads and files ----------------------------------------------------------------


def test_redownload_url_serves_the_expected_bytes(sim, api):
    fetched = {}
    for stream, license_id, media_id, size in [
        ("images", "i4117504982", "59656357", "huge"),
        ("images", "i4388120097", "1079756147", "vector"),
        ("videos", "v2604117935", "2140697", "sd"),
        ("audio", "a1193046520", "591623", None),
    ]:
        url = redownload_url(api, sim, stream, license_id, size)
        answer = requests.get(url)
        assert answer.status_code == 200
        assert len(answer.content) == int(answer.headers["Content-Length"])
        file_size = "original" if stream == "audio" else size
        assert len(answer.content) == sim.expected_size(stream, media_id, file_size)
        assert sha256(answer.content) == sim.expected_sha256(stream, media_id, file_size)
        assert url.endswith(sim.file_ext(stream, file_size))
        fetched[license_id] = answer.content
    assert len(set(fetched.values())) == 4
    assert sim.file_ext("images", "vector") == ".eps"


def test_downloads_need_no_token_and_their_headers_are_recorded(sim, api):
    url = redownload_url(api, sim, "videos", "v2711930286", "hd")
    requests.get(url, headers={"X-Probe": "1"})
    (download,) = sim.download_requests()
    assert download.headers["x-probe"] == "1"
    assert "Authorization" not in download.headers
    assert download.status == 200
    assert [record.path for record in sim.api_requests()] == [
        "/v2/videos/licenses/v2711930286/downloads"
    ]


def test_redownload_of_a_license_that_is_not_downloadable_is_403(sim, api):
    answer = api.post(
        f"{sim.base_url}/v2/images/licenses/i5302216985/downloads", json={"size": "huge"}
    )
    assert answer.status_code == 403
    assert answer.json()["message"]


def test_redownload_of_an_unknown_license_is_404(sim, api):
    for stream, license_id in [("images", "i0"), ("videos", "i4117504982")]:
        answer = api.post(
            f"{sim.base_url}/v2/{stream}/licenses/{license_id}/downloads",
            json={"size": "huge" if stream == "images" else "hd"},
        )
        assert answer.status_code == 404
        assert answer.json()["message"]


@pytest.mark.parametrize("body", [None, b"not json", {"size": "gigantic"}, {"size": "medium"}])
def test_image_redownload_needs_the_licensed_size(sim, api, body):
    send = {"json": body} if isinstance(body, dict) else {"data": body}
    answer = api.post(f"{sim.base_url}/v2/images/licenses/i4117504982/downloads", **send)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["message"]


def test_audio_redownload_takes_no_body(sim, api):
    url = redownload_url(api, sim, "audio", "a1230587731")
    assert requests.get(url).status_code == 200


def test_expired_or_forged_download_url_is_403():
    clock = FakeClock()
    with (
        Simulator(Catalog.example(), token=TOKEN, url_ttl_s=60, clock=clock) as sim,
        requests.Session() as api,
    ):
        api.headers["Authorization"] = f"Bearer {TOKEN}"
        url = redownload_url(api, sim, "images", "i4511296408", "small")
        clock.now += 60
        assert requests.get(url).status_code == 200
        clock.now += 1
        assert requests.get(url).status_code == 403
        token_start = url.index("/files/") + len("/files/")
        forged = url[:token_start] + "A" + url[token_start + 1 :]
        assert requests.get(forged).status_code == 403


def test_range_request_serves_the_rest_of_the_file(sim, api):
    url = redownload_url(api, sim, "videos", "v2893310764", "4k")
    whole = requests.get(url).content
    rest = requests.get(url, headers={"Range": "bytes=1000-"})
    assert rest.status_code == 206
    assert rest.content == whole[1000:]
    assert rest.headers["Content-Range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    middle = requests.get(url, headers={"Range": "bytes=10-19"})
    assert (middle.status_code, middle.content) == (206, whole[10:20])
    beyond = requests.get(url, headers={"Range": f"bytes={len(whole)}-"})
    assert beyond.status_code == 416


def test_head_of_a_file_gives_its_length(sim, api):
    url = redownload_url(api, sim, "images", "i4190467223", "medium")
    answer = requests.head(url)
    assert int(answer.headers["Content-Length"]) == sim.expected_size(
        "images", "59656357", "medium"
    )


def test_large_files_are_deterministic_and_not_periodic():
    catalog = Catalog()
    catalog.add("videos", media_id="1", size="4k", file_size=3 * 2**20 + 5)
    with Simulator(catalog, token=TOKEN) as sim, requests.Session() as api:
        api.headers["Authorization"] = f"Bearer {TOKEN}"
        (item,) = list_page(api, sim, "videos")["data"]
        body = requests.get(redownload_url(api, sim, "videos", item["id"], "4k")).content
    mib = 2**20
    assert len({body[:mib], body[mib : 2 * mib], body[2 * mib : 3 * mib]}) == 3
    assert sha256(body) == Simulator(catalog).expected_sha256("videos", "1", "4k")


def test_unsafe_media_id_is_listed_as_is_and_its_url_name_is_safe(api):
    catalog = Catalog()
    catalog.add("images", media_id="../../x", size="huge", license_id="i1")
    with Simulator(catalog, token=TOKEN) as sim:
        (item,) = list_page(api, sim, "images")["data"]
        assert item["image"]["id"] == "../../x"
        url = redownload_url(api, sim, "images", "i1", "huge")
        assert ".." not in url
        answer = requests.get(url)
    assert sha256(answer.content) == sim.expected_sha256("images", "../../x", "huge")


def test_files_dir_mode_writes_the_files_and_points_urls_at_the_download_base(tmp_path, api):
    catalog = Catalog.example()
    catalog.add("images", media_id="../../x", size="huge", license_id="i1")
    with Simulator(
        catalog, token=TOKEN, download_base="http://files.test/dam/", files_dir=tmp_path / "files"
    ) as sim:
        url = redownload_url(api, sim, "images", "i4117504982", "huge")
        assert url.startswith("http://files.test/dam/images/59656357/huge.jpg?expires=")
        added = sim.add_license("videos", media_id="77", size="hd", file_size=1000)
    written = [
        path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*") if path.is_file()
    ]
    assert len(written) == 11  # 9 files of the example, the unsafe one, the added one
    assert all(name.startswith("files/") for name in written)
    served = tmp_path / "files/images/59656357/huge.jpg"
    assert sha256(served.read_bytes()) == sim.expected_sha256("images", "59656357", "huge")
    assert (tmp_path / "files/videos/77/hd.mov").stat().st_size == 1000
    assert added["video"]["id"] == "77"
    assert not sim.download_requests()


# -- shaping what happens -------------------------------------------------------------------


def test_add_license_puts_it_at_the_head(sim, api):
    added = sim.add_license("images", media_id="1234567", size="medium")
    (first, second) = list_page(api, sim, "images", per_page=2)["data"]
    assert first == added
    newest, older = (datetime.fromisoformat(item["download_time"]) for item in (first, second))
    assert newest > older
    assert list_page(api, sim, "images")["total_count"] == 7
    url = redownload_url(api, sim, "images", added["id"], "medium")
    content = requests.get(url).content
    assert hashlib.sha256(content).hexdigest() == sim.expected_sha256("images", "1234567", "medium")


def test_add_license_with_a_given_time_keeps_it(sim, api):
    sim.add_license("videos", download_time="2015-01-01T00:00:00.000Z")
    oldest = list_page(api, sim, "videos", sort="oldest")["data"][0]
    assert oldest["download_time"] == "2015-01-01T00:00:00.000Z"


def test_on_list_page_callback_runs_once_between_pages(sim, api):
    calls = []

    def insert(simulator):
        calls.append(simulator)
        simulator.add_license("images")

    sim.on_list_page("images", 1, insert)
    first = list_page(api, sim, "images", per_page=3)
    second = list_page(api, sim, "images", per_page=3)
    assert calls == [sim]
    assert first["total_count"] == 6 and second["total_count"] == 7
    assert second["data"][1:] == first["data"][:2]
    page_two = list_page(api, sim, "images", page=2, per_page=3)
    assert page_two["data"][0] == first["data"][2]  # pushed down a page


def test_fault_answers_exactly_times_requests(sim, api):
    sim.add_fault(
        "GET", r"^/v2/images/licenses$", status=503, times=2, headers={"Retry-After": "0"}
    )
    statuses = [api.get(f"{sim.base_url}/v2/images/licenses").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert [record.status for record in sim.list_requests("images")] == statuses
    assert api.get(f"{sim.base_url}/v2/videos/licenses").status_code == 200


def test_fault_with_a_body_and_content_type(sim, api):
    sim.add_fault("POST", "/downloads$", status=429, body="slow down", content_type="text/plain")
    answer = api.post(f"{sim.base_url}/v2/audio/licenses/a1193046520/downloads")
    assert (answer.status_code, answer.text, answer.headers["Content-Type"]) == (
        429,
        "slow down",
        "text/plain",
    )


def test_fault_actions(sim, api):
    sim.add_fault("GET", "/v2/images/licenses", action="reset")
    with pytest.raises(requests.ConnectionError):
        api.get(f"{sim.base_url}/v2/images/licenses")
    assert sim.list_requests("images")[-1].status == 0

    sim.add_fault("GET", "/v2/images/licenses", action="html")
    answer = api.get(f"{sim.base_url}/v2/images/licenses")
    assert answer.status_code == 502 and answer.headers["Content-Type"] == "text/html"

    sim.add_fault("GET", "/v2/images/licenses", action="badjson")
    answer = api.get(f"{sim.base_url}/v2/images/licenses")
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()

    url = redownload_url(api, sim, "videos", "v2604117935", "sd")
    sim.add_fault("GET", "^/files/", action="truncate")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url)
    assert len(requests.get(url).content) == sim.expected_size("videos", "2140697", "sd")


def test_random_faults_from_a_seed(api):
    faults = RandomFaults(seed=1, rate_limit_rate=1.0, reset_rate=1.0)
    with Simulator(Catalog.example(), token=TOKEN, random_faults=faults) as sim:
        answer = api.get(f"{sim.base_url}/v2/images/licenses")
        assert (answer.status_code, answer.headers["Retry-After"]) == (429, "1")
        faults.rate_limit_rate = 0.0
        url = redownload_url(api, sim, "images", "i4117504982", "huge")
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(url)
        faults.fail_rate = 1.0
        assert api.get(f"{sim.base_url}/v2/images/licenses").status_code == 500


def test_download_delay_holds_back_the_first_byte_of_downloads_only(api):
    faults = RandomFaults(download_delay_ms=400)
    with Simulator(Catalog.example(), token=TOKEN, random_faults=faults) as sim:
        started = time.monotonic()
        url = redownload_url(api, sim, "images", "i4117504982", "huge")
        api_s = time.monotonic() - started
        started = time.monotonic()
        with requests.get(url, stream=True) as answer:
            first_byte_s = time.monotonic() - started
            body = answer.content
    assert api_s < 0.3
    assert first_byte_s >= 0.4
    assert len(body) == sim.expected_size("images", "59656357", "huge")


def test_reset_log_forgets_requests(sim, api):
    list_page(api, sim, "audio")
    assert len(sim.requests) == 1
    sim.reset_log()
    assert sim.requests == []


def test_pages_requested_lists_each_list_requests_page_in_order(sim, api):
    list_page(api, sim, "images", page=2, per_page=1)
    list_page(api, sim, "images")  # no page parameter: page 1
    list_page(api, sim, "videos", page=3, per_page=1)
    list_page(api, sim, "images", page=5, per_page=1)
    assert sim.pages_requested("images") == [2, 1, 5]
    assert sim.pages_requested("videos") == [3]
    assert sim.pages_requested("audio") == []


# -- generated catalogs -----------------------------------------------------------------


def test_generate_is_deterministic_from_the_seed():
    def snapshot(catalog):
        return {stream: [lic.to_api() for lic in catalog.history(stream)] for stream in STREAMS}

    counts = {"images": 30, "editorial/videos": 5}
    first = Catalog.generate(3, counts=counts)
    assert snapshot(first) == snapshot(Catalog.generate(3, counts=counts))
    assert snapshot(first) != snapshot(Catalog.generate(4, counts=counts))
    assert len(first) == 35


def test_generate_makes_twins_and_the_ids_the_api_uses():
    catalog = Catalog.generate(5, twin_ratio=0.3, not_downloadable_ratio=0.2)
    images = catalog.history("images")
    assert len(images) == 50
    assert len({lic.file for lic in images}) < 50
    assert any(lic.is_downloadable is False for lic in images)
    assert all(lic.id[0] == "i" and lic.id[1:].isdigit() for lic in images)
    assert all(lic.media_id.isdigit() for lic in images)
    editorial = catalog.history("editorial/images")
    assert all(lic.id.startswith("e") and not lic.media_id.isdigit() for lic in editorial)


def test_generate_takes_file_sizes_as_a_list_or_a_function():
    listed = Catalog.generate(1, counts={"images": 4}, sizes=[10, 20], twin_ratio=0)
    assert sorted(listed.files().values()) == [10, 10, 20, 20]
    computed = Catalog.generate(
        1, counts={"videos": 3}, sizes=lambda stream, index: 100 + index, twin_ratio=0
    )
    assert sorted(computed.files().values()) == [100, 101, 102]


def test_download_times_parse_and_are_newest_first():
    catalog = Catalog.generate(9)
    for stream in STREAMS:
        times = [datetime.fromisoformat(lic.download_time) for lic in catalog.history(stream)]
        assert times == sorted(times, reverse=True)
        assert all(time.utcoffset() is not None for time in times)
    before = max(lic.time for stream in STREAMS for lic in catalog.history(stream))
    assert catalog.add("audio").time == before + timedelta(seconds=1)


# -- the command ----------------------------------------------------------------------


def test_cli_serves_until_sigterm():
    script = (
        "import argparse, sys; from syncd.simulator import cli;"
        " p = argparse.ArgumentParser(); cli.add_arguments(p);"
        " sys.exit(cli.run(p.parse_args(sys.argv[1:])))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, "--port", "0", "--seed", "2", "--licenses", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("simulator listening on http://127.0.0.1:")
        assert line.rstrip().endswith("(token: demo-token)")
        base_url = line.split()[3]
        page = requests.get(
            f"{base_url}/v2/videos/licenses", headers={"Authorization": "Bearer demo-token"}
        ).json()
        assert page["total_count"] == 3
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()


def test_cli_refuses_options_that_need_seed(capsys):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["--licenses", "5"])) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_rejects_rates_outside_zero_to_one():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--fail-rate", "1.5"])
