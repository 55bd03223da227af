"""Answers the simulator gives instead of the normal one: set by tests, or at random."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from syncd.simulator.answers import Answer, error_answer, json_answer, raw_answer

ACTIONS = (None, "reset", "truncate", "html", "badjson", "hold", "delay", "reset_after")
"""`hold`, `delay` and `reset_after` let the request take effect first (a license granted, a
credit spent), then: wait for `Hold.release()`, answer `delay_s` late, or reset unanswered."""
_HTML_PAGE = b"<html><head><title>Bad Gateway</title></head><body><h1>Bad Gateway</h1></html>"
_BROKEN_JSON = b'{"data": ['


@dataclass
class Fault:
    method: str
    path: re.Pattern
    status: int | None
    body: bytes | str | dict | list | None
    content_type: str
    headers: dict[str, str]
    action: str | None
    remaining: int
    hold: Hold | None = None

    def answer(self, normal: Callable[[], Answer]) -> Answer:
        if self.action == "reset":
            return Answer(0, (), 0, cut="reset")
        if self.action == "reset_after":
            normal()  # done, then the connection is reset before a byte of the answer
            return Answer(0, (), 0, cut="reset")
        if self.action in ("hold", "delay"):
            return dataclasses.replace(normal(), hold=self.hold)
        if self.action == "truncate":
            answer = normal()  # the headers given replace the normal ones (an ETag, say)
            return dataclasses.replace(
                answer, cut="truncate", headers={**answer.headers, **self.headers}
            )
        if self.action == "html":
            return raw_answer(self.status or 502, _HTML_PAGE, "text/html", self.headers)
        if self.action == "badjson":
            return raw_answer(200, _BROKEN_JSON, "application/json", self.headers)
        return raw_answer(self.status or 500, self._body(), self.content_type, self.headers)

    def _body(self) -> bytes:
        if self.body is None:
            return json.dumps({"message": f"Simulated error {self.status}"}).encode()
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode()
        return self.body.encode() if isinstance(self.body, str) else self.body


class Hold:
    """Keeps back the answers of the requests it is given to (`Simulator.hold`): each request
    takes effect, then its answer waits until `release()`, or `timeout_s` (None: for ever),
    or the simulator stops (then the connection is reset, unanswered)."""

    def __init__(self, timeout_s: float | None = None):
        self.timeout_s = timeout_s
        self._reached = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._abandoned = False
        self.held = 0  # requests that reached the hold

    @property
    def reached(self) -> bool:
        """Whether a request took effect and is waiting (or waited) here."""
        return self._reached.is_set()

    def wait_reached(self, timeout: float = 10.0) -> bool:
        """Wait until a request has taken effect and its answer is held; False on timeout."""
        return self._reached.wait(timeout)

    def release(self) -> None:
        """Send the answers held, and those of later requests at once."""
        self._released.set()

    def abandon(self) -> None:
        """Reset the connections held instead of answering them."""
        with self._lock:
            self._abandoned = True
        self._released.set()

    def block(self) -> bool:
        """Called by the server with the answer ready: True to send it, False to reset."""
        with self._lock:
            self.held += 1
        self._reached.set()
        self._released.wait(self.timeout_s)
        with self._lock:
            return not self._abandoned


class FaultPlan:
    """Faults set by `Simulator.add_fault`: each answers the next `times` matching requests."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        method: str,
        path_regex: str,
        *,
        status: int | None,
        body,
        content_type: str,
        headers: dict[str, str] | None,
        times: int,
        action: str | None,
        hold: Hold | None = None,
    ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
        if (action in ("hold", "delay")) != (hold is not None):
            raise ValueError("the actions hold and delay, and only they, take a Hold")
        if action is None and status is None:
            raise ValueError("a fault without an action needs a status")
        if times < 1:
            raise ValueError(f"times must be 1 or more, not {times}")
        fault = Fault(
            method.upper(),
            re.compile(path_regex),
            status,
            body,
            content_type,
            dict(headers or {}),
            action,
            times,
            hold,
        )
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Forgets every fault still waiting (an API that recovers)."""
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault left for this request (`re.search` on the path), used up once."""
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.path.search(path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None


@dataclass
class RandomFaults:
    """Trouble at random, from a seed (`syncd simulator --fail-rate ...`)."""

    seed: int = 0
    fail_rate: float = 0.0  # API requests answered 500
    rate_limit_rate: float = 0.0  # API requests answered 429 with Retry-After: 1
    reset_rate: float = 0.0  # downloads reset half-way through the body
    latency_ms: int = 0  # added to every API request
    download_delay_ms: int = 0  # waited before a download's first byte (a slow CDN start)

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def api_answer(self) -> Answer | None:
        """Waits the latency, then maybe answers 500 or 429; None: answer normally."""
        time.sleep(self.latency_ms / 1000)
        with self._lock:
            roll = self._rng.random()
        if roll < self.fail_rate:
            return error_answer(500, "Simulated internal error")
        if roll < self.fail_rate + self.rate_limit_rate:
            return json_answer(429, {"message": "Too many requests"}, {"Retry-After": "1"})
        return None

    def delay_download(self) -> None:
        """Waits the download delay: the file host's time to the first byte."""
        if self.download_delay_ms:
            time.sleep(self.download_delay_ms / 1000)

    def cut_download(self) -> bool:
        with self._lock:
            return self._rng.random() < self.reset_rate
