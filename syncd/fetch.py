"""How bytes move: a fresh download URL for a license, streamed straight into storage while
hashing, in memory that does not grow with the file."""

from __future__ import annotations

import hashlib
import mmap
from http.client import HTTPException
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urljoin

import requests
import structlog
from urllib3.exceptions import HTTPError as Urllib3Error

from syncd.api.client import ApiClient, ApiError, Forbidden, NotFound
from syncd.api.http import make_session, proxies_for
from syncd.api.retry import RetryPolicy
from syncd.config import check_url_allowed
from syncd.storage.base import ObjectWriter, Storage
from syncd.storage.keys import UnsafeValue, check_key, extension_of, render
from syncd.streams import LicenseStream

log = structlog.get_logger("syncd.fetch")

URL_GONE = frozenset({403, 404, 410})
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class TransferConfig:
    chunk_size: int = 1 << 20
    attempts: int = 4                     # tries of one URL when the transfer breaks
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


class Interrupted(Exception):
    """The run is stopping: the partial file was discarded."""


class _Watchdog:
    """Cuts the connection under a transfer whose read has waited longer than ``stall_s`` for
    its buffer to fill (a host that trickles or hangs), and under every transfer once the run
    is stopping: the blocked read then fails at once instead of holding the run."""

    TICK_S = 0.2

    def __init__(self, stall_s: float, stop: threading.Event):
        self.stall_s = stall_s
        self._stop = stop
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, float] = {}
        self._cut: set[socket.socket] = set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)
        self._thread.start()

    def watch(self, response: requests.Response) -> socket.socket | None:
        sock = _socket_of(response)
        if sock is not None:
            self.progress(sock)
        return sock

    def progress(self, sock: socket.socket | None) -> None:
        """The transfer on ``sock`` moved on; raises when its connection was cut meanwhile
        (a cut read may look like the end of a body whose length nobody announced)."""
        if sock is None:
            return
        with self._lock:
            cut = sock in self._cut
            self._cut.discard(sock)
            if not cut:
                self._deadlines[sock] = time.monotonic() + self.stall_s
        if cut:
            if self._stop.is_set():
                raise Interrupted()
            raise _BrokenTransfer(f"no data for {self.stall_s:g} s: connection cut")

    def forget(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)
            self._cut.discard(sock)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._closed.wait(self.TICK_S):
            now = time.monotonic()
            with self._lock:
                doomed = [sock for sock, deadline in self._deadlines.items()
                          if self._stop.is_set() or deadline < now]
                for sock in doomed:
                    del self._deadlines[sock]
                    self._cut.add(sock)
            for sock in doomed:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _UrlGone(Exception):
    pass


class _BrokenTransfer(Exception):
    pass


class Fetcher:
    def __init__(self, client: ApiClient, storage: Storage, *, key_template: str,
                 allow_http: bool, transfer: TransferConfig, pool_size: int,
                 stop: threading.Event | None = None):
        self.client = client
        self.storage = storage
        self.key_template = key_template
        self.allow_http = allow_http
        self.transfer = transfer
        self.stop = stop or threading.Event()
        self._session = make_session(pool_size)
        self._watchdog = _Watchdog(transfer.timeout_s, self.stop)

    def close(self) -> None:
        self._watchdog.close()
        self._session.close()

    def fetch(self, need: Need) -> tuple[StoredObject | None, dict[str, FetchFailed]]:
        """Tries the need's licenses in turn until one stores the file. Returns the stored
        object (or None) and the failure of each license tried before it."""
        failures: dict[str, FetchFailed] = {}
        for license_id in need.license_ids:
            if self.stop.is_set():       # the run is ending: send nothing more
                raise Interrupted()
            try:
                return self._fetch_license(need, license_id), failures
            except FetchFailed as exc:
                failures[license_id] = exc
                log.warning("license.fetch_failed", stream=need.stream.media_type,
                            license_id=license_id, reason=exc.reason)
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
                log.info("url.refreshed", stream=need.stream.media_type, license_id=license_id,
                         status=str(exc))
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
            return check_key(render(
                self.key_template, media_type=need.stream.media_type, media_id=need.media_id,
                license_id=license_id, size=need.size, format=need.format,
                ext=extension_of(url),
            ))
        except UnsafeValue as exc:
            raise FetchFailed(str(exc)) from None

    def _download(self, url: str, key: str, stream: str, license_id: str) -> StoredObject:
        attempt = 0
        while True:
            try:
                return self._transfer_once(url, key, stream, license_id)
            except _BrokenTransfer as exc:
                attempt += 1
                if attempt >= self.transfer.attempts:
                    raise FetchFailed(f"transfer failed after {attempt} attempts: {exc}") from None
                delay = self.transfer.backoff.backoff(attempt - 1)
                log.warning("transfer.retry", stream=stream, license_id=license_id, error=str(exc),
                            attempt=attempt, wait_s=round(delay, 2))
                if self.stop.wait(delay):
                    raise Interrupted() from None

    def _transfer_once(self, url: str, key: str, stream: str, license_id: str) -> StoredObject:
        response = self._get_following_redirects(url)
        with response:
            if response.status_code in URL_GONE:
                raise _UrlGone(f"HTTP {response.status_code}")
            if response.status_code != 200:
                if response.status_code == 429 or response.status_code >= 500:
                    raise _BrokenTransfer(f"HTTP {response.status_code}")
                raise FetchFailed(f"download answered HTTP {response.status_code}")
            expected = _content_length(response)
            sock = self._watchdog.watch(response)
            try:
                stored = self._stream_into_storage(response, key, expected, stream, license_id,
                                                   lambda: self._watchdog.progress(sock))
                response.raw.release_conn()   # read to its end: the connection can serve again
                return stored
            except (requests.RequestException, Urllib3Error, HTTPException, OSError) as exc:
                if isinstance(exc, OSError) and not _is_network_error(exc):
                    raise
                if self.stop.is_set():
                    raise Interrupted() from None
                raise _BrokenTransfer(f"connection broken ({type(exc).__name__})") from None
            finally:
                self._watchdog.forget(sock)

    def _get_following_redirects(self, url: str) -> requests.Response:
        """GET with redirects followed by hand, so that each hop is checked like the URL the
        API gave (https, or http to loopback unless api.allow_http)."""
        timeout = (min(10.0, self.transfer.timeout_s), self.transfer.timeout_s)
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                response = self._session.get(url, stream=True, timeout=timeout,
                                             allow_redirects=False, proxies=proxies_for(url),
                                             headers={"Accept-Encoding": "identity"})
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise _BrokenTransfer(type(exc).__name__) from None
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

    def _stream_into_storage(self, response: requests.Response, key: str,
                             expected: int | None, stream: str, license_id: str,
                             progress: Callable[[], None]) -> StoredObject:
        """Reads the body into reused buffers while a second thread hashes and writes the
        previous ones (socket reads, sha256 and os.write all release the GIL, so the two
        overlap); a body of one or two buffers is handled inline."""
        read = _reader(response)
        started = time.monotonic()
        chunk_size = self.transfer.chunk_size
        with self.storage.writer(key, size_hint=expected) as writer:
            inline = expected is not None and expected <= 2 * chunk_size
            with (_InlineSink(writer, chunk_size) if inline
                  else _ThreadSink(writer, chunk_size)) as sink:
                while True:
                    if self.stop.is_set():
                        raise Interrupted()
                    buffer = sink.free_buffer()
                    count = read(buffer)
                    if not count:
                        break
                    progress()
                    sink.submit(buffer, count)
                progress()
                digest, received = sink.finish()
            if expected is not None and received != expected:
                raise _BrokenTransfer(f"got {received} of {expected} bytes")
            writer.commit()
        log.info("file.stored", stream=stream, license_id=license_id, key=key, bytes=received,
                 seconds=round(time.monotonic() - started, 3))
        return StoredObject(key, received, digest, license_id)


class _InlineSink:
    """Hashes and writes each buffer as it is read, in the reading thread."""

    def __init__(self, writer: ObjectWriter, chunk_size: int):
        self._writer = writer
        self._buffer = memoryview(mmap.mmap(-1, chunk_size))   # page-aligned, for O_DIRECT
        self._digest = hashlib.sha256()
        self._received = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def free_buffer(self) -> memoryview:
        return self._buffer

    def submit(self, buffer: memoryview, count: int) -> None:
        chunk = buffer[:count]
        self._digest.update(chunk)
        self._writer.write(chunk)
        self._received += count

    def finish(self) -> tuple[str, int]:
        return self._digest.hexdigest(), self._received


class _ThreadSink(_InlineSink):
    """Hashes in one thread and writes in another while the reader fills the next buffer:
    socket reads, sha256 and os.write all release the GIL, so the three overlap. Buffers go
    round a small ring and come back once both stages are done with them; an error in either
    stage comes back to the reader."""

    BUFFERS = 4

    def __init__(self, writer: ObjectWriter, chunk_size: int):
        super().__init__(writer, chunk_size)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.BUFFERS):   # page-aligned (mmap), as O_DIRECT writes want
            self._free.put(memoryview(mmap.mmap(-1, chunk_size)))
        self._lock = threading.Lock()
        self._users: dict[int, int] = {}
        self._error: BaseException | None = None
        self._stages = []
        for name, work in (("hash", self._digest.update), ("write", self._writer.write)):
            inbox: queue.SimpleQueue = queue.SimpleQueue()
            thread = threading.Thread(target=self._drain, args=(inbox, work), name=name,
                                      daemon=True)
            thread.start()
            self._stages.append((inbox, thread))

    def _drain(self, inbox: queue.SimpleQueue, work: Callable) -> None:
        while (item := inbox.get()) is not None:
            buffer, count = item
            try:
                if self._error is None:
                    work(buffer[:count])
            except BaseException as exc:   # handed to the reading thread
                self._error = exc
            with self._lock:
                self._users[id(buffer)] -= 1
                done = self._users[id(buffer)] == 0
            if done:
                self._free.put(buffer)

    def free_buffer(self) -> memoryview:
        buffer = self._free.get()
        self._raise_error()
        return buffer

    def submit(self, buffer: memoryview, count: int) -> None:
        with self._lock:
            self._users[id(buffer)] = len(self._stages)
        for inbox, _thread in self._stages:
            inbox.put((buffer, count))
        self._received += count

    def finish(self) -> tuple[str, int]:
        self._stop()
        self._raise_error()
        return super().finish()

    def __exit__(self, *exc_info) -> None:
        self._stop()

    def _stop(self) -> None:
        for inbox, thread in self._stages:
            if thread.is_alive():
                inbox.put(None)
                thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or response.headers.get("Content-Encoding", "identity") != "identity":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _reader(response: requests.Response):
    """readinto() on the raw stream into one reused buffer; iter_content when the body is
    encoded (then Content-Length counts encoded bytes and cannot be checked)."""
    if response.headers.get("Content-Encoding", "identity") == "identity":
        body = getattr(response.raw, "_fp", None)   # the http.client response: reads straight
        if body is not None and hasattr(body, "readinto"):   # into our buffer, no extra copy
            return body.readinto
        return response.raw.readinto
    chunks = response.iter_content(1 << 20)

    def read(view: memoryview) -> int:
        chunk = next(chunks, b"")
        view[: len(chunk)] = chunk
        return len(chunk)

    return read


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket a streamed body is read from: the pooled connection's, or (for a body that
    ends when the connection closes, which http.client detaches) the one behind the body."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is None:
        reader = getattr(getattr(getattr(response.raw, "_fp", None), "fp", None), "raw", None)
        sock = getattr(reader, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _is_network_error(exc: OSError) -> bool:
    return isinstance(exc, (ConnectionError, TimeoutError))
