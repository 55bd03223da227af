"""The /updated streams (CONTRACT section 5): keep the DAM current as Shutterstock edits or
withdraws assets syncd holds.

``/v2/images/updated`` and ``/v2/videos/updated`` take dates (``start_date`` on or after,
``end_date`` before, at most three days apart): a pass walks windows of three days newest-first,
each overlapping the next by a day (the API's day need not be UTC's), from two days ahead of
today down to the day before the mark, paging each newest-first (2000 a page) until the first
update already applied. ``/v2/editorial/images/updated`` takes date-times and is paged by
cursor (``type=edit``: edits include deletions; its entries carry the item's details).

The mark of a stream is the newest ``updated_time`` applied with the ids seen at that second:
an update is new when it is newer than the mark, or at the mark's second with an id not seen
there, so ties are neither skipped nor applied twice. The mark moves only when a pass has
finished; a pass cut short is walked again (applying is idempotent). The first pass reaches
back ``updates.lookback``.

Only assets syncd holds are acted on: a deletion marks the asset deleted (recorded before
any file is moved or removed) and applies ``updates.on_deletion``; any other update makes the
details be fetched again (with ``sync.details``), which rewrites the sidecars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from syncd.api.ahead import Ahead
from syncd.api.client import ApiClient, ApiError, Forbidden, NotFound
from syncd.api.records import UpdatePage, UpdateRecord
from syncd.config import Config
from syncd.db import ledger
from syncd.db.models import UpdateState
from syncd.storage import Storage
from syncd.storage.keys import xmp_key
from syncd.streams import HistoryCutShort
from syncd.sync import SyncRun  # sync imports this module only when a run gets here

log = structlog.get_logger("syncd.updates")

DAY = timedelta(days=1)
# The API's dates are in a zone it does not name: the windows cover the floor and now in
# every zone there is, from UTC-12 (the floor's date there is the earliest) to UTC+14 (now's
# date there is the latest), and no more, so that a pass an hour after the last walks one window
WESTMOST = timedelta(hours=12)
EASTMOST = timedelta(hours=14)
WINDOW_DAYS = 3  # the most the API takes between start_date and end_date
DATED_PER_PAGE = 2000
CURSOR_PER_PAGE = 500
SETTLED = timedelta(hours=1)  # a pass that sees nothing new moves the mark this close to now
LATEST_API_TIME = datetime(2038, 1, 19, tzinfo=UTC)  # the editorial dates' upper bound


@dataclass(frozen=True)
class UpdateStream:
    media_type: str  # the held assets it concerns, and the key of its mark
    path: str  # under /v2/
    cursor: bool  # editorial: date-times and a cursor; else dates and page numbers


UPDATE_STREAMS: dict[str, UpdateStream] = {
    stream.media_type: stream
    for stream in (
        UpdateStream("images", "images/updated", cursor=False),
        UpdateStream("videos", "videos/updated", cursor=False),
        UpdateStream("editorial/images", "editorial/images/updated", cursor=True),
    )
}


def windows(floor: datetime, now: datetime) -> Iterator[tuple[date, date]]:
    """[start, end) date windows of at most three days, newest first, each overlapping the
    next by a day, from the day after ``now``'s date at UTC+14 down to ``floor``'s date at
    UTC-12."""
    lowest = (floor - WESTMOST).date()
    end = (now + EASTMOST).date() + DAY
    while True:
        start = max(end - WINDOW_DAYS * DAY, lowest)
        yield start, end
        if start <= lowest:
            return
        end = start + DAY


@dataclass
class Mark:
    """The newest update applied and the ids seen at that moment."""

    time: datetime
    ids: set[str]
    first: bool = False  # no mark yet: ``time`` is the lookback's floor, nothing applied there

    def applied(self, update: UpdateRecord) -> bool:
        """Whether this update was applied by an earlier pass (or is older than the floor)."""
        if update.updated_time < self.time:
            return True
        return update.updated_time == self.time and not self.first and update.media_id in self.ids


@dataclass
class PassResult:
    applied: int = 0
    deleted: int = 0
    refreshed: int = 0
    requests: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # "images/updated" -> why


class UpdatePass:
    """One pass over every enabled /updated stream, then the deletions acted on."""

    def __init__(
        self,
        config: Config,
        session: Session,
        client: ApiClient,
        storage: Storage,
        check: Callable[[], None] = lambda: None,
        media: tuple[str, ...] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.config = config
        self.session = session
        self.client = client
        self.storage = storage
        self.check = check
        self.media = config.sync.media if media is None else media
        self.now = now
        self.result = PassResult()

    def run(self) -> PassResult:
        streams = [s for media_type, s in UPDATE_STREAMS.items() if media_type in self.media]
        with Ahead(self.client, self.config.sync.concurrency) as ahead:
            # the first page of every stream asked for at once; each is then walked in turn
            firsts = {stream.path: self._ask_first(stream, ahead) for stream in streams}
            self.session.rollback()  # it only read: no transaction across the network
            for stream in streams:
                if self.client.given_up:
                    break
                self.check()
                name = f"/v2/{stream.path}"
                try:
                    self._stream(stream, *firsts[stream.path])
                except (NotFound, Forbidden) as exc:
                    # an API (or an account) without this feed: the DAM is kept current by
                    # the other streams; said once a run, not a failure of the run
                    outcome = "refused" if isinstance(exc, Forbidden) else "unsupported"
                    self._outcome(stream, outcome, str(exc))
                    log.warning("updates." + outcome, stream=name, error=str(exc))
                except (ApiError, HistoryCutShort) as exc:
                    self.result.errors[stream.path] = str(exc)
                    self._outcome(stream, "failed", str(exc))
                    log.error("updates.failed", stream=name, error=str(exc))
        self._act_on_deletions()
        return self.result

    # --- one stream --------------------------------------------------------------------------

    def _mark(self, state: UpdateState | None, now: datetime) -> Mark:
        if state is None or state.mark_time is None:
            return Mark(now - timedelta(seconds=self.config.updates.lookback), set(), first=True)
        return Mark(state.mark_time.replace(tzinfo=UTC), set(state.mark_ids or []))

    def _ask_first(
        self, stream: UpdateStream, ahead: Ahead
    ) -> tuple[datetime, Mark, Future[UpdatePage]]:
        """The stream's first page, asked for ahead (from its mark as it stands now)."""
        now = self.now()
        mark = self._mark(self.session.get(UpdateState, stream.media_type), now)
        if stream.cursor:
            start, end = self._cursor_span(mark, now)
            country = self.config.updates.country
            page = ahead.submit(
                self.client.editorial_updated_page,
                stream.path,
                start,
                end,
                country,
                None,
                CURSOR_PER_PAGE,
            )
        else:
            start_day, end_day = next(windows(mark.time, now))
            page = ahead.submit(
                self.client.updated_page, stream.path, start_day, end_day, 1, DATED_PER_PAGE
            )
        return now, mark, page

    def _stream(
        self,
        stream: UpdateStream,
        now: datetime,
        asked_from: Mark | None = None,
        asked: Future[UpdatePage] | None = None,
    ) -> None:
        state = ledger.update_state(self.session, stream.media_type)
        self.session.commit()
        mark = self._mark(state, now)
        # the first page asked for ahead, unless the mark moved under it (another process)
        first = asked if asked_from == mark else None
        newest: datetime | None = None
        newest_ids: set[str] = set()
        seen: set[tuple[str, datetime]] = set()
        pages = self._cursor_pages(stream, mark, now, first) if stream.cursor else None
        for page in pages if pages is not None else self._dated_pages(stream, mark, now, first):
            reached = False
            fresh: list[UpdateRecord] = []
            for update in page.updates:
                if mark.applied(update):
                    reached = True
                    continue
                if (update.media_id, update.updated_time) in seen:
                    continue  # the windows overlap by a day
                seen.add((update.media_id, update.updated_time))
                fresh.append(update)
                if newest is None or update.updated_time > newest:
                    newest, newest_ids = update.updated_time, {update.media_id}
                elif update.updated_time == newest:
                    newest_ids.add(update.media_id)
            self._apply(stream, fresh)
            if reached:
                break
        # the pass finished: the mark moves to the newest update seen (with the ids at that
        # second), and at least to an hour before the pass: the feed is taken to be complete
        # that far back, so that a quiet stream does not walk ever more windows
        mark_time, mark_ids = mark.time, set() if mark.first else set(mark.ids)
        if newest is not None and (mark.first or newest > mark.time):
            mark_time, mark_ids = newest, newest_ids
        elif newest is not None and newest == mark.time:
            mark_ids |= newest_ids
        if now - SETTLED > mark_time:
            mark_time, mark_ids = now - SETTLED, set()
        state.mark_time, state.mark_ids = ledger.naive_utc(mark_time), sorted(mark_ids)
        self._outcome(stream, "ok", None)
        log.info(
            "updates.caught_up",
            stream=f"/v2/{stream.path}",
            new=len(seen),
            mark=state.mark_time.isoformat() if state.mark_time else None,
        )

    def _dated_pages(
        self, stream: UpdateStream, mark: Mark, now: datetime, first: Future[UpdatePage] | None
    ) -> Iterator[UpdatePage]:
        for start, end in windows(mark.time, now):
            number = 1
            while True:
                self.check()
                self.result.requests += 1
                if first is not None:  # the first window's first page
                    page, first = first.result(), None
                else:
                    page = self.client.updated_page(stream.path, start, end, number, DATED_PER_PAGE)
                yield page
                size = page.per_page or DATED_PER_PAGE
                seen = (number - 1) * size + len(page.updates)
                if len(page.updates) < size:
                    if page.total_count is not None and seen < page.total_count:
                        raise HistoryCutShort(
                            f"GET /v2/{stream.path} {start}..{end} page {number} has "
                            f"{len(page.updates)} updates, but total_count {page.total_count} "
                            "promises more"
                        )
                    break
                if page.total_count is not None and seen >= page.total_count:
                    break
                number += 1

    @staticmethod
    def _cursor_span(mark: Mark, now: datetime) -> tuple[datetime, datetime]:
        # "after the specified date": a second earlier, so that the mark's own second is in
        start = mark.time.replace(microsecond=0) - timedelta(seconds=1)
        return start, min(now + timedelta(minutes=1), LATEST_API_TIME)

    def _cursor_pages(
        self, stream: UpdateStream, mark: Mark, now: datetime, first: Future[UpdatePage] | None
    ) -> Iterator[UpdatePage]:
        start, end = self._cursor_span(mark, now)
        country = self.config.updates.country
        cursor: str | None = None
        asked: set[str] = set()
        while True:
            self.check()
            self.result.requests += 1
            if first is not None:  # the first page, cursor None
                page, first = first.result(), None
            else:
                page = self.client.editorial_updated_page(
                    stream.path, start, end, country, cursor, CURSOR_PER_PAGE
                )
            yield page
            cursor = page.next_cursor
            if not page.updates or cursor is None or cursor in asked:
                return
            asked.add(cursor)

    # --- acting on held assets -----------------------------------------------------------------

    def _apply(self, stream: UpdateStream, updates: list[UpdateRecord]) -> None:
        if not updates:
            return
        held = ledger.held_assets(self.session, stream.media_type, (u.media_id for u in updates))
        deleted: dict[str, datetime] = {}
        edited: dict[str, UpdateRecord] = {}
        for update in updates:  # newest first: an asset's newest update decides
            if update.media_id not in held or update.media_id in deleted:
                continue
            if update.deletion:
                if update.media_id not in edited:
                    deleted[update.media_id] = update.updated_time
            else:
                edited.setdefault(update.media_id, update)
        self.result.applied += len(deleted) + len(edited)
        if deleted:
            newly = ledger.mark_deleted(self.session, stream.media_type, deleted)
            self.result.deleted += len(newly)
            for media_id in newly:
                log.info("asset.deleted", media_type=stream.media_type, media_id=media_id)
        edited = {i: u for i, u in edited.items() if held[i] != "deleted"}
        if edited and self.config.sync.details:
            with_items = {i: u.item for i, u in edited.items() if u.item is not None}
            if with_items:  # the editorial stream's entries are the items themselves
                details = {
                    i: {k: v for k, v in item.items() if k not in ("updated_time", "updates")}
                    for i, item in with_items.items()
                }
                ledger.set_details(self.session, stream.media_type, list(details), details)
            rest = [(stream.media_type, i) for i in edited if i not in with_items]
            ledger.refresh_details(self.session, rest)
            self.result.refreshed += len(edited)
        self.session.commit()

    def _act_on_deletions(self) -> None:
        """``updates.on_deletion`` for every deleted asset's files in this storage that it has
        not acted on yet (a pass cut short is finished by the next)."""
        on_deletion = self.config.updates.on_deletion
        style = self.config.storage.xmp_sidecars
        while True:
            rows = ledger.files_of_deleted_assets(self.session, self.storage.identity, on_deletion)
            if not rows:
                return
            for row in rows:
                self.check()
                sidecar = xmp_key(row.key, style) if style != "off" else None
                if on_deletion == "quarantine":
                    target = ledger.QUARANTINE + row.key
                    self.storage.move(row.key, target)
                    if sidecar is not None:
                        self.storage.move(sidecar, ledger.QUARANTINE + sidecar)
                    ledger.file_moved(self.session, row, target)
                    log.info("file.quarantined", key=row.key, to=target)
                else:
                    self.storage.delete(row.key)
                    if sidecar is not None:
                        self.storage.delete(sidecar)
                    ledger.file_removed(self.session, row)
                    log.info("file.deleted", key=row.key)
                self.session.commit()

    def _outcome(self, stream: UpdateStream, outcome: str, error: str | None) -> None:
        state = ledger.update_state(self.session, stream.media_type)
        state.last_run_at = ledger.utcnow()
        state.last_outcome = outcome
        state.last_error = error
        if outcome == "ok":
            state.last_success_at = state.last_run_at
        self.session.commit()


class UpdatesRun(SyncRun):
    """serve's ``updates`` job: the /updated streams alone, the details they made stale,
    and the sidecars, under the storage's lease like a sync."""

    COMMAND = "updates"

    def _work(self, session: Session, client: ApiClient, storage: Storage, run) -> None:
        self._check_reachable(client)
        self._updates(session, client, storage, run)
        self._details(session, client)
        self._write_dirty(session, storage)
        self._check_reachable(client)
