"""The redownload-URL look-ahead (syncd/fetch.py, Fetcher.prefetch) against the simulator over
HTTP with a slow API: the URLs of later files are asked for while earlier ones transfer, the
look-ahead stays bounded, and a 429 storm does not multiply requests. Counted from the
simulator's request log (the order requests arrived in), not from the clock."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from syncd.api.client import ApiClient
from syncd.api.retry import RetryPolicy
from syncd.fetch import Fetcher, Need, TransferConfig, lookahead_cap
from syncd.simulator import RandomFaults, Simulator
from syncd.storage.filesystem import FilesystemStorage
from syncd.streams import LICENSE_STREAMS
from tests.conftest import TOKEN, Syncd, file_catalog

CONCURRENCY = 2
ENV = {
    "SYNCD_SYNC__CONCURRENCY": str(CONCURRENCY),
    "SYNCD_SYNC__DETAILS": "false",
    "SYNCD_UPDATES__ENABLED": "false",
}


def is_redownload(record) -> bool:
    return record.method == "POST" and record.path.endswith("/downloads")


def is_download(record) -> bool:
    return record.method == "GET" and record.path.startswith("/files/")


def leads(sim: Simulator) -> list[int]:
    """After each request, in the order they arrived: redownload requests received minus
    downloads received. A worker that asks for its URL and then downloads (the guide's
    recipe) holds at most one of the difference, so without a look-ahead it never exceeds
    the concurrency; URLs asked for ahead of the transfers raise it."""
    lead, out = 0, []
    for record in sorted(sim.requests, key=lambda r: r.received):
        if is_redownload(record):
            lead += 1
        elif is_download(record):
            lead -= 1
        out.append(lead)
    return out


def run(tmp_path, sim: Simulator, count: int, env: dict | None = None) -> None:
    syncd = Syncd(tmp_path, sim)
    done = syncd.sync("--media", "videos", env={**ENV, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.summary["downloaded"] == count, done.summary
    assert len(syncd.stored_files()) == count


@pytest.mark.parametrize(
    "latency_ms, delay_ms",
    [(100, 40), (20, 200)],
    ids=["slow-api", "slow-downloads"],  # slow downloads: an unbounded look-ahead runs away
)
def test_later_urls_are_asked_for_while_earlier_files_transfer_and_the_lead_is_bounded(
    tmp_path, latency_ms, delay_ms
):
    count = 30
    faults = RandomFaults(latency_ms=latency_ms, download_delay_ms=delay_ms)
    catalog = file_catalog(seed=171, stream="videos", count=count, size=64 << 10)
    with Simulator(catalog, token=TOKEN, random_faults=faults) as sim:
        run(tmp_path, sim, count)
        lead = max(leads(sim))
        redownloads = [r for r in sim.requests if is_redownload(r)]
    # each URL asked for once: the look-ahead and the workers never both ask
    assert len(redownloads) == count
    # more URLs asked for than files begun: the look-ahead ran ahead of the transfers ...
    assert lead > CONCURRENCY, lead
    # ... but no further than its bound: at most lookahead_cap in flight plus one waiting
    # per slot, beside the one URL each worker holds
    assert lead <= lookahead_cap(CONCURRENCY) + 2 * CONCURRENCY, lead


def test_a_429_storm_slows_the_lookahead_instead_of_multiplying_requests(tmp_path):
    count, storm, retries = 24, 12, 8
    faults = RandomFaults(latency_ms=60)
    catalog = file_catalog(seed=172, stream="videos", count=count, size=16 << 10)
    with Simulator(catalog, token=TOKEN, random_faults=faults) as sim:
        # the first `storm` redownload requests are answered 429, Retry-After 1 s: more than
        # the look-ahead may have in flight, fewer than a license's retries
        sim.add_fault("POST", r"/downloads$", status=429, headers={"Retry-After": "1"}, times=storm)
        run(tmp_path, sim, count, {"SYNCD_API__MAX_RETRIES": str(retries)})
        redownloads = [r for r in sim.requests if is_redownload(r)]
    per_license = Counter(r.path for r in redownloads)
    answered = Counter(r.path for r in redownloads if r.status < 300)
    limited = {r.path for r in redownloads if r.status == 429}
    # every license's URL was had once, and each 429 cost one retry of that request, no more
    assert len(answered) == count and set(answered.values()) == {1}, answered
    assert len(redownloads) == count + storm
    assert max(per_license.values()) <= 1 + retries
    # the storm fell on the few requests in flight when it began (retried after the wait it
    # asked for), not on one new license after another: the look-ahead sent nothing new while
    # its requests waited out their 429s
    assert len(limited) <= lookahead_cap(CONCURRENCY) + CONCURRENCY, sorted(limited)


def test_after_a_429_nothing_is_sent_ahead_until_the_wait_it_asked_for_has_passed(tmp_path):
    """A 429 to any request of the client (here a list page, Retry-After 2 s) holds back the
    look-ahead: the URLs offered meanwhile are asked for once the wait has passed, each once.
    (A busy machine can only make them later, never earlier.)"""
    catalog = file_catalog(seed=173, stream="videos", count=6, size=4096)
    videos = LICENSE_STREAMS["videos"]
    storage = FilesystemStorage(tmp_path / "dam")
    storage.check_writable()
    with Simulator(catalog, token=TOKEN) as sim:
        client = ApiClient(sim.base_url, TOKEN, policy=RetryPolicy(max_retries=2))
        fetcher = Fetcher(
            client,
            storage,
            key_template="{media_type}/{media_id}/{size}{ext}",
            allow_http=False,
            transfer=TransferConfig(),
            pool_size=2,
        )
        try:
            sim.add_fault("GET", r"/licenses$", status=429, headers={"Retry-After": "2"})
            lister = threading.Thread(target=client.license_page, args=(videos, 1, 50, False))
            lister.start()
            deadline = time.monotonic() + 10
            # until the client has taken the 429 in (the simulator logs it before the client
            # has read it)
            while client.rate_limited_until == 0.0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert any(r.status == 429 for r in sim.requests)
            needs = [
                Need(videos, lic.media_id, lic.size, lic.format, (lic.id,))
                for lic in catalog.history("videos")
            ]
            for need in needs:
                fetcher.prefetch(need)
            lister.join(timeout=30)
            time.sleep(0.5)  # the look-ahead's requests (no latency here) are answered
            for need in needs:  # each from the URL asked for ahead: no request of its own
                stored, failures = fetcher.fetch(need)
                assert stored is not None and not failures, failures
        finally:
            fetcher.close()
            client.close()
        limited = next(r for r in sim.requests if r.status == 429)
        redownloads = [r for r in sim.requests if is_redownload(r)]
    assert len(redownloads) == len(needs)
    waited = min(r.received_at for r in redownloads) - limited.received_at
    assert waited >= 1.5, waited
