"""How bytes move: a fresh download URL for a license, streamed straight into storage while
hashing, in memory that does not grow with the file."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import HTTPException
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import requests
import structlog
from urllib3.exceptions import HTTPError as Urllib3Error

from syncd.api.client import ApiClient, ApiError, Forbidden, NotFound
from syncd.api.http import make_session, proxies_for
from syncd.api.records import LicenseRecord, MalformedResponse
from syncd.api.retry import RetryPolicy, is_retriable
from syncd.bwlimit import RateLimit
from syncd.config import check_url_allowed
from syncd.db.ledger import RELICENSE
from syncd.errors import AuthError
from syncd.storage.base import ObjectWriter, Storage
from syncd.storage.keys import UnsafeValue, check_key, extension_of, render
from syncd.streams import LicenseStream

if TYPE_CHECKING:
    from syncd.relicense import Licensed, Relicenser

from syncd.transfer import (
    BrokenTransfer,
    DirectSink,
    InlineSink,
    Interrupted,
    ThreadSink,
    Watchdog,
    body_reader,
    content_length,
    is_network_error,
)

__all__ = ["FetchFailed", "Fetcher", "Interrupted", "Need", "StoredObject", "TransferConfig"]

log = structlog.get_logger("syncd.fetch")

URL_GONE = frozenset({403, 404, 410})
MAX_REDIRECTS = 5
LOOKAHEAD_PER_SLOT = 2  # redownload requests sent ahead at a time, at most, per transfer slot
EWMA = 0.2  # weight of the newest measurement in the running means of the look-ahead


def lookahead_cap(concurrency: int) -> int:
    """The most redownload requests the look-ahead has in flight at once (also what the API
    client's connection pool must hold beside the workers'): enough for an API answer up to
    LOOKAHEAD_PER_SLOT times as slow as a transfer."""
    return max(2, LOOKAHEAD_PER_SLOT * concurrency)


@dataclass(frozen=True)
class TransferConfig:
    chunk_size: int = 1 << 20
    bwlimit: int | None = None  # bytes per second over all transfers (sync.bwlimit)
    attempts: int = 4  # tries of one URL when the transfer breaks
    timeout_s: float = 60.0
    backoff: RetryPolicy = field(default_factory=lambda: RetryPolicy(base_s=0.5, cap_s=10.0))


@dataclass(frozen=True)
class RelicenseOrder:
    """A licensing request for a need that nothing can redownload: made in the main thread
    (subscription chosen, budget reserved), sent by a worker through its intent."""

    path: str  # under /v2/
    query: dict
    body: dict
    id_key: str  # the id key of the answer's items
    subscription_id: str
    credits: int = 1


@dataclass(frozen=True)
class Need:
    """One missing file: an asset and size, and the licenses that could fetch it, best first;
    or (``relicense``) the license it would be relicensed for."""

    stream: LicenseStream
    media_id: str
    size: str
    format: str | None
    license_ids: tuple[str, ...]
    relicense: RelicenseOrder | None = None


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str
    license_id: str
    credits: int = 0  # > 0: fetched through a new license, at that cost
    new_license: LicenseRecord | None = None  # that license, as the history shows it


class FetchFailed(Exception):
    """The license's file could not be fetched. ``unavailable``: the API says it never will be
    by redownload (as opposed to an error worth trying again); ``waits_for``: the switch under
    which a later run queues it again (a relicensing over budget)."""

    def __init__(self, reason: str, unavailable: bool = False, waits_for: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.unavailable = unavailable
        self.waits_for = waits_for


class _UrlGone(Exception):
    pass


class Fetcher:
    def __init__(
        self,
        client: ApiClient,
        storage: Storage,
        *,
        key_template: str,
        allow_http: bool,
        transfer: TransferConfig,
        pool_size: int,
        stop: threading.Event | None = None,
        on_bytes: Callable[[int], None] | None = None,
        relicenser: Any = None,
    ):
        self.client = client
        self.relicenser = relicenser  # syncd.relicense.Relicenser, with relicensing on
        self._on_bytes = on_bytes or (lambda count: None)
        self.storage = storage
        self.key_template = key_template
        self.allow_http = allow_http
        self.transfer = transfer
        self.stop = stop or threading.Event()
        self._session = make_session(pool_size)
        self._slots = max(1, pool_size)  # transfers at a time
        self._ahead_cap = lookahead_cap(self._slots)
        self._lookahead = ThreadPoolExecutor(
            max_workers=self._ahead_cap, thread_name_prefix="url-ahead"
        )
        # asked for ahead and not yet taken by a worker (pending: not sent yet; a worker that
        # gets to it first cancels it and asks itself)
        self._prefetched_urls: dict[tuple[str, str, str], Future[str]] = {}
        self._prefetch_lock = threading.Condition()
        self._ahead_sending = 0  # look-ahead requests in flight
        self._ahead_limit = self._slots  # at most this many in flight (less after a 429)
        self._api_s: float | None = None  # running mean of a redownload answer's time
        self._transfer_s: float | None = None  # running mean of a download's time
        self._rate_limited_seen = 0.0  # the client's rate_limited_until last acted on
        self._watchdog = Watchdog(transfer.timeout_s, self.stop)
        self._rate = RateLimit(transfer.bwlimit) if transfer.bwlimit else None

    def close(self) -> None:
        with self._prefetch_lock:
            for future in self._prefetched_urls.values():
                future.cancel()  # those not sent yet
            self._prefetched_urls.clear()
            self._prefetch_lock.notify_all()
        self._lookahead.shutdown(wait=True, cancel_futures=True)
        self._watchdog.close()
        self._session.close()

    # --- latency hiding: the URLs of the next files are asked for while these transfer ----

    def prefetch(self, need: Need) -> bool:
        """Asks for the redownload URL of ``need``'s first license ahead of its transfer, in
        the background (a URL is valid for 8 hours), so that the transfer starts without
        waiting on the API. Needs are offered in the order they will be fetched; returns
        False once the look-ahead holds as many as it should (offer more later).

        Bounded and sized from what it measures: as many requests in flight as keep up with
        the transfers (the slots times an API answer's time over a download's, plus one; at
        most ``lookahead_cap``), and no more URLs waiting for a worker than that many plus
        one per slot. Each request has the client's retry policy; after a 429 (to any
        request of the client) nothing more is sent ahead until the wait it asked for has
        passed, and the requests in flight are halved, growing back by one per answer."""
        if need.relicense is not None or not need.license_ids or self.stop.is_set():
            return True
        ident = (need.stream.media_type, need.license_ids[0], need.size)
        with self._prefetch_lock:
            if ident in self._prefetched_urls:
                return True
            if len(self._prefetched_urls) >= self._ahead_target() + self._slots:
                return False
            future: Future[str] = Future()
            self._prefetched_urls[ident] = future
        self._lookahead.submit(self._ask_ahead, future, need)
        return True

    @property
    def lookahead_span(self) -> int:
        """How far down the queue prefetch may be offered needs: the most it holds."""
        return self._ahead_cap + self._slots

    def _ahead_target(self) -> int:
        """Requests in flight that keep up with the transfers (under the lock)."""
        if self._api_s is None or self._transfer_s is None:
            return min(self._ahead_cap, self._slots)
        wanted = math.ceil(self._slots * self._api_s / max(self._transfer_s, 1e-3)) + 1
        return max(1, min(self._ahead_cap, wanted))

    def _ask_ahead(self, future: Future[str], need: Need) -> None:
        """One look-ahead request, once the look-ahead may send it (see prefetch)."""
        client = self.client
        with self._prefetch_lock:
            while True:
                if future.cancelled():
                    return  # a worker got to this need first and asks itself
                if self.stop.is_set():
                    future.cancel()
                    return
                if client.rate_limited_until > self._rate_limited_seen:  # a 429 since
                    self._rate_limited_seen = client.rate_limited_until
                    self._ahead_limit = max(1, self._ahead_limit // 2)
                wait_s = client.rate_limited_until - time.monotonic()
                limit = min(self._ahead_limit, self._ahead_target())
                if wait_s <= 0 and self._ahead_sending < limit:
                    break
                # woken when a request ends or a URL is taken; the timeout for a stopping run
                self._prefetch_lock.wait(min(wait_s, 0.5) if wait_s > 0 else 0.5)
            if not future.set_running_or_notify_cancel():
                return
            self._ahead_sending += 1
        started = time.monotonic()
        answered = False
        try:
            future.set_result(client.redownload(need.stream, need.license_ids[0], need.size))
            answered = True
        except BaseException as exc:  # the worker that takes the URL meets it
            future.set_exception(exc)
        finally:
            with self._prefetch_lock:
                self._ahead_sending -= 1
                if answered:
                    self._api_s = _mean(self._api_s, time.monotonic() - started)
                    self._ahead_limit = min(self._ahead_cap, self._ahead_limit + 1)
                self._prefetch_lock.notify_all()

    def _prefetched(self, need: Need, license_id: str) -> Future[str] | None:
        """The request for this license's URL sent ahead of time, if it has been sent (one
        still waiting is withdrawn: the worker asks itself)."""
        with self._prefetch_lock:
            future = self._prefetched_urls.pop(
                (need.stream.media_type, license_id, need.size), None
            )
            self._prefetch_lock.notify_all()
        if future is None or future.cancel():
            return None
        return future

    def _transferred(self, seconds: float) -> None:
        with self._prefetch_lock:
            self._transfer_s = _mean(self._transfer_s, seconds)
            self._prefetch_lock.notify_all()

    def fetch(self, need: Need) -> tuple[StoredObject | None, dict[str, FetchFailed]]:
        """Tries the need's licenses in turn until one stores the file. Returns the stored
        object (or None) and the failure of each license tried before it."""
        failures: dict[str, FetchFailed] = {}
        if need.relicense is not None:
            license_id = need.license_ids[0]
            if self.stop.is_set():
                raise Interrupted()
            try:
                return self._fetch_relicensed(need, license_id, need.relicense), failures
            except FetchFailed as exc:
                log.warning(
                    "license.relicense_failed",
                    stream=need.stream.media_type,
                    license_id=license_id,
                    reason=exc.reason,
                )
                return None, {lid: exc for lid in need.license_ids}
        for license_id in need.license_ids:
            if self.stop.is_set():  # the run is ending: send nothing more
                raise Interrupted()
            try:
                return self._fetch_license(need, license_id), failures
            except FetchFailed as exc:
                failures[license_id] = exc
                log.warning(
                    "license.fetch_failed",
                    stream=need.stream.media_type,
                    license_id=license_id,
                    reason=exc.reason,
                )
        return None, failures

    def _fetch_license(self, need: Need, license_id: str) -> StoredObject:
        ahead = self._prefetched(need, license_id)
        for fresh_url_asked in (False, True):
            url = self._redownload_url(need, license_id, None if fresh_url_asked else ahead)
            key = self._key_for(need, license_id, url)
            started = time.monotonic()
            try:
                stored = self._download(url, key, need.stream.media_type, license_id)
            except _UrlGone as exc:
                if fresh_url_asked:
                    raise FetchFailed(f"download URL refused twice ({exc})") from None
                log.info(
                    "url.refreshed",
                    stream=need.stream.media_type,
                    license_id=license_id,
                    status=str(exc),
                )
            else:
                self._transferred(time.monotonic() - started)
                return stored
        raise AssertionError("unreachable")

    def _fetch_relicensed(self, need: Need, license_id: str, order: RelicenseOrder) -> StoredObject:
        """Licenses the need anew (at most once: through its intent) and stores the file from
        the fresh URL at once."""
        relicenser = self.relicenser
        if relicenser is None:
            raise FetchFailed("relicensing is off")
        stream, media_id, size = need.stream, need.media_id, need.size
        # while no answer has told what an item of this subscription costs, its requests go
        # one at a time: the first answer's allotment_charge sets what the next reserve
        gate = relicenser.charge_gate(order.subscription_id)
        if gate is None:
            licensed, asked_at = self._license(need, license_id, order, relicenser)
        else:
            with gate:
                licensed, asked_at = self._license(need, license_id, order, relicenser)
        log.info(
            "license.relicensed",
            stream=stream.media_type,
            media_id=media_id,
            size=size,
            subscription_id=order.subscription_id,
            credits=licensed.credits,
        )
        try:
            check_url_allowed(licensed.url, self.allow_http)
        except ValueError as exc:
            raise FetchFailed(f"download URL of the new license refused: {exc}") from None
        key = self._key_for(need, license_id, licensed.url)
        try:
            stored = self._download(licensed.url, key, stream.media_type, license_id)
        except _UrlGone as exc:
            raise FetchFailed(
                f"the new license's download URL was refused ({exc}); the next run redownloads "
                "it through the new license"
            ) from None
        return StoredObject(
            stored.key,
            stored.size_bytes,
            stored.sha256,
            license_id,
            credits=licensed.credits,
            new_license=self._new_license(need, asked_at, licensed.new_license_id),
        )

    def _license(
        self, need: Need, license_id: str, order: RelicenseOrder, relicenser: Relicenser
    ) -> tuple[Licensed, datetime]:
        """The licensing request through the need's intent: what it licensed, and when it
        was asked for."""
        from syncd import relicense as rl

        stream, media_id, size = need.stream, need.media_id, need.size
        credits = order.credits
        # an answer since the planning said this subscription charges more per item
        extra = relicenser.known_charge(order.subscription_id) - credits
        if extra > 0:
            with relicenser.sessions() as session:
                refused = relicenser.budget.reserve(session, extra)
            if refused is not None:
                relicenser.budget.release(credits)
                raise FetchFailed(refused, unavailable=True, waits_for=RELICENSE)
            credits += extra
        if not relicenser.claim(stream, media_id, size, license_id, order.subscription_id, credits):
            relicenser.budget.release(credits)
            raise FetchFailed(
                "another syncd run has relicensed or is relicensing this asset and size",
                unavailable=True,
            )
        relicenser.budget.claimed(credits)
        asked_at = datetime.now(UTC)
        try:
            document = self.client.request(
                "POST", "/v2/" + order.path, params=order.query, json_body=order.body, retries=0
            )
        except AuthError:
            relicenser.settle(stream, media_id, size, rl.FAILED, error="401")
            relicenser.budget.release(credits, claimed=True)
            raise
        except ApiError as exc:
            if exc.status is None or exc.status >= 500:
                relicenser.settle(stream, media_id, size, rl.UNKNOWN, error=str(exc)[:500])
                raise FetchFailed(
                    f"relicensing got no answer ({exc}): whether it licensed is unknown; the "
                    "license history settles it before anything is sent again"
                ) from None
            relicenser.settle(stream, media_id, size, rl.FAILED, error=str(exc)[:500])
            relicenser.budget.release(credits, claimed=True)
            raise FetchFailed(f"relicensing refused: {exc}") from None
        try:
            licensed = rl.parse_result(document, order.id_key, media_id)
        except rl.ItemRefused as exc:
            relicenser.settle(stream, media_id, size, rl.FAILED, error=str(exc))
            relicenser.budget.release(credits, claimed=True)
            raise FetchFailed(f"relicensing refused: {exc}") from None
        except MalformedResponse as exc:
            relicenser.settle(stream, media_id, size, rl.UNKNOWN, error=str(exc)[:500])
            raise FetchFailed(f"relicensing answer unusable ({exc}); settled later") from None
        relicenser.settle(
            stream,
            media_id,
            size,
            rl.CONFIRMED,
            credits=licensed.credits,
            new_license_id=licensed.new_license_id,
            error=None,
        )
        relicenser.charged(order.subscription_id, credits, licensed.credits)
        return licensed, asked_at

    def _new_license(
        self, need: Need, asked_at: datetime, license_id: str | None
    ) -> LicenseRecord | None:
        """The new license as the history lists it, to be recorded with the file at once; when
        the history cannot be read now, the next catch-up records it (its file is stored)."""
        from syncd import relicense as rl

        try:
            found = rl.new_license_record(
                self.client, need.stream, need.media_id, asked_at, license_id
            )
        except (ApiError, AuthError, OSError) as exc:
            found, why = None, str(exc)[:300]
        else:
            why = "not in the license history yet"
        if found is None:
            log.warning(
                "license.new_not_listed",
                stream=need.stream.media_type,
                media_id=need.media_id,
                license_id=license_id,
                reason=why,
            )
        return found

    def _redownload_url(self, need: Need, license_id: str, ahead: Future[str] | None = None) -> str:
        """A fresh download URL for the license: the one asked for ahead (``ahead``), else
        asked for now."""
        try:
            if ahead is not None:
                url = ahead.result()
            else:
                url = self.client.redownload(need.stream, license_id, need.size)
        except (Forbidden, NotFound) as exc:
            raise FetchFailed(f"redownload refused: {exc}", unavailable=True) from None
        except ApiError as exc:
            raise FetchFailed(f"redownload failed: {exc}") from None
        try:
            check_url_allowed(url, self.allow_http)
        except ValueError as exc:
            raise FetchFailed(f"download URL refused: {exc}") from None
        return url

    def _key_for(self, need: Need, license_id: str, url: str) -> str:
        try:
            return check_key(
                render(
                    self.key_template,
                    media_type=need.stream.media_type,
                    media_id=need.media_id,
                    license_id=license_id,
                    size=need.size,
                    format=need.format,
                    ext=extension_of(url),
                )
            )
        except UnsafeValue as exc:
            raise FetchFailed(str(exc)) from None

    def _download(self, url: str, key: str, stream: str, license_id: str) -> StoredObject:
        attempts = 0

        def broke(exc: BrokenTransfer, resume_from: int | None = None) -> None:
            """One more attempt spent: logged and waited out, or the file fails."""
            nonlocal attempts
            attempts += 1
            if attempts >= self.transfer.attempts:
                raise FetchFailed(f"transfer failed after {attempts} attempts: {exc}") from None
            delay = self.transfer.backoff.backoff(attempts - 1)
            log.warning(
                "transfer.retry",
                stream=stream,
                license_id=license_id,
                error=str(exc),
                attempt=attempts,
                wait_s=round(delay, 2),
                resume_from=resume_from,
            )
            if self.stop.wait(delay):
                raise Interrupted() from None

        fresh: requests.Response | None = None
        while True:
            try:
                return self._transfer(url, key, stream, license_id, broke, fresh)
            except _StartAgain as exc:  # the attempt was counted when the transfer broke
                log.info("transfer.restart", stream=stream, license_id=license_id, why=str(exc))
                fresh = exc.response
            except BrokenTransfer as exc:
                broke(exc)

    def _transfer(
        self,
        url: str,
        key: str,
        stream: str,
        license_id: str,
        broke: Callable[..., None],
        fresh: requests.Response | None = None,
    ) -> StoredObject:
        """One download into one writer. A body that breaks is resumed with a Range request
        from the byte after the last one received (the writer and the running sha256 go on),
        as long as the server's validator (a strong ETag, else Last-Modified) is unchanged;
        otherwise the writer is discarded and the caller starts again from byte 0 (with the
        whole body the server sent instead of the range, ``fresh``, when it did)."""
        response = fresh if fresh is not None else self._get_checked(url)
        started = time.monotonic()
        try:
            expected = content_length(response)
            validator = _validator(response) if expected is not None else None
            chunk_size = self.transfer.chunk_size
            with self.storage.writer(key, size_hint=expected) as writer:
                with self._sink(writer, expected, chunk_size) as sink:
                    while True:
                        try:
                            self._pump(response, sink, expected)
                            break
                        except _Overrun:
                            raise
                        except BrokenTransfer as exc:
                            if validator is None or sink.received == 0:
                                raise
                            response.close()
                            response = self._resume(url, sink, expected, validator, exc, broke)
                    digest, received = sink.finish()
                writer.commit()
        finally:
            response.close()
        log.info(
            "file.stored",
            stream=stream,
            license_id=license_id,
            key=key,
            bytes=received,
            seconds=round(time.monotonic() - started, 3),
        )
        return StoredObject(key, received, digest, license_id)

    @staticmethod
    def _sink(writer: ObjectWriter, expected: int | None, chunk_size: int) -> InlineSink:
        """Straight into the writer's buffer where it has one (S3); else a small body inline
        and a larger one through the hashing and writing threads (a folder)."""
        if writer.reads_into:
            return DirectSink(writer, chunk_size)
        if expected is not None and expected <= 2 * chunk_size:
            return InlineSink(writer, chunk_size)
        return ThreadSink(writer, chunk_size)

    def _resume(
        self,
        url: str,
        sink: InlineSink,
        expected: int | None,
        validator: str,
        exc: BrokenTransfer,
        broke: Callable[..., None],
    ) -> requests.Response:
        """The rest of the body from byte ``sink.received``: a 206 of exactly that range with
        the same validator, or _StartAgain."""
        while True:
            offset = sink.received
            broke(exc, resume_from=offset)
            try:
                response = self._get_following_redirects(
                    url, {"Range": f"bytes={offset}-", "If-Range": validator}
                )
            except BrokenTransfer as again:
                exc = again
                continue
            status = response.status_code
            if status == 206:
                wanted = f"bytes {offset}-{expected - 1}/{expected}" if expected else None
                same = _validator(response) in (None, validator)
                if response.headers.get("Content-Range") == wanted and same:
                    return response
                response.close()
                raise _StartAgain(f"the server answered the range with {wanted!r} changed")
            if status == 200:  # the file changed (If-Range), or ranges are not served
                raise _StartAgain("the server sent the whole file again", response)
            response.close()
            if status in URL_GONE:
                raise _UrlGone(f"HTTP {status}")
            if is_retriable(status):
                exc = BrokenTransfer(f"HTTP {status}")
                continue
            raise _StartAgain(f"the range request answered HTTP {status}")

    def _get_checked(self, url: str) -> requests.Response:
        response = self._get_following_redirects(url)
        if response.status_code == 200:
            return response
        response.close()
        if response.status_code in URL_GONE:
            raise _UrlGone(f"HTTP {response.status_code}")
        if is_retriable(response.status_code):
            raise BrokenTransfer(f"HTTP {response.status_code}")
        raise FetchFailed(f"download answered HTTP {response.status_code}")

    def _pump(self, response: requests.Response, sink: InlineSink, expected: int | None) -> None:
        """Reads the body into reused buffers while a second thread hashes and writes the
        previous ones (socket reads, sha256 and os.write all release the GIL, so the two
        overlap); a body of one or two buffers is handled inline. A body that breaks or ends
        short raises BrokenTransfer; one longer than its Content-Length, _Overrun."""
        sock = self._watchdog.watch(response)

        def progress() -> None:
            self._watchdog.progress(sock)

        try:
            read = body_reader(response)
            while True:
                if self.stop.is_set():
                    raise Interrupted()
                buffer = sink.free_buffer()
                rate = self._rate
                count = read(buffer if rate is None else buffer[: rate.limit(len(buffer))])
                if not count:
                    break
                progress()
                self._on_bytes(count)
                sink.submit(buffer, count)
                if expected is not None and sink.received > expected:
                    raise _Overrun(f"got more than the {expected} bytes announced")
                if rate is not None:
                    self._keep_to_rate(rate.book(count), progress)
            progress()
            if expected is not None and sink.received != expected:
                raise BrokenTransfer(f"got {sink.received} of {expected} bytes")
            response.raw.release_conn()  # read to its end: the connection can serve again
        except (requests.RequestException, Urllib3Error, HTTPException, OSError) as exc:
            if isinstance(exc, OSError) and not is_network_error(exc):
                raise
            if self.stop.is_set():
                raise Interrupted() from None
            raise BrokenTransfer(f"connection broken ({type(exc).__name__})") from None
        finally:
            self._watchdog.forget(sock)

    def _get_following_redirects(
        self, url: str, headers: dict[str, str] | None = None
    ) -> requests.Response:
        """GET with redirects followed by hand, so that each hop is checked like the URL the
        API gave (https, or http to loopback unless api.allow_http)."""
        timeout = (min(10.0, self.transfer.timeout_s), self.transfer.timeout_s)
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                response = self._session.get(
                    url,
                    stream=True,
                    timeout=timeout,
                    allow_redirects=False,
                    proxies=proxies_for(url),
                    headers={"Accept-Encoding": "identity", **(headers or {})},
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise BrokenTransfer(type(exc).__name__) from None
            except requests.RequestException as exc:
                raise FetchFailed(f"download URL unusable: {type(exc).__name__}") from None
            if not response.is_redirect:
                return response
            location = response.headers.get("Location", "")
            response.close()
            url = urljoin(url, location)
            try:
                check_url_allowed(url, self.allow_http)
            except ValueError as exc:
                raise FetchFailed(f"download redirected to a refused URL: {exc}") from None
        raise FetchFailed(f"download redirected more than {MAX_REDIRECTS} times")

    def _keep_to_rate(self, wait_s: float, progress: Callable[[], None]) -> None:
        """Waits out the bandwidth limit in steps, so that a stopping run stops at once and
        the watchdog does not take our own wait for a stalled host."""
        while wait_s > 0:
            step = min(wait_s, 1.0)
            if self.stop.wait(step):
                raise Interrupted()
            progress()
            wait_s -= step


def _mean(mean: float | None, value: float) -> float:
    return value if mean is None else mean + EWMA * (value - mean)


class _StartAgain(BrokenTransfer):
    """The rest of a broken body cannot be had (the file changed, or the server ignores
    ranges): discard what was received and download from byte 0, from ``response`` when the
    server already sent the whole file."""

    def __init__(self, reason: str, response: requests.Response | None = None):
        super().__init__(reason)
        self.response = response


class _Overrun(BrokenTransfer):
    """More bytes than Content-Length: nothing received can be trusted; start again."""


def _validator(response: requests.Response) -> str | None:
    """What If-Range may carry: a strong ETag, else Last-Modified (RFC 9110 13.1.5)."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")
