"""Every 5xx answer is retried, on the API as on downloads (CONTRACT 5); other 4xx are not."""

from __future__ import annotations

import pytest

from syncd.api.retry import is_retriable
from tests.conftest import first_pass_updated_requests, requests_by_kind


@pytest.mark.parametrize("status", [429, 500, 501, 502, 503, 504, 507, 520, 599])
def test_429_and_every_5xx_are_retriable(status):
    assert is_retriable(status)


@pytest.mark.parametrize("status", [200, 301, 400, 401, 403, 404, 410, 418, 428, 430, 600])
def test_other_statuses_are_final(status):
    assert not is_retriable(status)


@pytest.mark.parametrize("status", [501, 507, 520])
def test_an_unusual_5xx_on_a_list_is_retried_and_the_stream_finishes(syncd, status):
    syncd.sim.add_fault("GET", r"^/v2/images/licenses$", status=status, times=1)
    syncd.sim.add_fault("POST", r"^/v2/videos/licenses/.*/downloads$", status=status, times=1)
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    # the contract example's 14, each faulted request once more, the details and updates
    updated = first_pass_updated_requests()
    assert requests_by_kind(syncd.sim) == {
        "list": 6,
        "redownload": 10,
        "details": 4,
        "updated": updated,
    }
    assert done.summary["api_requests"] == 14 + 2 + 4 + updated
    assert done.summary["downloaded"] == 9 and done.summary["failed"] == 0


def test_a_5xx_on_a_download_is_retried(syncd):
    syncd.sim.add_fault("GET", r"^/files/", status=520, times=1)
    done = syncd.sync("--media", "audio")
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 2
    assert len(syncd.sim.api_requests("POST")) == 2  # the same URL again, no new redownload
