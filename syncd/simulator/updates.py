"""The catalogue's update events (`/v2/{images,videos}/updated`, `/v2/editorial/updated`): kept
sorted by time, and answered by bisecting, so that a window of 100,000 events costs a page."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

UPDATE_KINDS = ("addition", "deletion", "edit")
UPDATE_MEDIA_TYPES = ("images", "videos", "editorial/images")
"""The streams that have an updated-media endpoint."""

_EASTERN = timezone(timedelta(hours=-4))

Key = tuple[float, int]


@dataclass(frozen=True)
class Update:
    media_type: str
    media_id: str
    time: datetime
    updates: tuple[str, ...]
    seq: int  # insertion order: the tie-break between equal times

    @property
    def key(self) -> Key:
        return (self.time.timestamp(), self.seq)

    @property
    def updated_time(self) -> str:
        """As the reference's examples render it: `2019-06-04T15:56:44-04:00`."""
        return self.time.astimezone(_EASTERN).isoformat(timespec="seconds")

    def to_api(self) -> dict:
        """An `UpdatedMedia`."""
        return {
            "id": self.media_id,
            "updated_time": self.updated_time,
            "updates": list(self.updates),
        }


@dataclass
class _Stream:
    keys: list[Key] = field(default_factory=list)
    events: list[Update] = field(default_factory=list)
    by_kinds: dict[frozenset[str], tuple[list[Key], list[Update]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """The events of one stream from `lo` (included) to `hi` (excluded), oldest first."""

    keys: list[Key]
    events: list[Update]
    lo: int
    hi: int

    def __len__(self) -> int:
        return self.hi - self.lo

    def ranked(self, first: int, count: int, newest_first: bool) -> list[Update]:
        """`count` events from rank `first` (0: the first in the order asked for)."""
        first = max(0, first)
        last = min(len(self), first + max(0, count))
        if first >= last:
            return []
        if newest_first:
            return self.events[self.hi - last : self.hi - first][::-1]
        return self.events[self.lo + first : self.lo + last]

    def rank_after(self, key: Key, newest_first: bool) -> int:
        """The rank of the first event that comes after `key` in the order asked for."""
        if newest_first:
            return self._clamp(self.hi - bisect.bisect_left(self.keys, key))
        return self._clamp(bisect.bisect_right(self.keys, key) - self.lo)

    def rank_of(self, key: Key, newest_first: bool) -> int:
        """The number of events in the window that come before `key` in that order."""
        if newest_first:
            return self._clamp(self.hi - bisect.bisect_right(self.keys, key))
        return self._clamp(bisect.bisect_left(self.keys, key) - self.lo)

    def _clamp(self, rank: int) -> int:
        return min(max(rank, 0), len(self))


class UpdateLog:
    """Update events per stream, oldest first; not thread-safe (the catalog locks)."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {name: _Stream() for name in UPDATE_MEDIA_TYPES}
        self._seq = 0

    def add(self, media_type: str, media_id: str, time: datetime, updates: Sequence[str]) -> Update:
        stream = self._stream(media_type)
        event = self._event(media_type, media_id, time, updates)
        index = bisect.bisect_right(stream.keys, event.key)
        stream.keys.insert(index, event.key)
        stream.events.insert(index, event)
        stream.by_kinds.clear()
        return event

    def extend(
        self, media_type: str, items: Iterable[tuple[str, datetime, Sequence[str]]]
    ) -> list[Update]:
        """Many events at once: one sort, not an insertion each."""
        stream = self._stream(media_type)
        made = [self._event(media_type, media_id, time, kinds) for media_id, time, kinds in items]
        stream.events.extend(made)
        stream.events.sort(key=lambda event: event.key)
        stream.keys = [event.key for event in stream.events]
        stream.by_kinds.clear()
        return made

    def events(self, media_type: str) -> list[Update]:
        return list(self._stream(media_type).events)

    def window(
        self,
        media_type: str,
        start: datetime,
        end: datetime,
        *,
        end_included: bool = False,
        kinds: Iterable[str] | None = None,
    ) -> Window:
        """The events from `start` (included) to `end`, of any of `kinds` (None: all)."""
        stream = self._stream(media_type)
        keys, events = stream.keys, stream.events
        wanted = frozenset(kinds) if kinds is not None else None
        if wanted is not None and not wanted >= set(UPDATE_KINDS):
            if wanted not in stream.by_kinds:
                chosen = [event for event in events if wanted.intersection(event.updates)]
                stream.by_kinds[wanted] = ([event.key for event in chosen], chosen)
            keys, events = stream.by_kinds[wanted]
        lo = bisect.bisect_left(keys, (start.timestamp(), -1))
        if end_included:
            hi = bisect.bisect_right(keys, (end.timestamp(), math.inf))
        else:
            hi = bisect.bisect_left(keys, (end.timestamp(), -1))
        return Window(keys, events, lo, max(lo, hi))

    def _stream(self, media_type: str) -> _Stream:
        try:
            return self._streams[media_type]
        except KeyError:
            raise ValueError(
                f"{media_type!r} has no updates; one of {', '.join(UPDATE_MEDIA_TYPES)}"
            ) from None

    def _event(
        self, media_type: str, media_id: str, time: datetime, updates: Sequence[str]
    ) -> Update:
        if isinstance(updates, str):
            updates = (updates,)
        unknown = set(updates) - set(UPDATE_KINDS)
        if unknown or not updates:
            raise ValueError(f"updates must be some of {UPDATE_KINDS}, not {tuple(updates)}")
        if time.tzinfo is None:
            raise ValueError(f"updated time {time.isoformat()} has no UTC offset")
        event = Update(media_type, str(media_id), time, tuple(updates), self._seq)
        self._seq += 1
        return event
