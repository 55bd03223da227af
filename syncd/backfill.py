"""``syncd backfill``: walk the license history (or the part of it in [--since, --until))
whatever the watermark says, record what was never seen, fetch what is missing.

The walk goes newest-first through date windows, not page numbers (pages shift as licenses
arrive): ask for the first page of [since, end); when it holds the whole rest of the range,
that is the last window; else every license newer than the page's oldest second is on it, so
[that second + 1 s, end) is complete, recorded, and committed as the checkpoint, and the walk
goes on below it. A page whose licenses all fall in the one second before ``end`` is paged
through by number (a second in the past no longer changes). A killed backfill started again
with the same range resumes at its checkpoint; it never moves a catch-up watermark.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from syncd.api.client import ApiClient, ApiError, Forbidden
from syncd.api.records import LicensePage, LicenseRecord
from syncd.config import Config
from syncd.db import ledger
from syncd.db.models import BackfillState
from syncd.progress import Meter
from syncd.storage import Storage
from syncd.streams import PER_PAGE, HistoryCutShort, LicenseStream, pages_until
from syncd.sync import SyncRun

log = structlog.get_logger("syncd.backfill")

SECOND = timedelta(seconds=1)


def whole_second(moment: datetime) -> datetime:
    """``moment`` in UTC, cut to the second (the API's date-times have no fraction)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class RangeIgnored(ApiError):
    """The API answered with licenses outside the start_date/end_date asked for."""


class BackfillRun(SyncRun):
    COMMAND = "backfill"
    RUNS_UPDATES = False

    def __init__(
        self,
        config: Config,
        *,
        media: tuple[str, ...],
        since: datetime | None = None,
        until: datetime | None = None,
        dry_run: bool = False,
        progress: Meter | None = None,
        stop: threading.Event | None = None,
        drain: threading.Event | None = None,
        on_request: Callable[[int | None], None] | None = None,
    ):
        super().__init__(
            config,
            media=media,
            dry_run=dry_run,
            progress=progress,
            stop=stop,
            drain=drain,
            on_request=on_request,
        )
        self.since = None if since is None else whole_second(since)
        self.until = None if until is None else whole_second(until)
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("--since must be before --until")
        # the open end of a range is fixed when its walk begins (newer licenses are the
        # catch-up's): a second after now, so that this second's licenses are in
        self._now = whole_second(datetime.now(UTC)) + SECOND
        self._walked: list[BackfillState] = []  # ranges paged through, to mark finished

    # --- paging: windows instead of the watermark ---------------------------------------------

    def _first_pages(self, session: Session, client: ApiClient, ahead) -> dict:
        return {}  # a backfill's windows are asked for one by one

    def _catch_up(self, session: Session, client: ApiClient, stream: LicenseStream, run) -> None:
        team = self.config.sync.team_history
        state = ledger.backfill_state(
            session,
            stream.media_type,
            team,
            self.since,
            self.until,
            self._now,
            create=not self.dry_run,
        )
        if not self.dry_run:
            state.run_id = run.id
            session.commit()
        bound = log.bind(stream=stream.media_type, range=state.range_key)
        if state.paged_at is not None:
            bound.info("backfill.already_paged", paged_at=state.paged_at.isoformat())
            self._walked.append(state)
            return
        if state.checkpoint != state.fixed_until:
            bound.info("backfill.resumed", checkpoint=_aware(state.checkpoint).isoformat())
        try:
            self._walk(session, client, stream, state)
        except Forbidden as exc:
            self.result.refused[stream.media_type] = str(exc)
            bound.error("stream.refused", error=str(exc))
            return
        except (ApiError, HistoryCutShort) as exc:
            self.result.stream_errors[stream.media_type] = str(exc)
            bound.error("stream.failed", error=str(exc))
            return
        self._walked.append(state)
        bound.info("backfill.paged")

    def _walk(
        self, session: Session, client: ApiClient, stream: LicenseStream, state: BackfillState
    ) -> None:
        lower = self.since
        end = _aware(state.checkpoint)
        while lower is None or end > lower:
            self._check_draining()
            page = self._window(client, stream, 1, lower, end)
            size = page.per_page or PER_PAGE
            next_end: datetime | None
            if len(page.licenses) < size or (
                page.total_count is not None and page.total_count <= size
            ):  # the rest of the range on one page: the last window
                if page.total_count is not None and len(page.licenses) < page.total_count:
                    raise HistoryCutShort(
                        f"the page of {stream.media_type} licenses before {end.isoformat()} "
                        f"has {len(page.licenses)}, but total_count {page.total_count} "
                        "promises more"
                    )
                self._take(session, page.licenses)
                next_end = lower
            else:
                cut = whole_second(min(lic.download_time for lic in page.licenses)) + SECOND
                if cut < end:  # everything newer than the page's oldest second is on it
                    self._take(session, [lic for lic in page.licenses if lic.download_time >= cut])
                    next_end = cut
                else:  # a full page inside the one second before end: page that second
                    next_end = end - SECOND
                    self._page_second(session, client, stream, page, next_end)
            self._advance(session, state, next_end)
            if next_end is None:
                break
            end = next_end
        if not self.dry_run:
            state.paged_at = ledger.utcnow()
            session.commit()

    def _window(
        self,
        client: ApiClient,
        stream: LicenseStream,
        number: int,
        start: datetime | None,
        end: datetime,
    ) -> LicensePage:
        team = self.config.sync.team_history
        page = client.license_page(stream, number, PER_PAGE, team, start=start, end=end)
        _check_inside(page, stream, start, end)
        return page

    def _page_second(
        self,
        session: Session,
        client: ApiClient,
        stream: LicenseStream,
        first: LicensePage,
        second: datetime,
    ) -> None:
        """Pages through the licenses of one second (more than a page of them), by number: a
        second in the past no longer changes. ``first`` is its first page, already read."""
        end = second + SECOND
        for _, page in pages_until(
            lambda n: first if n == 1 else self._window(client, stream, n, second, end), None
        ):
            self._check_draining()
            self._take(session, page.licenses)

    def _take(self, session: Session, licenses: list[LicenseRecord]) -> None:
        fresh = self._first_sightings(licenses)
        new = self._record(session, fresh)
        log.debug("backfill.window", licenses=len(licenses), new=len(new))
        self.progress.show(self.result.summary, 0)

    def _advance(self, session: Session, state: BackfillState, end: datetime | None) -> None:
        """Everything in [end, fixed_until) is recorded: the checkpoint moves there (with the
        licenses, in one commit)."""
        if self.dry_run:
            return
        if end is not None:
            state.checkpoint = ledger.naive_utc(end)
        session.commit()

    # --- fetching: as a sync does; then the walked ranges are finished --------------------------

    def _fetch_missing(self, session: Session, client: ApiClient, storage: Storage) -> None:
        super()._fetch_missing(session, client, storage)
        if self.dry_run:
            return
        now = ledger.utcnow()
        for state in self._walked:
            state.finished_at = now
        session.commit()


def _check_inside(
    page: LicensePage, stream: LicenseStream, start: datetime | None, end: datetime
) -> None:
    """A window's page must hold only licenses of that window: an API that ignored the range
    would make the walk record the wrong licenses and never end."""
    for lic in page.licenses:
        if lic.download_time >= end or (start is not None and lic.download_time < start):
            raise RangeIgnored(
                f"GET /v2/{stream.path}/licenses answered a license downloaded at "
                f"{lic.download_time.isoformat()} outside the range asked for "
                f"({'' if start is None else start.isoformat()}..{end.isoformat()}): the API "
                "does not filter by start_date/end_date, so the history cannot be walked"
            )
