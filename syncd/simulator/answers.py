"""What the simulator sends back: a status, headers and a body of known length."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from syncd.simulator.faults import Hold


@dataclass(frozen=True)
class Answer:
    status: int
    body: Iterable[bytes]
    length: int
    headers: dict[str, str] = field(default_factory=dict)
    cut: Literal["reset", "truncate"] | None = None
    """`reset`: close the connection without answering; `truncate`: send the headers and half
    the body, then reset."""
    hold: Hold | None = None
    """Set: the answer is ready (its effects done) but waits for the hold to let it go."""


def json_answer(status: int, payload: object, headers: dict[str, str] | None = None) -> Answer:
    return raw_answer(status, json.dumps(payload).encode(), "application/json", headers)


def raw_answer(
    status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> Answer:
    return Answer(status, (body,), len(body), {"Content-Type": content_type, **(headers or {})})


def error_answer(status: int, message: str, path: str | None = None) -> Answer:
    """The reference's `Error` body; with `path`, also the list of errors a 400 carries."""
    payload: dict = {"message": message}
    if path is not None:
        payload["errors"] = [{"code": "VALIDATION_ERROR", "message": message, "path": path}]
    return json_answer(status, payload)
