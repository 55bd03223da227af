"""Asset details for the sidecars (``sync.details``, CONTRACT sections 4 and 5): for every
asset with a recorded license whose details were never asked for, ask the API, many ids per
request where it takes them (images, videos, audio), one by one for editorial media.

Details are kept in the database (``assets.details``) and go into the JSON sidecar's
``details`` and the XMP packets. A request that fails leaves the details null and the assets
unasked, so a later run asks again; it never fails a file. An asset the API answers without
(withdrawn, unknown) is not asked for again until an update names it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from sqlalchemy.orm import Session

from syncd.api.ahead import Ahead
from syncd.api.client import ApiClient, ApiError

log = structlog.get_logger("syncd.details")

# ids per GET /v2/{images,videos,audio}?id=..: the reference documents no maximum; 100 keeps
# the URL near 2 KB with long ids, under every proxy's and server's limit
IDS_PER_REQUEST = 100
BATCHED = frozenset({"images", "videos", "audio"})
ONE_BY_ONE = frozenset({"editorial/images", "editorial/videos"})
ASSETS_AT_A_TIME = 2000  # read from the database at a time


@dataclass
class DetailCounts:
    requests: int = 0
    fetched: int = 0  # assets whose details arrived (new or changed)
    absent: int = 0  # assets the API answered without
    failed: int = 0  # assets whose request failed (asked again by a later run)


def fetch_details(
    session: Session,
    client: ApiClient,
    media_types: tuple[str, ...],
    country: str,
    check: Callable[[], None] = lambda: None,
    workers: int = 1,
) -> DetailCounts:
    """Asks for the details of every active asset of ``media_types`` that has none yet and
    keeps what the API answers, ``workers`` requests at a time (their answers are kept in the
    order asked). ``check`` is called before each answer is taken (it raises to stop: a
    draining run; the requests in flight are let finish, no more are sent)."""
    from syncd.db import ledger

    counts = DetailCounts()
    for media_type in media_types:
        if media_type not in BATCHED and media_type not in ONE_BY_ONE:
            continue
        after: str | None = None
        while True:
            ids = ledger.assets_without_details(
                session, media_type, after=after, limit=ASSETS_AT_A_TIME
            )
            if not ids:
                break
            after = ids[-1]
            step = IDS_PER_REQUEST if media_type in BATCHED else 1
            batches = [ids[start : start + step] for start in range(0, len(ids), step)]
            with Ahead(client, workers) as ahead:
                ask = partial(_ask, client, media_type, country)
                for batch, answer in ahead.in_order(ask, batches):
                    if client.given_up:
                        return counts
                    check()
                    counts.requests += 1
                    try:
                        found = answer.result()
                    except ApiError as exc:
                        counts.failed += len(batch)
                        log.warning(
                            "details.failed",
                            media_type=media_type,
                            assets=len(batch),
                            error=str(exc),
                        )
                        continue
                    counts.fetched += ledger.set_details(session, media_type, batch, found)
                    counts.absent += len(batch) - len(found)
                    session.commit()
            if len(ids) < ASSETS_AT_A_TIME:
                break
    if counts.requests:
        log.info(
            "details.fetched",
            requests=counts.requests,
            fetched=counts.fetched,
            absent=counts.absent,
            failed=counts.failed,
        )
    return counts


def _ask(client: ApiClient, media_type: str, country: str, batch: list[str]) -> dict[str, Any]:
    if media_type in BATCHED:
        return client.details(media_type, batch)
    one = client.editorial_details(media_type, batch[0], country)
    return {} if one is None else {batch[0]: one}
