"""API requests sent ahead of need, a few at a time, in threads: the first pages of the
license streams and of the /updated streams, the pages of a history whose length is known, the
details. Their answers are taken (and recorded) by the thread that asked, in its own order;
a request not taken is not sent once the sender closes.

Until the client has had one answer of 2xx this run, only the first request goes out: an API
that is not there, or a token it refuses, costs one request as it did when they went one by
one. Each request waits out the last 429's wait and has the client's retry policy."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from syncd.api.client import ApiClient
from syncd.errors import AuthError

T = TypeVar("T")
Item = TypeVar("Item")


class Ahead:
    def __init__(self, client: ApiClient, workers: int):
        self.client = client
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="api-ahead")
        self._open = threading.Event()  # set: the requests after the first may go out
        if client.succeeded:
            self._open.set()
        self._first = True
        self._closed = False
        self._refused: AuthError | None = None

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        first, self._first = self._first, False
        return self._pool.submit(self._send, first, call, args, kwargs)

    def _send(self, first: bool, call: Callable[..., T], args, kwargs) -> T:
        if not first:
            self._open.wait()
            if self._refused is not None:
                raise self._refused
            if self._closed:
                raise CancelledError("not sent: the requests were no longer wanted")
        try:
            self.client.wait_out_rate_limit()
            return call(*args, **kwargs)
        except AuthError as exc:
            self._refused = exc  # the token is refused: nothing more goes out
            raise
        finally:
            if first:  # an API given up on fails the rest at once, unsent (the client's rule)
                self._open.set()

    def in_order(
        self, call: Callable[[Item], T], items: Iterable[Item]
    ) -> Iterator[tuple[Item, Future[T]]]:
        """(item, the answer to come of ``call(item)``), in order; at most ``workers`` sent
        ahead of the one taken."""
        waiting: deque[tuple[Item, Future[T]]] = deque()
        for item in items:
            waiting.append((item, self.submit(call, item)))
            if len(waiting) > self.workers:
                yield waiting.popleft()
        while waiting:
            yield waiting.popleft()

    def close(self) -> None:
        """What has not gone out is not sent; waits for what is in flight."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._open.set()
        self._pool.shutdown(wait=True)
