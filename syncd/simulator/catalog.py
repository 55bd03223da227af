"""The simulator's dataset: the license history of each stream and the files behind it."""

from __future__ import annotations

import bisect
import copy
import dataclasses
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from syncd.simulator import details as asset_details
from syncd.simulator.subscriptions import Subscription, default_subscriptions, make_subscription
from syncd.simulator.updates import Update, UpdateLog, Window

ACCOUNT_USER = "jsmith"
"""The user the simulator's token belongs to: `team_history=false` lists only theirs."""

ORIGINAL = "original"
"""The size of a file whose license gives no `format.size`."""


@dataclass(frozen=True)
class StreamKind:
    media_key: str  # key of the media object in each history item
    license_prefix: str  # first letter of the stream's license ids
    sizes: tuple[str, ...]  # what a license's format.size may be, most common first
    licenses: tuple[str, ...]  # license names, most common first
    ext: str
    redownload_sizes: tuple[str, ...] | None  # the redownload body's sizes; None: no endpoint
    url_prefix: str = "shutterstock_"  # start of the file name in a download URL


STREAMS = ("images", "videos", "audio", "editorial/images", "editorial/videos")
KINDS = {
    "images": StreamKind(
        "image",
        "i",
        ("huge", "medium", "small", "supersize", "vector"),
        ("standard", "enhanced"),
        ".jpg",
        ("small", "medium", "huge", "supersize", "vector"),
    ),
    "videos": StreamKind(
        "video",
        "v",
        ("hd", "sd", "4k", "web"),
        ("footage_standard", "footage_premier"),
        ".mov",
        ("web", "sd", "hd", "4k"),
        url_prefix="shutterstock_v",
    ),
    "audio": StreamKind(
        "audio",
        "a",
        (ORIGINAL,),
        ("audio_platform", "premier_music_basic"),
        ".mp3",
        (),
    ),
    "editorial/images": StreamKind(
        "image",
        "e",
        (ORIGINAL,),
        ("premier_editorial_all_digital", "premier_editorial_all_media"),
        ".jpg",
        None,
    ),
    "editorial/videos": StreamKind(
        "video",
        "e",
        (ORIGINAL,),
        ("premier_editorial_all_media", "premier_editorial_all_digital"),
        ".mov",
        None,
    ),
}


def file_ext(stream: str, size: str | None) -> str:
    """The suffix of the file the simulator serves for that stream and size."""
    return ".eps" if size == "vector" else KINDS[stream].ext


@dataclass(frozen=True)
class FileKey:
    """One file: licenses for the same asset and size share it."""

    stream: str
    media_id: str
    size: str  # the license's format.size, or ORIGINAL


@dataclass(frozen=True)
class License:
    stream: str
    id: str
    media_id: str
    size: str | None  # format.size; None: absent from the item
    format: str | None  # format.format; None: absent
    download_time: str  # as the API renders it
    time: datetime  # download_time parsed, for ordering
    license: str
    subscription_id: str
    username: str
    metadata: dict = field(hash=False)
    is_downloadable: bool | None  # None: absent from the item
    seq: int  # insertion order, the tie-break between equal download times

    @property
    def file(self) -> FileKey:
        return FileKey(self.stream, self.media_id, self.size or ORIGINAL)

    def to_api(self) -> dict:
        """The item exactly as `DownloadHistory` in the license list."""
        media: dict = {"id": self.media_id}
        known = (("size", self.size), ("format", self.format))
        file_format = {name: value for name, value in known if value is not None}
        if file_format:
            media["format"] = file_format
        item: dict[str, Any] = {
            "id": self.id,
            "user": {"username": self.username},
            "license": self.license,
            "subscription_id": self.subscription_id,
            "download_time": self.download_time,
            "metadata": dict(self.metadata),
            KINDS[self.stream].media_key: media,
        }
        if self.is_downloadable is not None:
            item["is_downloadable"] = self.is_downloadable
        return item


FileSizes = Sequence[int] | Callable[[str, int], int]
"""Byte sizes of generated files: cycled in order, or called with (stream, file index)."""

_FIRST_TIME = datetime(2016, 1, 4, 14, 0, tzinfo=UTC)
LISTINGS_KEPT = 16  # filtered listings cached at once (each query's filter is one)
_EASTERN = timezone(timedelta(hours=-4))


class Catalog:
    """License histories, newest first per stream; thread-safe."""

    def __init__(self, seed: int = 0):
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        # oldest first (a new newest license is appended): history() reverses
        self._history: dict[str, list[License]] = {stream: [] for stream in STREAMS}
        self._newest: datetime | None = None  # the newest download time held
        self._version = 0  # changes with every license added: the listings' cache key
        self._listings: dict[tuple[str, Any], tuple[int, list[License]]] = {}
        self._by_id: dict[str, License] = {}
        self._media_ids: set[tuple[str, str]] = set()
        self._file_sizes: dict[FileKey, int] = {}
        self._seq = 0
        self._seed = seed
        self._details: dict[tuple[str, str], dict] = {}  # set or edited; others generated
        self._deleted: set[tuple[str, str]] = set()
        self._updates = UpdateLog()
        self._now: datetime | None = None
        self._subscriptions = {sub.id: sub for sub in default_subscriptions()}

    # -- reading ---------------------------------------------------------------------------

    def history(self, stream: str) -> list[License]:
        """The stream's licenses, newest first (ties: the later added first)."""
        with self._lock:
            return self._history[stream][::-1]

    def listing(self, stream: str, key: Any, matches: Callable[[License], bool]) -> list[License]:
        """The stream's licenses that ``matches`` keeps, newest first, as ``history`` would
        give them: kept until a license is added, so that paging a long history costs a slice
        per page, not a pass over it. ``key`` names the filter (equal keys, equal filters);
        the caller must not change the list."""
        with self._lock:
            found = self._listings.get((stream, key))
            if found is not None and found[0] == self._version:
                return found[1]
            kept = [lic for lic in reversed(self._history[stream]) if matches(lic)]
            if len(self._listings) >= LISTINGS_KEPT:
                self._listings.clear()
            self._listings[(stream, key)] = (self._version, kept)
            return kept

    def license(self, license_id: str) -> License | None:
        with self._lock:
            return self._by_id.get(license_id)

    def file_size(self, key: FileKey) -> int:
        with self._lock:
            return self._file_sizes[key]

    def files(self) -> dict[FileKey, int]:
        with self._lock:
            return dict(self._file_sizes)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)

    # -- asset details ---------------------------------------------------------------------

    def has_asset(self, media_type: str, media_id: str) -> bool:
        """Whether the catalog knows the asset (licensed, or given details), deleted or not."""
        with self._lock:
            key = (media_type, media_id)
            return key in self._media_ids or key in self._details

    def details(self, media_type: str, media_id: str) -> dict | None:
        """The asset's full view (a copy), as `set_details` or an edit left it, else generated
        from this catalog's seed and the id; None for an asset unknown or deleted."""
        with self._lock:
            if not self.has_asset(media_type, media_id) or self.is_deleted(media_type, media_id):
                return None
            return copy.deepcopy(self._stored_details(media_type, media_id))

    def last_details(self, media_type: str, media_id: str) -> dict | None:
        """As `details`, but a deleted asset's too (what it showed before its deletion)."""
        with self._lock:
            if not self.has_asset(media_type, media_id):
                return None
            return copy.deepcopy(self._stored_details(media_type, media_id))

    def set_details(
        self, media_type: str, media_id: str, details: dict, *, merge: bool = False
    ) -> dict:
        """Replace the asset's details (`merge`: only the keys given); the asset becomes known
        if it was not. `id` is the asset's whatever `details` says. Returns the new details."""
        if media_type not in STREAMS:
            raise ValueError(f"media type must be one of {', '.join(STREAMS)}, not {media_type!r}")
        with self._lock:
            base = self._stored_details(media_type, media_id) if merge else {}
            new = {**copy.deepcopy(base), **copy.deepcopy(details), "id": media_id}
            self._details[(media_type, media_id)] = new
            return copy.deepcopy(new)

    def is_deleted(self, media_type: str, media_id: str) -> bool:
        with self._lock:
            return (media_type, media_id) in self._deleted

    def _stored_details(self, media_type: str, media_id: str) -> dict:
        key = (media_type, media_id)
        if key not in self._details:
            self._details[key] = asset_details.generate(self._seed, media_type, media_id)
        return self._details[key]

    # -- updates ---------------------------------------------------------------------------

    def add_update(
        self,
        media_type: str,
        media_id: str,
        updated_time: datetime | str,
        updates: Sequence[str] = ("edit",),
        *,
        details: dict | None = None,
    ) -> Update:
        """Record an update event of `media_type` (images, videos or editorial/images). It
        takes effect at once, whatever its time: an `edit` with `details` merges them into the
        asset's details, a `deletion` makes the asset deleted (404, left out of detail lists),
        an `addition` brings a deleted asset back."""
        with self._lock:
            event = self._updates.add(media_type, media_id, _update_time(updated_time), updates)
            if details is not None:
                self.set_details(media_type, media_id, details, merge=True)
            self._apply(event)
            return event

    def add_updates(
        self,
        media_type: str,
        items: Iterable[tuple[str, datetime | str] | tuple[str, datetime | str, Sequence[str]]],
    ) -> int:
        """Many update events at once, each `(media_id, updated_time[, updates])` (default
        `("edit",)`), in any order; returns how many. For a benchmark's 100,000."""
        with self._lock:
            made = self._updates.extend(
                media_type,
                (
                    (item[0], _update_time(item[1]), item[2] if len(item) > 2 else ("edit",))
                    for item in items
                ),
            )
            for event in made:
                self._apply(event)
            return len(made)

    def updates(self, media_type: str) -> list[Update]:
        """The stream's update events, oldest first (ties: in the order added)."""
        with self._lock:
            return self._updates.events(media_type)

    def update_window(
        self,
        media_type: str,
        start: datetime,
        end: datetime,
        *,
        end_included: bool = False,
        kinds: Iterable[str] | None = None,
    ) -> Window:
        """The events from `start` (included) to `end` (excluded unless `end_included`) that
        have any of `kinds` (None: every kind)."""
        with self._lock:
            return self._updates.window(
                media_type, start, end, end_included=end_included, kinds=kinds
            )

    def _apply(self, event: Update) -> None:
        key = (event.media_type, event.media_id)
        if "deletion" in event.updates:
            if self.has_asset(*key):
                self._deleted.add(key)
        elif "addition" in event.updates:
            self._deleted.discard(key)

    def is_editorial(self, media_type: str, media_id: str) -> bool:
        """Whether an image or video of the main catalog is editorial: its details say
        `is_editorial`, or `model_released` is code 3 / `EDITORIAL_ONLY` (images) or
        `editorial` (videos), as the guide's "Editorial media licensing" tells."""
        with self._lock:
            if not self.has_asset(media_type, media_id):
                return False
            details = self._stored_details(media_type, media_id)
        released = details.get("model_released")
        if isinstance(released, dict):
            released = released.get("code", released.get("translation_id"))
        return details.get("is_editorial") is True or released in (
            3,
            "3",
            "EDITORIAL_ONLY",
            "editorial",
        )

    # -- subscriptions -----------------------------------------------------------------------

    def subscriptions(self) -> list[Subscription]:
        """The account's subscriptions (copies), in the order added."""
        with self._lock:
            return [dataclasses.replace(sub) for sub in self._subscriptions.values()]

    def subscription(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            sub = self._subscriptions.get(subscription_id)
            return dataclasses.replace(sub) if sub is not None else None

    def add_subscription(
        self, subscription_id: str, *, replace: bool = False, **options: Any
    ) -> Subscription:
        """Add a subscription (`replace`: or replace the one with that id). Options, see
        `subscriptions.make_subscription`: `kind` ("standard", "api", "enterprise"), `media`
        (streams covered), `sizes` (None: all of them), `expires`, `downloads_left`,
        `downloads_limit`, `required_metadata`, `optional_metadata`, `one_per_request` (None:
        only for "api"), `license`, `description`, `allotment_charge` (credits per item)."""
        sub = make_subscription(subscription_id, **options)
        with self._lock:
            if subscription_id in self._subscriptions and not replace:
                raise ValueError(f"subscription {subscription_id} already exists")
            self._subscriptions[subscription_id] = sub
            return dataclasses.replace(sub)

    def remove_subscription(self, subscription_id: str) -> None:
        with self._lock:
            del self._subscriptions[subscription_id]

    def clear_subscriptions(self) -> None:
        """No subscription at all, not even the defaults."""
        with self._lock:
            self._subscriptions.clear()

    def set_downloads_left(self, subscription_id: str, downloads_left: int) -> None:
        with self._lock:
            self._subscriptions[subscription_id].downloads_left = downloads_left

    def take_download(self, subscription_id: str) -> bool:
        """Spend one download of the subscription; False when none is left."""
        with self._lock:
            sub = self._subscriptions[subscription_id]
            if sub.downloads_left < 1:
                return False
            sub.downloads_left -= 1
            return True

    # -- the clock the updated-media endpoints count back from -----------------------------

    def now(self) -> datetime:
        with self._lock:
            return self._now if self._now is not None else datetime.now(UTC)

    def set_now(self, now: datetime | None) -> None:
        """Fix the clock of `interval` (None: the real time again)."""
        with self._lock:
            self._now = _aware(now) if now is not None else None

    # -- writing ---------------------------------------------------------------------------

    def add(
        self,
        stream: str,
        *,
        media_id: str | None = None,
        size: str | None = None,
        license_id: str | None = None,
        license: str | None = None,
        download_time: datetime | str | None = None,
        username: str = ACCOUNT_USER,
        subscription_id: str = "s8906043",
        metadata: dict | None = None,
        is_downloadable: bool | None = True,
        file_size: int | None = None,
        omit_size: bool = False,
    ) -> License:
        """Record a license. Left out: a new id, the stream's usual size (`omit_size`: no
        `format.size` at all), a download time strictly newer than every license held, a file
        size from this catalog's seed. A string `download_time` is served verbatim."""
        kind = KINDS[stream]
        with self._lock:
            time_text, time = self._download_time(download_time)
            size = None if omit_size else size or kind.sizes[0]
            lic = License(
                stream=stream,
                id=license_id or self._new_license_id(kind),
                media_id=media_id or self._new_media_id(stream),
                size=size,
                format=file_ext(stream, size)[1:] if size else None,
                download_time=time_text,
                time=time,
                license=license or kind.licenses[0],
                subscription_id=subscription_id,
                username=username,
                metadata=metadata or {},
                is_downloadable=is_downloadable,
                seq=self._seq,
            )
            if lic.id in self._by_id:
                raise ValueError(f"license {lic.id} already exists")
            self._register_file(lic.file, file_size)
            self._seq += 1
            self._by_id[lic.id] = lic
            self._media_ids.add((stream, lic.media_id))
            bisect.insort(self._history[stream], lic, key=_oldest_first)
            self._newest = time if self._newest is None else max(self._newest, time)
            self._version += 1
            return lic

    def _register_file(self, key: FileKey, file_size: int | None) -> None:
        known = self._file_sizes.get(key)
        if known is not None and file_size is not None and known != file_size:
            raise ValueError(f"{key} already has {known} bytes, not {file_size}")
        if known is None:
            self._file_sizes[key] = file_size or self._rng.randrange(20_000, 1_100_000)

    def _download_time(self, given: datetime | str | None) -> tuple[str, datetime]:
        if isinstance(given, str):
            return given, _aware(datetime.fromisoformat(given))
        if given is None:
            given = (self._newest or _FIRST_TIME) + timedelta(seconds=1)
        return self._render_time(_aware(given)), _aware(given)

    def _render_time(self, time: datetime) -> str:
        """Either shape the API uses, at random: `2016-10-03T15:58:18-04:00` or
        `2020-12-18T02:22:56.000Z`."""
        if self._rng.random() < 0.5:
            return time.astimezone(_EASTERN).isoformat(timespec="seconds")
        return time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def _new_license_id(self, kind: StreamKind) -> str:
        while True:
            if kind.license_prefix == "e":
                candidate = "e" + self._rng.randbytes(17).hex()
            else:
                candidate = f"{kind.license_prefix}{self._rng.randrange(10**9, 10**10)}"
            if candidate not in self._by_id:
                return candidate

    def _new_media_id(self, stream: str) -> str:
        while True:
            candidate = self._random_media_id(stream)
            if (stream, candidate) not in self._media_ids:
                return candidate

    def _random_media_id(self, stream: str) -> str:
        if stream.startswith("editorial/"):
            return f"{self._rng.randrange(10**6, 10**8)}{self._rng.choice(('n', 'a', 'im', 'e'))}"
        digits = {"images": (10**7, 10**10), "videos": (10**6, 10**8), "audio": (10**5, 10**7)}
        return str(self._rng.randrange(*digits[stream]))

    # -- datasets --------------------------------------------------------------------------

    @classmethod
    def example(cls) -> Catalog:
        """CONTRACT section 2's example: 12 licenses, 9 files to fetch by 9 redownloads."""
        catalog = cls(seed=2016)
        add = catalog.add
        add(
            "images",
            license_id="i4117504982",
            media_id="59656357",
            size="huge",
            download_time="2016-10-03T15:58:18-04:00",
            metadata={"purchase_order": "PO-17"},
            file_size=493_811,
        )
        add(
            "images",
            license_id="i4190467223",
            media_id="59656357",
            size="medium",
            download_time="2016-10-03T16:01:12-04:00",
            file_size=141_356,
        )
        add(
            "images",
            license_id="i4388120097",
            media_id="1079756147",
            size="vector",
            license="enhanced",
            download_time="2016-11-21T10:12:40-05:00",
            file_size=87_215,
        )
        add(
            "images",
            license_id="i4511296408",
            media_id="114350371",
            size="small",
            download_time="2016-12-01T08:45:00.000Z",
            file_size=24_576,
        )
        add(
            "images",
            license_id="i5220931177",
            media_id="59656357",
            size="huge",
            download_time="2017-02-14T09:30:00.000Z",
            is_downloadable=None,
        )
        add(
            "images",
            license_id="i5302216985",
            media_id="135658703",
            size="huge",
            download_time="2017-03-02T17:05:09-05:00",
            is_downloadable=False,
            file_size=612_004,
        )
        add(
            "videos",
            license_id="v2604117935",
            media_id="2140697",
            size="sd",
            license="footage_standard",
            download_time="2018-05-14T11:20:31-04:00",
            metadata={"client": "Company A", "job": "Spring campaign"},
            file_size=1_048_576,
        )
        add(
            "videos",
            license_id="v2711930286",
            media_id="3965881",
            size="hd",
            download_time="2018-06-02T22:10:05.000Z",
            file_size=786_431,
        )
        add(
            "videos",
            license_id="v2893310764",
            media_id="5613314",
            size="4k",
            license="footage_premier",
            download_time="2019-01-09T09:00:00-05:00",
            file_size=934_120,
        )
        add(
            "audio",
            license_id="a1193046520",
            media_id="591623",
            download_time="2019-07-30T13:45:12-04:00",
            file_size=402_113,
        )
        add(
            "audio",
            license_id="a1230587731",
            media_id="442583",
            download_time="2020-02-11T07:03:59.000Z",
            file_size=288_760,
        )
        add(
            "editorial/images",
            license_id="e3f0c2a9d1b84e6a9c7d5b3a1f2e4d6c8b",
            media_id="9804979n",
            omit_size=True,
            license="premier_editorial_all_digital",
            download_time="2020-12-18T02:22:56.000Z",
            subscription_id="s9012345",
            is_downloadable=False,
            file_size=153_600,
        )
        return catalog

    @classmethod
    def generate(
        cls,
        seed: int,
        counts: dict[str, int] | None = None,
        sizes: FileSizes | None = None,
        twin_ratio: float = 0.05,
        not_downloadable_ratio: float = 0.05,
        team_users: Sequence[str] = (),
    ) -> Catalog:
        """A catalog deterministic from `seed`: `counts` licenses per stream (default 50 in
        each), some sharing an earlier license's asset and size (`twin_ratio`), some not
        downloadable, some without `is_downloadable`, half by `team_users` when given."""
        catalog = cls(seed=seed)
        counts = {stream: 50 for stream in STREAMS} if counts is None else counts
        _Generator(
            catalog,
            random.Random(seed),
            sizes,
            twin_ratio,
            not_downloadable_ratio,
            tuple(team_users),
        ).run(counts)
        return catalog


def _oldest_first(lic: License) -> tuple[float, int]:
    return (lic.time.timestamp(), lic.seq)


def _update_time(given: datetime | str) -> datetime:
    return _aware(datetime.fromisoformat(given) if isinstance(given, str) else given)


def _aware(time: datetime) -> datetime:
    if time.tzinfo is None:
        raise ValueError(f"download time {time.isoformat()} has no UTC offset")
    return time


@dataclass
class _Generator:
    catalog: Catalog
    rng: random.Random
    sizes: FileSizes | None
    twin_ratio: float
    not_downloadable_ratio: float
    team_users: tuple[str, ...]
    files_made: int = 0

    def run(self, counts: dict[str, int]) -> None:
        time = _FIRST_TIME
        for stream in STREAMS:
            made: list[License] = []
            for _ in range(counts.get(stream, 0)):
                if self.rng.random() >= 0.03:  # a few share the previous download time
                    time += timedelta(seconds=self.rng.randrange(600, 2 * 86400))
                made.append(self._license(stream, time, made))

    def _license(self, stream: str, time: datetime, earlier: list[License]) -> License:
        kind = KINDS[stream]
        twin = self.rng.choice(earlier) if earlier and self.rng.random() < self.twin_ratio else None
        if twin:
            media_id, size, omit_size, file_size = twin.media_id, twin.size, twin.size is None, None
        else:
            media_id = None
            size = self._pick(kind.sizes)
            omit_size = stream.startswith("editorial/") and self.rng.random() < 0.3
            file_size = self._file_size(stream)
        return self.catalog.add(
            stream,
            media_id=media_id,
            size=size,
            omit_size=omit_size,
            license=self._pick(kind.licenses),
            download_time=time,
            username=self._username(),
            subscription_id=f"s{self.rng.randrange(10**7, 10**8)}",
            metadata=self._metadata(),
            is_downloadable=self._is_downloadable(kind),
            file_size=file_size,
        )

    def _pick(self, choices: tuple[str, ...]) -> str:
        """The first choice half of the time, else any."""
        return choices[0] if self.rng.random() < 0.5 else self.rng.choice(choices)

    def _file_size(self, stream: str) -> int:
        index = self.files_made
        self.files_made += 1
        if self.sizes is None:
            return int(20_000 * 50 ** self.rng.random())  # 20 KB to 1 MB, log-uniform
        if callable(self.sizes):
            return self.sizes(stream, index)
        return self.sizes[index % len(self.sizes)]

    def _username(self) -> str:
        if self.team_users and self.rng.random() < 0.5:
            return self.rng.choice(self.team_users)
        return ACCOUNT_USER

    def _metadata(self) -> dict:
        if self.rng.random() < 0.5:
            return {}
        return {"purchase_order": f"PO-{self.rng.randrange(1, 10_000)}", "client": "Company A"}

    def _is_downloadable(self, kind: StreamKind) -> bool | None:
        roll = self.rng.random()
        if roll < 0.1:
            return None
        if kind.redownload_sizes is None or roll < 0.1 + self.not_downloadable_ratio:
            return False
        return True
