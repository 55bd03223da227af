"""How bytes move: a fresh download URL for a license, streamed straight into storage while
hashing, in memory that does not grow with the file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPException
from urllib.parse import urljoin

import requests
import structlog
from urllib3.exceptions import HTTPError as Urllib3Error

from syncd.api.client import ApiClient, ApiError, Forbidden, NotFound
from syncd.api.http import make_session, proxies_for
from syncd.api.retry import RetryPolicy, is_retriable
from syncd.bwlimit import RateLimit
from syncd.config import check_url_allowed
from syncd.storage.base import Storage
from syncd.storage.keys import UnsafeValue, check_key, extension_of, render
from syncd.streams import LicenseStream
from syncd.transfer import (
    BrokenTransfer,
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


@dataclass(frozen=True)
class TransferConfig:
    chunk_size: int = 1 << 20
    bwlimit: int | None = None  # bytes per second over all transfers (sync.bwlimit)
    attempts: int = 4  # tries of one URL when the transfer breaks
    timeout_s: float = 60.0
    backoff: RetryPolicy = field(default_factory=lambda: RetryPolicy(base_s=0.5, cap_s=10.0))


@dataclass(frozen=True)
class Need:
    """One missing file: an asset and size, and the licenses that could fetch it, best first."""

    stream: LicenseStream
    media_id: str
    size: str
    format: str | None
    license_ids: tuple[str, ...]


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str
    license_id: str


class FetchFailed(Exception):
    """The license's file could not be fetched. ``unavailable``: the API says it never will be
    by redownload (as opposed to an error worth trying again)."""

    def __init__(self, reason: str, unavailable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unavailable = unavailable


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
    ):
        self.client = client
        self._on_bytes = on_bytes or (lambda count: None)
        self.storage = storage
        self.key_template = key_template
        self.allow_http = allow_http
        self.transfer = transfer
        self.stop = stop or threading.Event()
        self._session = make_session(pool_size)
        self._watchdog = Watchdog(transfer.timeout_s, self.stop)
        self._rate = RateLimit(transfer.bwlimit) if transfer.bwlimit else None

    def close(self) -> None:
        self._watchdog.close()
        self._session.close()

    def fetch(self, need: Need) -> tuple[StoredObject | None, dict[str, FetchFailed]]:
        """Tries the need's licenses in turn until one stores the file. Returns the stored
        object (or None) and the failure of each license tried before it."""
        failures: dict[str, FetchFailed] = {}
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
        for fresh_url_asked in (False, True):
            url = self._redownload_url(need, license_id)
            key = self._key_for(need, license_id, url)
            try:
                return self._download(url, key, need.stream.media_type, license_id)
            except _UrlGone as exc:
                if fresh_url_asked:
                    raise FetchFailed(f"download URL refused twice ({exc})") from None
                log.info(
                    "url.refreshed",
                    stream=need.stream.media_type,
                    license_id=license_id,
                    status=str(exc),
                )
        raise AssertionError("unreachable")

    def _redownload_url(self, need: Need, license_id: str) -> str:
        try:
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
        attempt = 0
        while True:
            try:
                return self._transfer_once(url, key, stream, license_id)
            except BrokenTransfer as exc:
                attempt += 1
                if attempt >= self.transfer.attempts:
                    raise FetchFailed(f"transfer failed after {attempt} attempts: {exc}") from None
                delay = self.transfer.backoff.backoff(attempt - 1)
                log.warning(
                    "transfer.retry",
                    stream=stream,
                    license_id=license_id,
                    error=str(exc),
                    attempt=attempt,
                    wait_s=round(delay, 2),
                )
                if self.stop.wait(delay):
                    raise Interrupted() from None

    def _transfer_once(self, url: str, key: str, stream: str, license_id: str) -> StoredObject:
        response = self._get_following_redirects(url)
        with response:
            if response.status_code in URL_GONE:
                raise _UrlGone(f"HTTP {response.status_code}")
            if response.status_code != 200:
                if is_retriable(response.status_code):
                    raise BrokenTransfer(f"HTTP {response.status_code}")
                raise FetchFailed(f"download answered HTTP {response.status_code}")
            expected = content_length(response)
            sock = self._watchdog.watch(response)
            try:
                stored = self._stream_into_storage(
                    response,
                    key,
                    expected,
                    stream,
                    license_id,
                    lambda: self._watchdog.progress(sock),
                )
                response.raw.release_conn()  # read to its end: the connection can serve again
                return stored
            except (requests.RequestException, Urllib3Error, HTTPException, OSError) as exc:
                if isinstance(exc, OSError) and not is_network_error(exc):
                    raise
                if self.stop.is_set():
                    raise Interrupted() from None
                raise BrokenTransfer(f"connection broken ({type(exc).__name__})") from None
            finally:
                self._watchdog.forget(sock)

    def _get_following_redirects(self, url: str) -> requests.Response:
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
                    headers={"Accept-Encoding": "identity"},
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

    def _stream_into_storage(
        self,
        response: requests.Response,
        key: str,
        expected: int | None,
        stream: str,
        license_id: str,
        progress: Callable[[], None],
    ) -> StoredObject:
        """Reads the body into reused buffers while a second thread hashes and writes the
        previous ones (socket reads, sha256 and os.write all release the GIL, so the two
        overlap); a body of one or two buffers is handled inline."""
        read = body_reader(response)
        started = time.monotonic()
        chunk_size = self.transfer.chunk_size
        with self.storage.writer(key, size_hint=expected) as writer:
            inline = expected is not None and expected <= 2 * chunk_size
            with (
                InlineSink(writer, chunk_size) if inline else ThreadSink(writer, chunk_size)
            ) as sink:
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
                    if rate is not None:
                        self._keep_to_rate(rate.book(count), progress)
                progress()
                digest, received = sink.finish()
            if expected is not None and received != expected:
                raise BrokenTransfer(f"got {received} of {expected} bytes")
            writer.commit()
        log.info(
            "file.stored",
            stream=stream,
            license_id=license_id,
            key=key,
            bytes=received,
            seconds=round(time.monotonic() - started, 3),
        )
        return StoredObject(key, received, digest, license_id)
