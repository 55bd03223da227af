"""Relicensing (``sync.relicense``, CONTRACT section 5): buying a new license for what cannot
be redownloaded, the most careful code in syncd, because it spends the company's credits.

- Only what truly cannot be redownloaded (``is_downloadable: false``, editorial media), never
  as a fallback after a failed redownload, never another size than the license's.
- A subscription from ``GET /v2/user/subscriptions`` whose formats cover the media type and
  size, not expired, with downloads left, nearest expiry first (or the one pinned by
  ``relicense.subscription_id``).
- Budgets: a run never spends more than ``sync.relicense_budget`` credits, a UTC day never
  more than ``relicense.daily_budget``; what is over them stays queued (``unavailable``,
  reason ``budget``, queued again by the next run with relicensing on).
- **Never twice.** The API has no idempotency key, so every request rests on an intent in the
  database, one per need (media type, media id, size): it is claimed (``sending``, by one
  conditional update that only one process can win) and committed before the request is sent;
  the request is never retried; no answer (a timeout, a reset, a crash) leaves it ``unknown``,
  and an unknown intent is settled from the license history (that media id licensed since the
  intent was made) before anything is sent for that need again. Unknown and sending intents
  count as spent.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, sessionmaker

from syncd.api.client import ApiClient, ApiError, api_moment
from syncd.api.records import LicenseRecord, MalformedResponse, parse_license_page, parse_time
from syncd.config import Config
from syncd.db import ledger
from syncd.db.models import RelicenseIntent
from syncd.streams import LicenseStream

log = structlog.get_logger("syncd.relicense")

PLANNED, SENDING, CONFIRMED = "planned", "sending", "confirmed"
FAILED, UNKNOWN = "failed", "unknown"
SPENT = (SENDING, CONFIRMED, UNKNOWN)  # what counts against the budgets
CREDITS_PER_ITEM = 1  # what one item is expected to cost until the answer says
SETTLE_MARGIN = timedelta(minutes=5)  # clocks of syncd and the API may differ this much

# the licensing endpoint, the list key of its body and the id key of each item
ENDPOINTS: dict[str, tuple[str, str, str]] = {
    "images": ("images/licenses", "images", "image_id"),
    "videos": ("videos/licenses", "videos", "video_id"),
    "audio": ("audio/licenses", "audio", "audio_id"),
    "editorial/images": ("editorial/images/licenses", "editorial", "editorial_id"),
    "editorial/videos": ("editorial/videos/licenses", "editorial", "editorial_id"),
}
# the id filter of each license history (GET /v2/{media}/licenses), where there is one
HISTORY_FILTER = {"images": "image_id", "videos": "video_id", "audio": "audio_id"}
# the media types a subscription's formats name
FORMAT_MEDIA = {
    "images": ("image",),
    "videos": ("video", "footage"),
    "audio": ("audio",),
    "editorial/images": ("editorial", "image"),
    "editorial/videos": ("editorial", "video", "footage"),
}


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def utc_day(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")


# --- subscriptions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    id: str
    license: str | None
    description: str | None
    expires: datetime | None
    downloads_left: int | None
    formats: tuple[tuple[str, str], ...]  # (media_type, size) as the API writes them
    metadata: Mapping[str, Any]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def api(self) -> bool:
        """An API subscription (the guide: price and metadata.customer_id in every request,
        one image per request)."""
        words = f"{self.license or ''} {self.description or ''}".lower()
        return "api" in words.replace("_", " ").split()

    def required_metadata(self) -> list[str]:
        """The metadata fields the subscription requires in each licensing request."""
        fields = self.metadata.get("required") if isinstance(self.metadata, Mapping) else None
        if isinstance(fields, list):
            return [f for f in fields if isinstance(f, str)]
        return [
            name
            for name, spec in (self.metadata or {}).items()
            if isinstance(spec, Mapping) and spec.get("is_required") is True
        ]

    def covers(self, media_type: str, size: str) -> bool:
        kinds = FORMAT_MEDIA[media_type]
        return any(
            kind in kinds and (fmt_size == size or size == "original")
            for kind, fmt_size in self.formats
        )


def parse_subscriptions(document: Any) -> list[Subscription]:
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise MalformedResponse("the subscription list has no 'data' array")
    found = []
    for item in document["data"]:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise MalformedResponse(f"a subscription without an id: {str(item)[:60]!r}")
        allotment: dict[str, Any] = (
            item["allotment"] if isinstance(item.get("allotment"), dict) else {}
        )
        left = allotment.get("downloads_left")
        metadata: dict[str, Any] = (
            item["metadata"] if isinstance(item.get("metadata"), dict) else {}
        )
        counted = isinstance(left, int) and not isinstance(left, bool)
        expires = item.get("expiration_time")
        formats = []
        for fmt in item.get("formats") or []:
            if isinstance(fmt, dict):
                kind = str(fmt.get("media_type") or "").lower()
                formats.append((kind, str(fmt.get("size") or "")))
        found.append(
            Subscription(
                id=item["id"],
                license=item.get("license") if isinstance(item.get("license"), str) else None,
                description=item.get("description")
                if isinstance(item.get("description"), str)
                else None,
                expires=parse_time(expires) if isinstance(expires, str) and expires else None,
                downloads_left=left if counted else None,
                formats=tuple(formats),
                metadata=metadata,
                raw=item,
            )
        )
    return found


class NoSubscription(Exception):
    """No subscription can license this need: the reason says why."""


def choose_subscription(
    subscriptions: Iterable[Subscription],
    media_type: str,
    size: str,
    pinned: str | None,
    left: Mapping[str, int],
    now: datetime,
) -> Subscription:
    """The pinned subscription, or of those whose formats cover the media type and size, not
    expired and with downloads left (``left``: downloads left as this run counts them), the
    one that expires first."""
    candidates = list(subscriptions)
    if pinned is not None:
        candidates = [s for s in candidates if s.id == pinned]
        if not candidates:
            raise NoSubscription(f"relicense.subscription_id {pinned} is not among the account's")
    usable = []
    for sub in candidates:
        if not sub.covers(media_type, size):
            continue
        if sub.expires is not None and sub.expires <= now:
            continue
        remaining = left.get(sub.id, sub.downloads_left)
        if remaining is not None and remaining <= 0:
            continue
        usable.append(sub)
    if not usable:
        where = f"subscription {pinned}" if pinned else "no subscription of the account"
        raise NoSubscription(
            f"{where} covers {media_type} size {size} with downloads left and unexpired"
        )
    far = datetime.max.replace(tzinfo=UTC)
    return min(usable, key=lambda s: (s.expires or far, s.id))


# --- the request body -------------------------------------------------------------------------


class CannotLicense(Exception):
    """This need cannot be licensed as configured (a missing setting): the reason says which."""


def is_editorial_asset(media_type: str, details: Mapping[str, Any] | None) -> bool:
    """An image or video of the ordinary catalogue that is editorial (the guide: an image's
    ``model_released`` code 3 / EDITORIAL_ONLY, a video's ``editorial``)."""
    if not details:
        return False
    if details.get("is_editorial") is True:
        return True
    released = details.get("model_released")
    if isinstance(released, dict):
        return released.get("code") == 3 or released.get("translation_id") == "EDITORIAL_ONLY"
    return isinstance(released, str) and released.lower() in ("editorial", "editorial_only")


def request_for(
    config: Config,
    stream: LicenseStream,
    media_id: str,
    size: str,
    subscription: Subscription,
    details: Mapping[str, Any] | None,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The licensing request for one need: (path, query, body), as the guide and the
    reference require."""
    settings = config.relicense
    path, list_key, id_key = ENDPOINTS[stream.media_type]
    item: dict[str, Any] = {id_key: media_id}
    query: dict[str, Any] = {}
    metadata: dict[str, Any] = dict(settings.metadata or {})
    if settings.customer_id is not None:
        metadata["customer_id"] = settings.customer_id
    if stream.media_type.startswith("editorial/"):
        if settings.editorial_license is None:
            raise CannotLicense(
                "editorial relicensing needs relicense.editorial_license (e.g. "
                "premier_editorial_all_digital)"
            )
        item["license"] = settings.editorial_license
        if size != "original":
            item["size"] = size
        if metadata:
            item["metadata"] = metadata
        return path, query, {"country": config.updates.country, list_key: [item]}
    if stream.media_type == "audio":
        item["license"] = settings.audio_license
        return path, {"subscription_id": subscription.id}, {list_key: [item]}
    # images and videos
    item["subscription_id"] = subscription.id
    if size != "original":
        item["size"] = size
    query["subscription_id"] = subscription.id
    if subscription.api:
        if settings.customer_id is None:
            raise CannotLicense(
                f"subscription {subscription.id} is an API subscription: it needs "
                "relicense.customer_id (metadata.customer_id) and relicense.price"
            )
        item["price"] = settings.price
    missing = [f for f in subscription.required_metadata() if f not in metadata]
    if missing:
        raise CannotLicense(
            f"subscription {subscription.id} requires the metadata fields "
            f"{', '.join(missing)}: set them in relicense.metadata"
        )
    if metadata:
        item["metadata"] = metadata
    if is_editorial_asset(stream.media_type, details):
        item["editorial_acknowledgement"] = True
    return path, query, {list_key: [item]}


@dataclass(frozen=True)
class Licensed:
    url: str
    credits: int
    new_license_id: str | None


class ItemRefused(Exception):
    """The answer's item carries an ``error``: nothing was licensed."""


def parse_result(document: Any, id_key: str, media_id: str) -> Licensed:
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise MalformedResponse("the licensing answer has no 'data' array")
    for item in document["data"]:
        if not isinstance(item, dict) or str(item.get(id_key)) != media_id:
            continue
        if item.get("error"):
            raise ItemRefused(str(item["error"])[:300])
        download = item.get("download")
        url = download.get("url") if isinstance(download, dict) else None
        if not isinstance(url, str) or not url:
            raise MalformedResponse("the licensed item has no download.url")
        charge = item.get("allotment_charge")
        credits = charge if isinstance(charge, int) and not isinstance(charge, bool) else 1
        new_id = item.get("license_id")
        return Licensed(url, credits, new_id if isinstance(new_id, str) else None)
    errors = document.get("errors")
    if errors:
        raise ItemRefused(str(errors)[:300])
    raise MalformedResponse(f"the licensing answer does not mention {media_id}")


# --- intents ----------------------------------------------------------------------------------


class Budget:
    """What this run may still spend: the run's budget, and the day's across every process
    (counted from the intents in the database when asked)."""

    def __init__(self, run_budget: int, daily_budget: int | None):
        self.run_budget = run_budget
        self.daily_budget = daily_budget
        self.reserved = 0  # credits this run has set aside (intents it sends)
        self.pending = 0  # of those, what no intent in the database counts yet
        self._lock = threading.Lock()

    def reserve(self, session: Session, credits: int) -> str | None:
        """Sets ``credits`` aside, or says why not (None: reserved)."""
        with self._lock:
            if self.reserved + credits > self.run_budget:
                return (
                    f"budget: sync.relicense_budget of {self.run_budget} credits for this run "
                    "is spent"
                )
            if self.daily_budget is not None:
                spent = spent_on(session, utc_day()) + self.pending
                if spent + credits > self.daily_budget:
                    return (
                        f"budget: relicense.daily_budget of {self.daily_budget} credits for "
                        f"{utc_day()} (UTC) is spent"
                    )
            self.reserved += credits
            self.pending += credits
            return None

    def claimed(self, credits: int) -> None:
        """``credits`` reserved are now in an intent that the day's count reads."""
        with self._lock:
            self.pending = max(0, self.pending - credits)

    def release(self, credits: int, claimed: bool = False) -> None:
        """``credits`` reserved will not be spent (``claimed``: their intent failed)."""
        with self._lock:
            self.reserved = max(0, self.reserved - credits)
            if not claimed:
                self.pending = max(0, self.pending - credits)

    def correct(self, reserved: int, spent: int) -> None:
        """``reserved`` credits were set aside and ``spent`` were charged."""
        with self._lock:
            self.reserved = max(0, self.reserved - reserved + spent)


def spent_on(session: Session, day: str) -> int:
    """Credits spent (or that may have been: sending, unknown) on one UTC day."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(RelicenseIntent.credits), 0)).where(
                RelicenseIntent.day == day, RelicenseIntent.state.in_(SPENT)
            )
        )
        or 0
    )


class Relicenser:
    """Licenses needs through their intents; each step is its own short transaction (the
    workers call it from their threads)."""

    def __init__(
        self,
        config: Config,
        client: ApiClient,
        sessions: sessionmaker[Session],
        run_id: int | None,
        budget: Budget,
    ):
        self.config = config
        self.client = client
        self.sessions = sessions
        self.run_id = run_id
        self.budget = budget
        self.owner = owner_name()
        self._subscriptions: list[Subscription] | None = None
        self._left: dict[str, int] = {}
        self._lock = threading.Lock()
        self._charges: dict[str, int] = {}  # per subscription: the most one item cost
        self._charges_lock = threading.Lock()
        self._gates: dict[str, threading.Lock] = {}

    # --- choosing, in the main thread -------------------------------------------------------

    def subscriptions(self) -> list[Subscription]:
        with self._lock:
            if self._subscriptions is None:
                document = self.client.request("GET", "/v2/user/subscriptions")
                try:
                    self._subscriptions = parse_subscriptions(document)
                except MalformedResponse as exc:
                    raise ApiError(f"GET /v2/user/subscriptions: {exc}") from None
                self._left = {
                    s.id: s.downloads_left
                    for s in self._subscriptions
                    if s.downloads_left is not None
                }
            return self._subscriptions

    def choose(self, media_type: str, size: str) -> Subscription:
        subs = self.subscriptions()
        with self._lock:
            chosen = choose_subscription(
                subs,
                media_type,
                size,
                self.config.relicense.subscription_id,
                self._left,
                datetime.now(UTC),
            )
            if chosen.id in self._left:
                self._left[chosen.id] -= 1
            return chosen

    # --- sending, in a worker --------------------------------------------------------------

    def expected_charge(self, session: Session, subscription_id: str) -> int:
        """What one item is expected to cost on a subscription: the most an answer of this
        run, or a confirmed intent in the database, said it cost (at least one credit), so
        that a subscription that charges more per item cannot overrun a budget twice."""
        with self._charges_lock:
            known = self._charges.get(subscription_id)
        if known is None:
            known = int(
                session.scalar(
                    select(func.coalesce(func.max(RelicenseIntent.credits), 0)).where(
                        RelicenseIntent.subscription_id == subscription_id,
                        RelicenseIntent.state == CONFIRMED,
                    )
                )
                or 0
            )
            with self._charges_lock:
                known = max(known, self._charges.get(subscription_id, 0))
                self._charges[subscription_id] = known
        return max(CREDITS_PER_ITEM, known)

    def charge_gate(self, subscription_id: str) -> threading.Lock | None:
        """The lock that keeps a subscription's requests one at a time while no answer has
        said what its items cost; None once one has."""
        with self._charges_lock:
            if self._charges.get(subscription_id, 0) > 0:
                return None
            return self._gates.setdefault(subscription_id, threading.Lock())

    def known_charge(self, subscription_id: str) -> int:
        """The most an item of the subscription cost as far as this run knows (no query)."""
        with self._charges_lock:
            return max(CREDITS_PER_ITEM, self._charges.get(subscription_id, 0))

    def charged(self, subscription_id: str, expected: int, credits: int) -> None:
        """An answer's ``allotment_charge``: the run's budget counts what was spent, and the
        subscription's next items are expected to cost as much."""
        self.budget.correct(expected, credits)
        with self._charges_lock:
            self._charges[subscription_id] = max(self._charges.get(subscription_id, 0), credits)

    def claim(
        self,
        stream: LicenseStream,
        media_id: str,
        size: str,
        license_id: str,
        sub: str,
        credits: int = CREDITS_PER_ITEM,
    ) -> bool:
        """Makes the need's intent ``sending`` for this process, committed; False when another
        run holds it (sending, confirmed or unknown)."""
        now = ledger.utcnow()
        with self.sessions() as session:
            session.execute(
                ledger.insert(session, RelicenseIntent)
                .values(
                    media_type=stream.media_type,
                    media_id=media_id,
                    size=size,
                    state=PLANNED,
                    license_id=license_id,
                    subscription_id=sub,
                    credits=credits,
                    attempts=0,
                    created_at=now,
                    run_id=self.run_id,
                )
                .on_conflict_do_nothing()
            )
            result: Any = session.execute(
                ledger.table(RelicenseIntent)
                .update()
                .where(
                    and_(
                        RelicenseIntent.media_type == stream.media_type,
                        RelicenseIntent.media_id == media_id,
                        RelicenseIntent.size == size,
                        RelicenseIntent.state.in_((PLANNED, FAILED)),
                    )
                )
                .values(
                    state=SENDING,
                    owner=self.owner,
                    run_id=self.run_id,
                    subscription_id=sub,
                    license_id=license_id,
                    credits=credits,
                    day=utc_day(),
                    sent_at=now,
                    created_at=now,
                    attempts=RelicenseIntent.attempts + 1,
                    error=None,
                )
            )
            claimed = int(result.rowcount)
            session.commit()
        return claimed == 1

    def settle(self, stream: LicenseStream, media_id: str, size: str, state: str, **values) -> None:
        with self.sessions() as session:
            session.execute(
                ledger.table(RelicenseIntent)
                .update()
                .where(
                    RelicenseIntent.media_type == stream.media_type,
                    RelicenseIntent.media_id == media_id,
                    RelicenseIntent.size == size,
                )
                .values(state=state, settled_at=ledger.utcnow(), **values)
            )
            session.commit()


# --- settling what an earlier run left unknown ------------------------------------------------


def process_gone(owner: str | None) -> bool:
    """Whether the process that was sending an intent is gone (this host only; an intent of
    another host is left to it unless it is old)."""
    from syncd.db.lease import process_alive

    if not owner or ":" not in owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return False
    try:
        return not process_alive(int(pid))
    except ValueError:
        return True


def settle_unknown(
    session: Session,
    client: ApiClient,
    streams: Mapping[str, LicenseStream],
    record: Callable[[Session, list], list],
    stale_after: timedelta = timedelta(hours=1),
) -> tuple[int, int]:
    """Every ``unknown`` intent (and every ``sending`` one whose process is gone, or older than
    ``stale_after``) is settled from the license history: licensed since the intent was made
    -> ``confirmed`` (the license is recorded, so the file is fetched by redownload);
    otherwise -> ``failed`` (nothing was charged: it may be sent again). Returns (confirmed,
    failed). An intent whose history cannot be read stays as it is."""
    confirmed = failed = 0
    now = ledger.utcnow()
    rows = list(
        session.scalars(
            select(RelicenseIntent).where(RelicenseIntent.state.in_((UNKNOWN, SENDING)))
        )
    )
    for intent in rows:
        if intent.media_type not in streams:
            continue
        if intent.state == SENDING:
            started = intent.sent_at or intent.created_at
            if not process_gone(intent.owner) and now - started < stale_after:
                continue  # another process is sending it now
        stream = streams[intent.media_type]
        since = (intent.created_at - SETTLE_MARGIN).replace(tzinfo=UTC)
        try:
            found = _licensed_since(client, stream, intent.media_id, since)
        except ApiError as exc:
            log.warning("relicense.unsettled", media_id=intent.media_id, error=str(exc))
            continue
        if found:
            intent.state = CONFIRMED
            intent.new_license_id = found[0].license_id
            intent.settled_at = now
            record(session, found)
            confirmed += 1
            log.info(
                "relicense.settled",
                media_type=intent.media_type,
                media_id=intent.media_id,
                outcome="licensed",
                license_id=found[0].license_id,
            )
        else:
            intent.state = FAILED
            intent.error = "no license in the history since the request: nothing was charged"
            intent.settled_at = now
            failed += 1
            log.info(
                "relicense.settled",
                media_type=intent.media_type,
                media_id=intent.media_id,
                outcome="not licensed",
            )
        session.commit()
    return confirmed, failed


def new_license_record(
    client: ApiClient,
    stream: LicenseStream,
    media_id: str,
    since: datetime,
    license_id: str | None,
) -> LicenseRecord | None:
    """The license a confirmed licensing request made, as the license history shows it (so
    that it is recorded like any other): the one with ``license_id`` when the answer named it,
    else the newest of the asset's licenses since ``since``. None when the history does not
    show it (yet)."""
    found = _licensed_since(client, stream, media_id, since - SETTLE_MARGIN)
    if license_id is not None:
        return next((lic for lic in found if lic.license_id == license_id), None)
    return max(found, key=lambda lic: lic.download_time, default=None)


def _licensed_since(client: ApiClient, stream: LicenseStream, media_id: str, since: datetime):
    params: dict[str, Any] = {"sort": "newest", "per_page": 200, "start_date": api_moment(since)}
    if stream.media_type in HISTORY_FILTER:
        params[HISTORY_FILTER[stream.media_type]] = media_id
    found = []
    for page in range(1, 51):
        params["page"] = page
        document = client.request("GET", f"/v2/{stream.path}/licenses", params=params)
        try:
            listed = parse_license_page(document, stream.media_type, stream.media_key)
        except MalformedResponse as exc:
            raise ApiError(f"GET /v2/{stream.path}/licenses: {exc}") from None
        found += [
            lic
            for lic in listed.licenses
            if lic.media_id == media_id and lic.download_time >= since
        ]
        if len(listed.licenses) < (listed.per_page or 200):
            break
    return found
