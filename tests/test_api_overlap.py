"""API requests that wait on a slow API together (syncd/api/ahead.py): the license streams'
first pages, a whole history's next pages, the details and the /updated streams' first pages
are sent a few at a time, not one after another; the same requests as one by one.

Checked from the simulator's log against its latency: an answer comes at least LATENCY after
its request arrived, so requests that all arrived within LATENCY of the first of them all
arrived before any of them was answered. Sent one after another, each arrives after the one
before was answered."""

from __future__ import annotations

from syncd.simulator import Catalog, RandomFaults, Simulator
from tests.conftest import TOKEN, Syncd

LATENCY_S = 0.4
CONCURRENCY = 4
COUNT = 600  # 3 pages of 200 videos, 6 detail requests of 100


def together(records) -> bool:
    """Whether every one of these requests arrived before the first of them was answered."""
    arrived = [r.received_at for r in records]
    return max(arrived) - min(arrived) < LATENCY_S


def first_pages(sim: Simulator) -> dict[str, object]:
    pages = {}
    for r in sorted(sim.requests, key=lambda r: r.received):
        if r.method == "GET" and r.path.endswith("/licenses") and r.query["page"] == ["1"]:
            pages.setdefault(r.path.removeprefix("/v2/").removesuffix("/licenses"), r)
    return pages


def test_first_pages_details_and_updated_pages_wait_on_the_api_together(tmp_path):
    # videos only, none downloadable: a run of lists, details and /updated requests alone
    catalog = Catalog.generate(
        seed=181, counts={"videos": COUNT}, twin_ratio=0, not_downloadable_ratio=1
    )
    faults = RandomFaults(latency_ms=int(LATENCY_S * 1000))
    with Simulator(catalog, token=TOKEN, random_faults=faults) as sim:
        syncd = Syncd(tmp_path, sim)
        done = syncd.sync(env={"SYNCD_SYNC__CONCURRENCY": str(CONCURRENCY)})
        assert done.returncode == 0, done.stderr[-3000:]
        requests = sorted(sim.requests, key=lambda r: r.received)
    firsts = first_pages(sim)
    streams = ["images", "videos", "audio", "editorial/images", "editorial/videos"]
    assert sorted(firsts) == sorted(streams)  # in any order but the first
    # the first request goes alone (an API not there, or a token refused, costs one); the
    # other streams' first pages then all go out before any is answered
    assert requests[0] is firsts["images"]
    assert all(r.received_at >= firsts["images"].received_at + LATENCY_S for r in requests[1:])
    assert together(
        [firsts[s] for s in ["videos", "audio", "editorial/images", "editorial/videos"]]
    )
    # a whole history's length is on its first page: the videos' next pages go out together
    videos = sorted(sim.list_requests("videos"), key=lambda r: r.received)
    assert [r.query["page"] for r in videos] in ([["1"], ["2"], ["3"]], [["1"], ["3"], ["2"]])
    assert together(videos[1:])
    # the same list requests as one stream after another: one page each but the videos'
    assert sum(len(sim.list_requests(s)) for s in firsts) == 4 + 3
    # the details: the same six requests of 100 ids, as many out at once as the concurrency
    details = [r for r in requests if r.method == "GET" and r.path == "/v2/videos"]
    assert sorted(len(r.query["id"]) for r in details) == [100] * (COUNT // 100)
    assert together(details[:CONCURRENCY])
    # the /updated streams' first requests (then each stream walks on from its own)
    updated = {}
    for r in requests:
        if r.path.endswith("/updated"):
            updated.setdefault(r.path, r)
    assert sorted(updated) == [
        "/v2/editorial/images/updated",
        "/v2/images/updated",
        "/v2/videos/updated",
    ]
    assert together(list(updated.values()))
