"""``syncd sync``: page every enabled license stream to its watermark, then fetch everything
missing. The streams, the planner, the fetcher and storage do the work; this module runs them in
order and keeps the ledger."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from syncd import logs
from syncd.api.ahead import Ahead
from syncd.api.client import ApiClient, ApiError, Forbidden
from syncd.api.records import LicensePage, LicenseRecord
from syncd.api.retry import RetryPolicy
from syncd.config import Config, require_token
from syncd.db import connect, ledger, upgrade
from syncd.db.engine import HEAD_REVISION, DatabaseError, check_url, current_revision, sqlite_path
from syncd.db.lease import Lease
from syncd.details import fetch_details
from syncd.errors import ApiUnreachable, AuthError, StorageBusy, StorageError
from syncd.fetch import (
    Fetcher,
    FetchFailed,
    Interrupted,
    Need,
    RelicenseOrder,
    StoredObject,
    TransferConfig,
    lookahead_cap,
)
from syncd.plan import INVALID, REDOWNLOAD, RELICENSE, STORED, UNAVAILABLE, Action, plan
from syncd.progress import Meter
from syncd.relicense import (
    CREDITS_PER_ITEM,
    ENDPOINTS,
    Budget,
    CannotLicense,
    NoSubscription,
    Relicenser,
    request_for,
    settle_unknown,
)
from syncd.sidecar import SidecarBook
from syncd.storage import Storage, open_storage
from syncd.streams import (
    LICENSE_STREAMS,
    PER_PAGE,
    HistoryCutShort,
    LicenseStream,
    Watermark,
    newest,
    pages_until,
)
from syncd.summary import RunResult

log = structlog.get_logger("syncd.sync")

AssetSize = tuple[str, str, str]  # media type, media id, size
COMMIT_EVERY_S = 0.25  # the ledger commits outcomes in batches at most this old
CLOCK_MARGIN = timedelta(minutes=5)  # sync.since = "now" on an empty stream reaches back this far
QUEUE_BATCH = 2000  # licenses planned and fetched at a time (the queue is read in batches)


@dataclass
class Group:
    """The licenses of one asset and size handled in this run, with what the planner said."""

    need: Need | None
    actions: dict[str, Action]  # license id -> action
    records: dict[str, LicenseRecord]

    @property
    def fetching(self) -> Need:
        """What a group sent to be fetched fetches (only groups with a need are)."""
        if self.need is None:
            raise ValueError("this group fetches nothing")
        return self.need


class PageSource:
    """A stream's pages by number for the pager: the first as asked for ahead, if it was;
    with ``ahead``, the pages after each up to the last that ``total_count`` announces, a few
    ahead (those not taken are not sent, or are dropped)."""

    def __init__(
        self,
        client: ApiClient,
        stream: LicenseStream,
        team: bool,
        start: datetime | None,
        first: Future[LicensePage] | None = None,
        ahead: Ahead | None = None,
    ):
        self.client, self.stream, self.team, self.start = client, stream, team, start
        self.ahead = ahead
        self.asked: dict[int, Future[LicensePage]] = {} if first is None else {1: first}

    def fetch(self, number: int) -> LicensePage:
        asked = self.asked.pop(number, None)
        page = asked.result() if asked is not None else self._get(number)
        if self.ahead is not None and page.total_count is not None:
            size = page.per_page or PER_PAGE
            last = -(-page.total_count // size)
            for later in range(number + 1, min(last, number + self.ahead.workers) + 1):
                if later not in self.asked:
                    self.asked[later] = self.ahead.submit(self._get, later)
        return page

    def _get(self, number: int) -> LicensePage:
        return self.client.license_page(self.stream, number, PER_PAGE, self.team, start=self.start)

    def close(self) -> None:
        for asked in self.asked.values():
            asked.cancel()
        self.asked.clear()


class SyncRun:
    COMMAND = "sync"  # as the runs table and the log name it
    RUNS_UPDATES = True  # the /updated streams run after the fetching (updates.enabled)

    def __init__(
        self,
        config: Config,
        *,
        media: tuple[str, ...],
        dry_run: bool = False,
        progress: Meter | None = None,
        stop: threading.Event | None = None,
        drain: threading.Event | None = None,
        on_request: Callable[[int | None], None] | None = None,
        updates: bool = True,
    ):
        self.config = config
        self.media = media
        # the /updated streams after the fetching (with updates.enabled); serve's catch-up
        # leaves them to its own updates job
        self.run_updates = updates and self.RUNS_UPDATES and config.updates.enabled
        self.dry_run = dry_run
        self.progress = progress or Meter()
        # stop: cut every transfer now, discarding partial files; drain: start nothing new
        # (no page, no file) and let the files in flight finish (serve's grace period)
        self.stop = stop or threading.Event()
        self.drain = drain or threading.Event()
        self._on_request = on_request
        self.result = RunResult()
        self._seen: set[tuple[str, str]] = set()
        self._dry_new: list[LicenseRecord] = []
        self._outcomes = ledger.Outcomes()  # its storage is set once storage is open
        self._open_groups: Counter = Counter()  # asset -> its groups not yet settled
        self._fetch_total = 0  # files sent to be fetched so far, over the batches
        self._relicenser: Relicenser | None = None  # with sync.relicense: made at the start
        self._session: Session | None = None  # the main thread's, while the run goes
        # while the streams are paged: their requests sent ahead, and their first pages
        self._ahead: Ahead | None = None
        self._firsts: dict[str, tuple[datetime | None, Future[LicensePage]]] = {}

    # --- set-up: every check that can fail with exit 2 or 4 comes before any request ----------

    def prepare(self) -> tuple[ApiClient, Storage, Engine]:
        token = require_token(self.config)
        check_url(self.config.database.url)
        storage = open_storage(self.config.storage, self.config.sync.concurrency)
        if not self.dry_run:
            storage.check_writable()
        engine = self._engine()
        client = ApiClient(
            self.config.api.base_url,
            token,
            policy=RetryPolicy(max_retries=self.config.api.max_retries),
            timeout_s=self.config.api.timeout_s,
            # the workers' requests and the URLs asked for ahead of them (Fetcher.prefetch)
            pool_size=self.config.sync.concurrency + lookahead_cap(self.config.sync.concurrency),
            sleep=self._sleep,
            on_request=self._on_request,
        )
        return client, storage, engine

    def _engine(self) -> Engine:
        url = self.config.database.url
        if not self.dry_run:
            engine = connect(url)
            upgrade(engine)
            return engine
        # a dry run changes nothing, the schema included: a ledger that does not exist yet is
        # a throwaway empty one; one at an older revision must be upgraded first
        path = sqlite_path(url)
        found: Engine | None = connect(url, write=False) if path is None or path.exists() else None
        revision = current_revision(found) if found is not None else None
        if found is not None and revision == HEAD_REVISION:
            return found
        if found is not None:
            found.dispose()
        if revision is not None:
            raise DatabaseError(
                f"the database is at schema revision {revision}; run "
                "`syncd db upgrade` first (a dry run changes nothing)"
            )
        engine = connect("sqlite://")
        upgrade(engine)
        return engine

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Interrupted()

    # --- the run ------------------------------------------------------------------------------

    def execute(self) -> RunResult:
        started = time.monotonic()
        client, storage, engine = self.prepare()
        self.progress.where = logs.announce_config(
            self.config, f"{self.COMMAND} --dry-run" if self.dry_run else self.COMMAND
        )
        summary = self.result.summary
        self._outcomes.storage = storage.identity
        lease = None
        if not self.dry_run:
            lease = Lease(
                engine, storage.identity, what=storage.description, on_lost=self._lease_lost
            )
        try:
            with (
                nullcontext() if lease is None else lease,
                Session(engine, expire_on_commit=False) as session,
            ):
                self._session = session  # the main thread's (the budget reads it)
                run = None if lease is None else self._begin(session, storage, lease)
                if self.config.sync.relicense:
                    self._relicenser = Relicenser(
                        self.config,
                        client,
                        sessionmaker(engine, expire_on_commit=False),
                        None if run is None else run.id,
                        Budget(
                            self.config.sync.relicense_budget,
                            self.config.relicense.daily_budget,
                        ),
                    )
                self.progress.show(summary, 0)
                self.progress.start()
                try:
                    self._work(session, client, storage, run)
                except (AuthError, StorageError, ApiUnreachable) as exc:
                    self.result.fatal = exc
                except Interrupted:
                    self.result.interrupted = True
                finally:
                    session.rollback() if self.dry_run else session.commit()
                    summary.api_requests = client.requests_sent
                    summary.duration_s = round(time.monotonic() - started, 3)
                    if run is not None:
                        ledger.finish_run(
                            session,
                            run,
                            self.result.outcome,
                            self.result.exit_code,
                            summary.as_json(),
                        )
                        session.commit()
        finally:
            client.close()
            engine.dispose()
            self.progress.done(self.result.outcome)
        return self.result

    def _work(self, session: Session, client: ApiClient, storage: Storage, run) -> None:
        """A sync: every stream to its watermark, the details still missing, everything
        queued fetched, then (``updates.enabled``) the /updated streams, and last the sidecars
        still out of date."""
        self._catch_ups(session, client, run)
        self._check_draining()
        self._check_reachable(client)
        self._details(session, client)
        self._fetch_missing(session, client, storage)
        if self.run_updates and not self.dry_run:
            self._check_draining()
            self._check_reachable(client)
            self._updates(session, client, storage, run)
            self._details(session, client)  # those the updates edited
        if not self.dry_run:
            self._write_dirty(session, storage)
        self._check_reachable(client)

    def _updates(self, session: Session, client: ApiClient, storage: Storage, run) -> None:
        from syncd.updates import UpdatePass

        passed = UpdatePass(
            self.config, session, client, storage, self._check_draining, media=self.media
        ).run()
        for stream, error in passed.errors.items():
            self.result.stream_errors[stream] = error

    def _begin(self, session: Session, storage: Storage, lease: Lease):
        """Under the storage's lease: runs whose owner is gone are marked killed, what a killed
        run left behind here is cleared, and this run is recorded."""
        killed = ledger.abandon_unfinished_runs(session)
        if killed:
            log.info("runs.marked_killed", runs=killed)
        ledger.adopt_unowned(session, storage.identity)
        removed = storage.remove_partials()
        if removed:
            log.info("partials.removed", count=removed)
        run = ledger.start_run(session, self.COMMAND, storage.identity)
        session.commit()
        lease.attach_run(run.id)
        return run

    def _check_draining(self) -> None:
        if self.stop.is_set() or self.drain.is_set():
            raise Interrupted()

    def _check_reachable(self, client: ApiClient) -> None:
        """Once the API has stopped answering, the run ends with exit 5 naming it; what is
        queued stays queued for the next run."""
        if client.given_up:
            raise ApiUnreachable(
                f"the API at {client.base_url} could not be reached ({client.given_up}); check "
                "api.base_url, the network and any proxy; everything queued stays queued"
            )

    def _lease_lost(self) -> None:
        """Another process took this storage's lease (ours was not renewed in time): writing on
        would race it, so the run stops."""
        self.result.fatal = self.result.fatal or StorageBusy(
            "lost the lock on the storage to another syncd run (the database did not see this "
            "run's heartbeat in time); stopped"
        )
        self.stop.set()

    # --- paging ------------------------------------------------------------------------------

    def _catch_ups(self, session: Session, client: ApiClient, run) -> None:
        """Every stream to its watermark, in turn; the first page of each is asked for at once
        (a few at a time), so that the streams wait on the API together, not one by one."""
        self._check_draining()
        self._check_reachable(client)
        with Ahead(client, self.config.sync.concurrency) as ahead:
            self._ahead, self._firsts = ahead, self._first_pages(session, client, ahead)
            try:
                for media_type in self.media:
                    self._check_draining()
                    self._check_reachable(client)
                    self.progress.paging(media_type)
                    self._catch_up(session, client, LICENSE_STREAMS[media_type], run)
            finally:
                self._ahead, self._firsts = None, {}

    def _first_pages(self, session: Session, client: ApiClient, ahead: Ahead) -> dict:
        """The first page of every stream, asked for ahead: media type -> (its start_date, the
        page to come)."""
        team = self.config.sync.team_history
        firsts = {}
        for media_type in self.media:
            state = ledger.stream_state(session, media_type, team, create=False)
            start = self._start_of(ledger.watermark_of(state))
            stream = LICENSE_STREAMS[media_type]
            page = ahead.submit(client.license_page, stream, 1, PER_PAGE, team, start=start)
            firsts[media_type] = (start, page)
        session.rollback()  # it only read: no transaction across the network
        return firsts

    def _start_of(self, watermark: Watermark | None) -> datetime | None:
        """The ``start_date`` a catch-up asks its pages from: ``sync.since``'s moment on a
        stream with no watermark yet, else none."""
        since = self.config.sync.since if watermark is None else None
        moment = None if since is None or since.now else since.moment
        return None if moment is None else moment.replace(microsecond=0)

    def _catch_up(
        self,
        session: Session,
        client: ApiClient,
        stream: LicenseStream,
        run,
    ) -> None:
        team = self.config.sync.team_history
        state = ledger.stream_state(session, stream.media_type, team, create=not self.dry_run)
        if not self.dry_run:
            session.commit()  # no transaction (on SQLite: no write lock) across the network
        watermark = ledger.watermark_of(state)
        since = self.config.sync.since if watermark is None else None
        start, asked = self._firsts.get(stream.media_type, (None, None))
        # the first page asked for ahead, unless the watermark moved under it (another process)
        first = asked if start == self._start_of(watermark) else None
        ahead = self._ahead
        bound = log.bind(stream=stream.media_type)
        head: Watermark | None
        try:
            if since is not None and since.now:
                head = self._future_only(client, stream, team, first)
            elif since is not None and since.moment is not None:
                head = self._page(session, client, stream, None, since.moment, ahead, first)
            else:
                head = self._page(session, client, stream, watermark, None, ahead, first)
        except Forbidden as exc:
            self.result.refused[stream.media_type] = str(exc)
            self._stream_done(session, state, run, "refused", str(exc))
            bound.error("stream.refused", error=str(exc))
            return
        except (ApiError, HistoryCutShort) as exc:
            self.result.stream_errors[stream.media_type] = str(exc)
            self._stream_done(session, state, run, "failed", str(exc))
            bound.error("stream.failed", error=str(exc))
            return
        if not self.dry_run and head is not None:
            state.watermark_license_id = head.license_id
            state.watermark_time = ledger.naive_utc(head.download_time)
        self._stream_done(session, state, run, "ok", None)
        bound.info("stream.caught_up", watermark=head.license_id if head else None)

    def _page(
        self,
        session: Session,
        client: ApiClient,
        stream: LicenseStream,
        watermark: Watermark | None,
        since: datetime | None,
        ahead: Ahead | None = None,
        first: Future[LicensePage] | None = None,
    ) -> Watermark | None:
        """Pages the stream newest-first to its watermark, recording what is new; returns the
        watermark the catch-up leaves. Licenses strictly older than the watermark (on the
        last page) are not recorded: they were the earlier catch-ups' to record, or were left
        to ``backfill`` by ``sync.since``. With ``since`` (a first catch-up under
        ``sync.since``) the API is asked for nothing older, a license older still (an API that
        ignores ``start_date``) ends the paging, and when nothing is that new the watermark is
        that moment itself: the next catch-up stops there too."""
        team = self.config.sync.team_history
        start = None if since is None else since.replace(microsecond=0)
        stop_at = watermark if start is None else Watermark("", start)
        head = watermark
        # a whole history's length is known from its first page: the next pages go ahead
        with closing(
            PageSource(client, stream, team, start, first, None if stop_at else ahead)
        ) as pages:
            for number, page in pages_until(pages.fetch, stop_at):
                self._check_draining()
                fresh = self._first_sightings(page.licenses)
                if stop_at is not None:
                    fresh = [
                        lic
                        for lic in fresh
                        if lic.download_time >= stop_at.download_time
                        and lic.license_id != stop_at.license_id
                    ]
                head = newest(fresh, head)
                new = self._record(session, fresh)
                if not self.dry_run:
                    session.commit()
                log.info(
                    "page.fetched",
                    stream=stream.media_type,
                    page=number,
                    licenses=len(page.licenses),
                    new=len(new),
                )
                self.progress.show(self.result.summary, 0)
        return head if head is not None or start is None else Watermark("", start)

    def _future_only(
        self,
        client: ApiClient,
        stream: LicenseStream,
        team: bool,
        first: Future[LicensePage] | None = None,
    ) -> Watermark:
        """``sync.since = "now"``: the first catch-up reads one page and records nothing; its
        newest license (or, on an empty history, this moment) is where the next one stops."""
        page = PageSource(client, stream, team, None, first).fetch(1)
        self._first_sightings(page.licenses)
        left = page.total_count if page.total_count is not None else len(page.licenses)
        log.info("stream.future_only", stream=stream.media_type, left_to_backfill=left)
        head = newest(page.licenses, None)
        # an empty history: licenses from this moment on, less a margin for a clock that is
        # ahead of the API's
        moment = datetime.now(UTC).replace(microsecond=0) - CLOCK_MARGIN
        return head or Watermark("", moment)

    def _first_sightings(self, licenses: list[LicenseRecord]) -> list[LicenseRecord]:
        """Licenses not yet seen in this run (page drift shows some twice)."""
        fresh = []
        for lic in licenses:
            identity = (lic.media_type, lic.license_id)
            if identity not in self._seen:
                self._seen.add(identity)
                fresh.append(lic)
        if fresh:
            self.result.count(fresh[0].media_type, "licenses_seen", len(fresh))
        return fresh

    def _record(self, session: Session, fresh: list[LicenseRecord]) -> list[LicenseRecord]:
        if self.dry_run:
            known = (
                ledger.known_license_ids(
                    session, fresh[0].media_type, [lic.license_id for lic in fresh]
                )
                if fresh
                else set()
            )
            new = [lic for lic in fresh if lic.license_id not in known]
            self._dry_new.extend(new)
        else:
            new = ledger.record_licenses(session, fresh)
        self.result.summary.new_licenses += len(new)
        return new

    def _stream_done(self, session, state, run, outcome: str, error: str | None) -> None:
        if self.dry_run:
            return
        state.last_run_id = run.id
        state.last_run_at = ledger.utcnow()
        if outcome == "ok":
            state.last_success_at = state.last_run_at
        state.last_outcome = outcome
        state.last_error = logs.redact(error) if error else None
        session.commit()

    # --- fetching ----------------------------------------------------------------------------

    def _queue_batches(self, session: Session) -> Iterator[list[LicenseRecord]]:
        """The queue, read from the database QUEUE_BATCH licenses at a time (a history of
        any length is never in memory at once); a dry run's new licenses join the first."""
        after = None
        extra = list(self._dry_new)
        while True:
            rows = ledger.queued_licenses(
                session,
                self.media,
                self._outcomes.storage,
                self.config.sync.relicense,
                after=after,
                limit=QUEUE_BATCH,
            )
            batch = [ledger.as_record(row) for row in rows] + extra
            extra = []
            if batch:
                yield batch
            if len(rows) < QUEUE_BATCH:
                return
            after = ledger.queue_key(rows[-1])

    def _groups(self, licenses: list[LicenseRecord], book: SidecarBook) -> dict[AssetSize, Group]:
        by_asset_size: dict[AssetSize, list[LicenseRecord]] = defaultdict(list)
        for lic in licenses:
            by_asset_size[(lic.media_type, lic.media_id, lic.size)].append(lic)
        groups = {}
        for (media_type, media_id, size), members in by_asset_size.items():
            stream = LICENSE_STREAMS[media_type]
            stored = book.stored_file(media_type, media_id, size) is not None
            deleted = book.deleted(media_type, media_id)
            actions = {
                lic.license_id: plan(lic, stream, stored, self.config.sync.relicense, deleted)
                for lic in members
            }
            candidates = sorted(
                (lic for lic in members if actions[lic.license_id].kind == REDOWNLOAD),
                key=lambda lic: (lic.is_downloadable is not True, -lic.download_time.timestamp()),
            )
            need = (
                Need(
                    stream,
                    media_id,
                    size,
                    candidates[0].format,
                    tuple(lic.license_id for lic in candidates),
                )
                if candidates
                else self._relicense_need(book, stream, media_id, size, members, actions)
            )
            groups[(media_type, media_id, size)] = Group(
                need, actions, {lic.license_id: lic for lic in members}
            )
        return groups

    def _relicense_need(
        self,
        book: SidecarBook,
        stream: LicenseStream,
        media_id: str,
        size: str,
        members: list[LicenseRecord],
        actions: dict[str, Action],
    ) -> Need | None:
        """A need that nothing can redownload and relicensing may fetch: a subscription chosen,
        the request made, the credits reserved. Otherwise its licenses' actions say why not
        (unavailable, queued again by a later run with relicensing on)."""
        wanting = sorted(
            (lic for lic in members if actions[lic.license_id].kind == RELICENSE),
            key=lambda lic: -lic.download_time.timestamp(),
        )
        relicenser = self._relicenser
        if not wanting or relicenser is None:
            return None

        def unavailable(reason: str) -> None:
            for lic in wanting:
                actions[lic.license_id] = Action(UNAVAILABLE, reason, waits_for=RELICENSE)

        credits = CREDITS_PER_ITEM
        assert self._session is not None
        refused = relicenser.budget.reserve(self._session, credits)  # before any request
        if refused is not None:
            unavailable(refused)
            return None
        try:
            subscription = relicenser.choose(stream.media_type, size)
            path, query, body = request_for(
                self.config,
                stream,
                media_id,
                size,
                subscription,
                book.details(stream.media_type, media_id),
            )
        except (NoSubscription, CannotLicense) as exc:
            relicenser.budget.release(credits)
            unavailable(str(exc))
            return None
        except ApiError as exc:
            relicenser.budget.release(credits)
            unavailable(f"the subscriptions could not be read: {exc}")
            return None
        # a subscription known to charge more per item has the rest set aside too
        extra = relicenser.expected_charge(self._session, subscription.id) - credits
        if extra > 0:
            refused = relicenser.budget.reserve(self._session, extra)
            if refused is not None:
                relicenser.budget.release(credits)
                unavailable(refused)
                return None
            credits += extra
        order = RelicenseOrder(
            path, query, body, ENDPOINTS[stream.media_type][2], subscription.id, credits
        )
        return Need(
            stream,
            media_id,
            size,
            wanting[0].format,
            tuple(lic.license_id for lic in wanting),
            relicense=order,
        )

    def _details(self, session: Session, client: ApiClient) -> None:
        """With ``sync.details``: the details of the assets that have none yet (CONTRACT 5);
        a dry run asks for none."""
        if self.dry_run or not self.config.sync.details:
            return
        fetch_details(
            session,
            client,
            self.media,
            self.config.updates.country,
            self._check_draining,
            workers=self.config.sync.concurrency,
        )

    def _fetch_missing(self, session: Session, client: ApiClient, storage: Storage) -> None:
        """Everything queued, batch by batch (each writes the sidecars of its assets); with
        relicensing on, what earlier runs left unknown is settled first."""
        self._fetch_total = 0
        if self._relicenser is not None and not self.dry_run:
            confirmed, failed = settle_unknown(
                session, client, LICENSE_STREAMS, ledger.record_licenses
            )
            if confirmed or failed:
                log.info("relicense.intents_settled", licensed=confirmed, not_licensed=failed)
        for queue in self._queue_batches(session):
            self._check_draining()
            self._fetch_batch(session, client, storage, queue)

    def _write_dirty(self, session: Session, storage: Storage) -> None:
        """The sidecars still out of date: of assets with nothing queued whose licenses,
        files or details changed, or whose write failed."""
        after = None
        while True:
            self._check_draining()
            chunk = ledger.dirty_assets(
                session, storage.identity, after=after, limit=QUEUE_BATCH, xmp=self._xmp
            )
            if not chunk:
                return
            assets = set(chunk)
            book = SidecarBook(session, storage, assets, xmp=self._xmp)
            try:
                for asset in sorted(assets):
                    book.write(*asset)
            finally:
                book.close()
                self._commit(session, book, wait=True)
            if len(chunk) < QUEUE_BATCH:
                return
            after = chunk[-1]

    def _fetch_batch(
        self, session: Session, client: ApiClient, storage: Storage, queue: list[LicenseRecord]
    ) -> None:
        book = SidecarBook(
            session, storage, {(lic.media_type, lic.media_id) for lic in queue}, xmp=self._xmp
        )
        try:
            groups = self._groups(queue, book)
            self._open_groups = Counter(
                (media_type, media_id) for media_type, media_id, _ in groups
            )
            for group in groups.values():
                if group.need is None:
                    self._settle(session, book, group, stored=None, failures={})
            self._commit(session, book)
            pending = [group for group in groups.values() if group.need is not None]
            if self.dry_run:
                for group in pending:
                    self._plan_fetch(group)
                return
            self._run_fetches(session, client, book, pending)
        finally:
            in_flight = sys.exc_info()[1]
            book.close()
            try:
                self._commit(session, book, wait=True)
            except StorageError:
                if in_flight is None:  # else the error already on its way wins
                    raise

    def _run_fetches(self, session, client, book: SidecarBook, pending: list[Group]) -> None:
        self._fetch_total += len(pending)
        self.progress.fetching(self._fetch_total)
        fetcher = Fetcher(
            client,
            book.storage,
            key_template=self.config.storage.key_template,
            allow_http=self.config.api.allow_http,
            transfer=TransferConfig(
                timeout_s=self.config.api.timeout_s, bwlimit=self.config.sync.bwlimit
            ),
            pool_size=self.config.sync.concurrency,
            stop=self.stop,
            on_bytes=self.progress.add_bytes,
            relicenser=self._relicenser,
        )
        try:
            with ThreadPoolExecutor(
                max_workers=self.config.sync.concurrency, thread_name_prefix="fetch"
            ) as pool:
                try:
                    fatal = self._drive(pool, fetcher, session, book, list(reversed(pending)))
                except BaseException:
                    self.stop.set()  # workers discard their partial files and return
                    raise
        finally:
            fetcher.close()  # after the pool has let every worker go
        if fatal is not None:
            raise fatal
        self._check_draining()

    def _drive(self, pool, fetcher, session, book, todo: list[Group]) -> Exception | None:
        """Keeps the pool fed (a bounded window, not the whole queue) and settles each group as
        its fetch ends. Returns the error that must end the run, if any."""
        window = self.config.sync.concurrency * 2
        running: dict[Future, Group] = {}
        fatal: Exception | None = None
        last_commit = time.monotonic()
        while todo or running:
            while todo and len(running) < window and not self._draining:
                group = todo.pop()
                # its URL is asked for now: a group waits in the pool's queue while the
                # transfers before it run, and starts without waiting on the API
                fetcher.prefetch(group.fetching)
                running[pool.submit(fetcher.fetch, group.need)] = group
            if not self._draining:  # and those of the files after them, as far as it takes
                for group in todo[: -fetcher.lookahead_span - 1 : -1]:
                    if not fetcher.prefetch(group.fetching):
                        break
            if not running:
                break
            if self._draining:  # files not begun stay queued; those in flight go on
                for future in [f for f in running if f.cancel()]:
                    del running[future]
                if not running:
                    break
            done, _ = wait(running, timeout=COMMIT_EVERY_S, return_when=FIRST_COMPLETED)
            for future in done:
                group = running.pop(future)
                try:
                    stored, failures = future.result()
                except (AuthError, StorageError, Interrupted) as exc:
                    fatal = fatal or exc
                    self.stop.set()
                    continue
                except Exception as exc:  # a bug must fail one file, not the run
                    log.exception("fetch.crashed", media_id=group.fetching.media_id)
                    stored, failures = (
                        None,
                        {
                            lid: FetchFailed(f"internal error: {exc!r}")
                            for lid in group.fetching.license_ids
                        },
                    )
                self._settle(session, book, group, stored, failures)
            if time.monotonic() - last_commit > COMMIT_EVERY_S:
                self._commit(session, book)
                last_commit = time.monotonic()
            self.progress.show(self.result.summary, len(todo) + len(running))
        return fatal

    @property
    def _xmp(self) -> str:
        return self.config.storage.xmp_sidecars

    @property
    def _draining(self) -> bool:
        return self.stop.is_set() or self.drain.is_set()

    def _commit(self, session: Session, book: SidecarBook, wait: bool = False) -> None:
        """Writes the outcomes gathered since the last commit, and the sidecars now stored."""
        if self.dry_run:
            return
        written, error = book.written(wait)
        for media_type, media_id, key, kind, digest in written:
            self._outcomes.sidecar_written(media_type, media_id, digest, key, kind)
        book.storage.sync()
        self._outcomes.write(session)
        session.commit()
        if error is not None:
            raise error

    def _plan_line(self, what: str, lic: LicenseRecord, reason: str | None = None) -> None:
        line = f"{what} {lic.media_type}/{lic.media_id} size {lic.size} (license {lic.license_id})"
        self.result.planned.append(f"{line}: {reason}" if reason else line)

    def _plan_fetch(self, group: Group) -> None:
        """A dry run's account of a group it would fetch: one license planned, the rest as a
        real run would count them once that file is stored."""
        summary = self.result.summary
        fetched = group.fetching.license_ids[0]
        summary.planned += 1
        order = group.fetching.relicense
        if order is not None:
            summary.credits_planned += order.credits
            self._plan_line(
                "would relicense",
                group.records[fetched],
                f"subscription {order.subscription_id}, {order.credits} credit(s)",
            )
        else:
            self._plan_line("would redownload", group.records[fetched])
        for license_id, action in group.actions.items():
            lic = group.records[license_id]
            if license_id == fetched:
                continue
            if action.kind == INVALID:
                summary.failed += 1
                self._plan_line("would fail", lic, action.reason)
            elif action.kind == UNAVAILABLE:
                summary.unavailable += 1
                self._plan_line("unavailable", lic, action.reason)
            else:
                summary.already_present += 1
                self._plan_line("already present once fetched", lic)

    def _settle(
        self,
        session: Session,
        book: SidecarBook,
        group: Group,
        stored: StoredObject | None,
        failures: dict[str, FetchFailed],
    ) -> None:
        """Records the outcome of each license of a group and counts it; once every group of
        the asset has settled, its sidecar is written."""
        first = next(iter(group.records.values()))
        existing = (
            None if stored else book.stored_file(first.media_type, first.media_id, first.size)
        )
        if stored is not None:
            book.add_file(
                self._outcomes.file(
                    first.media_type,
                    first.media_id,
                    first.size,
                    stored.key,
                    stored.size_bytes,
                    stored.sha256,
                )
            )
            if stored.credits:
                self.result.count(first.media_type, "relicensed")
                self.result.count(first.media_type, "credits_spent", stored.credits)
            if stored.new_license is not None and not self.dry_run:
                # the new license, recorded like any other, holds the file it brought and
                # joins the sidecar written below
                ledger.record_licenses(session, [stored.new_license])
                book.add_license(stored.new_license)
                self._set(
                    first.media_type, stored.new_license.license_id, ledger.STORED, None, stored.key
                )
            else:
                self.result.count(first.media_type, "downloaded")
            self.result.count(first.media_type, "bytes_downloaded", stored.size_bytes)
        for license_id, action in group.actions.items():
            bound = log.bind(stream=first.media_type, license_id=license_id)
            if stored is not None and license_id == stored.license_id:
                self._set(first.media_type, license_id, ledger.STORED, None, stored.key)
            elif action.kind == INVALID:
                self.result.count(first.media_type, "failed")
                bound.error("license.failed", reason=action.reason)
                if self.dry_run:
                    self._plan_line("would fail", group.records[license_id], action.reason)
                self._set(first.media_type, license_id, ledger.FAILED, action.reason)
            elif stored is not None or (action.kind == STORED and existing is not None):
                self.result.count(first.media_type, "already_present")
                if self.dry_run:
                    self._plan_line("already present", group.records[license_id])
                held = stored if stored is not None else existing
                assert held is not None  # one of the two, by the condition above
                self._set(first.media_type, license_id, ledger.STORED, None, held.key)
            elif action.kind == UNAVAILABLE:
                self.result.count(first.media_type, "unavailable")
                bound.info("license.unavailable", reason=action.reason)
                if self.dry_run:
                    self._plan_line("unavailable", group.records[license_id], action.reason)
                self._set(
                    first.media_type,
                    license_id,
                    ledger.UNAVAILABLE,
                    action.reason,
                    waits_for=action.waits_for,
                )
            else:
                failure = failures.get(license_id) or FetchFailed("not tried")
                status = ledger.UNAVAILABLE if failure.unavailable else ledger.FAILED
                if failure.unavailable:
                    self.result.count(first.media_type, "unavailable")
                else:
                    self.result.count(first.media_type, "failed")
                bound.warning("license." + status, reason=failure.reason)
                self._set(
                    first.media_type,
                    license_id,
                    status,
                    failure.reason,
                    waits_for=failure.waits_for,
                )
        asset = (first.media_type, first.media_id)
        self._open_groups[asset] -= 1
        if self._open_groups[asset] == 0 and not self.dry_run:
            book.write(*asset)

    def _set(self, media_type, license_id, status, reason, key=None, waits_for=None) -> None:
        if not self.dry_run:
            self._outcomes.license(media_type, license_id, status, reason, key, waits_for)
