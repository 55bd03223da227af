"""The byte pump under a download: reading a body into reused buffers while other threads
hash and write it, and a watchdog over stalled connections. Knows nothing of licenses."""

from __future__ import annotations

import errno
import hashlib
import mmap
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable

import requests

from syncd.storage.base import ObjectWriter


class Interrupted(Exception):
    """The run is stopping: the partial file was discarded."""


class BrokenTransfer(Exception):
    """The body stopped short or the connection broke: worth another try of the same URL."""


class Watchdog:
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
        sock = socket_of(response)
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
            raise BrokenTransfer(f"no data for {self.stall_s:g} s: connection cut")

    def forget(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
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
                doomed = [
                    sock
                    for sock, deadline in self._deadlines.items()
                    if self._stop.is_set() or deadline < now
                ]
                for sock in doomed:
                    del self._deadlines[sock]
                    self._cut.add(sock)
            for sock in doomed:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class InlineSink:
    """Hashes and writes each buffer as it is read, in the reading thread."""

    def __init__(self, writer: ObjectWriter, chunk_size: int):
        self._writer = writer
        self._buffer = memoryview(mmap.mmap(-1, chunk_size))  # page-aligned, for O_DIRECT
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

    @property
    def received(self) -> int:
        """Bytes handed over so far: where a resumed body must start."""
        return self._received

    def finish(self) -> tuple[str, int]:
        return self._digest.hexdigest(), self._received


class DirectSink(InlineSink):
    """Reads straight into the writer's own buffer (``ObjectWriter.room``: an S3 part filling)
    and hashes each piece in the reading thread: no buffer of its own, no copy on the way to
    the upload, no hand-off between threads (an upload is far slower than sha256)."""

    def __init__(self, writer: ObjectWriter, chunk_size: int):
        self._writer = writer
        self._chunk_size = chunk_size
        self._digest = hashlib.sha256()
        self._received = 0

    def free_buffer(self) -> memoryview:
        return self._writer.room(self._chunk_size)

    def submit(self, buffer: memoryview, count: int) -> None:
        with buffer[:count] as chunk:
            self._digest.update(chunk)
        buffer.release()  # the part may be cut to its length once it is complete
        self._writer.wrote(count)
        self._received += count


class ThreadSink(InlineSink):
    """Hashes in one thread and writes in another while the reader fills the next buffer:
    socket reads, sha256 and os.write all release the GIL, so the three overlap. Buffers go
    round a small ring and come back once both stages are done with them; an error in either
    stage comes back to the reader."""

    BUFFERS = 4

    def __init__(self, writer: ObjectWriter, chunk_size: int):
        super().__init__(writer, chunk_size)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.BUFFERS):  # page-aligned (mmap), as O_DIRECT writes want
            self._free.put(memoryview(mmap.mmap(-1, chunk_size)))
        self._lock = threading.Lock()
        self._users: dict[int, int] = {}
        self._error: BaseException | None = None
        self._stages = []
        for name, work in (("hash", self._digest.update), ("write", self._writer.write)):
            inbox: queue.SimpleQueue = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._drain, args=(inbox, work), name=name, daemon=True
            )
            thread.start()
            self._stages.append((inbox, thread))

    def _drain(self, inbox: queue.SimpleQueue, work: Callable) -> None:
        while (item := inbox.get()) is not None:
            buffer, count = item
            try:
                if self._error is None:
                    work(buffer[:count])
            except BaseException as exc:  # handed to the reading thread
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


def content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or response.headers.get("Content-Encoding", "identity") != "identity":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def body_reader(response: requests.Response):
    """readinto() on the raw stream into one reused buffer; iter_content when the body is
    encoded (then Content-Length counts encoded bytes and cannot be checked)."""
    if response.headers.get("Content-Encoding", "identity") == "identity":
        body = getattr(response.raw, "_fp", None)  # the http.client response: reads straight
        if body is not None and hasattr(body, "readinto"):  # into our buffer, no extra copy
            return body.readinto
        return response.raw.readinto
    chunks = response.iter_content(1 << 20)
    left = memoryview(b"")

    def read(view: memoryview) -> int:
        nonlocal left
        if not left:
            left = memoryview(next(chunks, b""))
        count = min(len(view), len(left))
        view[:count] = left[:count]
        left = left[count:]
        return count

    return read


def socket_of(response: requests.Response) -> socket.socket | None:
    """The socket a streamed body is read from: the pooled connection's, or (for a body that
    ends when the connection closes, which http.client detaches) the one behind the body."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is None:
        reader = getattr(getattr(getattr(response.raw, "_fp", None), "fp", None), "raw", None)
        sock = getattr(reader, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


_NETWORK_ERRNOS = {
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ETIMEDOUT,
    errno.ENETDOWN,
    errno.ECONNABORTED,
    errno.EPIPE,
}


def is_network_error(exc: OSError) -> bool:
    """A broken connection (worth retrying), as opposed to a local file error."""
    return (
        isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError))
        or exc.errno in _NETWORK_ERRNOS
    )
