"""The licensing endpoints, `POST /v2/{stream}/licenses`: the body checked by the guide's and
the reference's rules (seed 002 "Licensing media", "Request metadata", "Editorial media
licensing"; reference v1.0.30 `LicenseImageRequest`, `LicenseVideoRequest`,
`LicenseAudioRequest`, `LicenseEditorialContentRequest`), then each item granted: a new
license in the stream's history and one download of its subscription spent."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.simulator.api import BadRequest, QueryArgs
from syncd.simulator.catalog import KINDS, Catalog, License
from syncd.simulator.subscriptions import Subscription

BODY_KEY = {
    "images": "images",
    "videos": "videos",
    "audio": "audio",
    "editorial/images": "editorial",
    "editorial/videos": "editorial",
}
ITEM_ID = {
    "images": "image_id",
    "videos": "video_id",
    "audio": "audio_id",
    "editorial/images": "editorial_id",
    "editorial/videos": "editorial_id",
}
"""The id key of a body item, and of a result item (`LicenseImageResult.image_id`, ...,
`LicenseEditorialContentResult.editorial_id`)."""

REQUEST_SIZES = {  # the reference's enums of the request's `size`
    "images": ("small", "medium", "huge", "vector", "custom"),
    "videos": ("web", "sd", "hd", "4k"),
    "editorial/images": ("small", "medium", "original"),
    "editorial/videos": ("original",),
}
DEFAULT_SIZE = {  # the reference's defaults
    "images": "huge",
    "videos": "web",
    "editorial/images": "original",
    "editorial/videos": "original",
}
IMAGE_FORMATS = ("jpg", "eps")
AUDIO_LICENSES = (
    "audio_platform",
    "premier_music_basic",
    "premier_music_extended",
    "premier_music_pro",
    "premier_music_comp",
)
EDITORIAL_VIDEO_LICENSES = (
    "premier_editorial_video_digital_only",
    "premier_editorial_video_all_media",
    "premier_editorial_video_all_media_single_territory",
    "premier_editorial_video_comp",
)
MAX_METADATA_FIELDS = 4  # LicenseRequestMetadata.maxProperties; the guide: "up to 4"
SANDBOX_STREAMS = ("images", "videos")  # the guide: audio and editorial fail in the sandbox
_COUNTRY = re.compile(r"[A-Za-z]{3}|[A-Za-z]{2}")


@dataclass(frozen=True)
class Wanted:
    """One body item that passed every rule."""

    index: int
    media_id: str
    subscription: Subscription
    size: str | None  # None: audio, which has no size
    license: str
    metadata: dict


@dataclass(frozen=True)
class Grant:
    """One credit-spending outcome, in the simulator's ledger."""

    stream: str
    media_id: str
    subscription_id: str
    license_id: str | None  # None in the sandbox, which licenses nothing
    credits: int
    sandbox: bool


@dataclass(frozen=True)
class Outcome:
    wanted: Wanted
    license: License | None
    credits: int
    error: str | None  # set: this item failed, the others did not


@dataclass(frozen=True)
class LicenseRequest:
    """A licensing POST as received: its query, its body parsed (None: not JSON), and what
    came of it (`status` 400 with `error`, or 200 with its grants and per-item errors)."""

    stream: str
    query: dict[str, list[str]]
    body: Any
    status: int
    error: str | None
    grants: tuple[Grant, ...]
    item_errors: tuple[str, ...]


def parsed_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def parse_request(
    catalog: Catalog, stream: str, query: dict[str, list[str]], body: bytes, now: datetime
) -> list[Wanted]:
    """The items to grant, or BadRequest for the first rule the request breaks."""
    payload = parsed_body(body)
    if not isinstance(payload, dict):
        raise BadRequest("body", "The body must be a JSON object")
    key = BODY_KEY[stream]
    items = payload.get(key)
    if not isinstance(items, list) or not items:
        raise BadRequest(key, f"{key} is required: a list of one or more items")
    args = QueryArgs(query)
    if stream.startswith("editorial/"):
        _check_country(payload.get("country"))
    rules = _Rules(catalog, stream, args, now)
    wanted = [rules.item(index, item) for index, item in enumerate(items)]
    if len(wanted) > 1:
        for one in wanted:
            if one.subscription.one_per_request:
                raise BadRequest(
                    key,
                    f"Subscription {one.subscription.id} licenses one item per request, "
                    f"not {len(wanted)}",
                )
    return wanted


def _check_country(country: object) -> None:
    if country is None or country == "":
        raise BadRequest("country", "country is required for editorial licensing")
    if not isinstance(country, str) or not _COUNTRY.fullmatch(country):
        raise BadRequest("country", f"country must be an ISO 3166 code, not {country!r}")


class _Rules:
    def __init__(self, catalog: Catalog, stream: str, args: QueryArgs, now: datetime):
        self.catalog = catalog
        self.stream = stream
        self.now = now
        self.key = BODY_KEY[stream]
        self.query_subscription = args.text("subscription_id")
        if stream in ("images", "videos"):
            self.query_size = args.choice("size", (DEFAULT_SIZE[stream], *REQUEST_SIZES[stream]))
        if stream == "images":
            self.query_format = args.choice("format", IMAGE_FORMATS)
        self.query_license = args.text("license") if stream == "audio" else None
        if self.query_license is not None and self.query_license not in AUDIO_LICENSES:
            raise BadRequest("license", _one_of("license", AUDIO_LICENSES, self.query_license))

    def item(self, index: int, item: object) -> Wanted:
        at = f"{self.key}[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(at, f"{at} must be an object")
        id_key = ITEM_ID[self.stream]
        media_id = item.get(id_key)
        if not isinstance(media_id, str) or not media_id:
            raise BadRequest(f"{at}.{id_key}", f"{at}.{id_key} is required")
        metadata = item.get("metadata", {})
        if not isinstance(metadata, dict):
            raise BadRequest(f"{at}.metadata", f"{at}.metadata must be an object")
        if len(metadata) > MAX_METADATA_FIELDS:
            raise BadRequest(
                f"{at}.metadata", f"{at}.metadata has {len(metadata)} fields, at most 4 allowed"
            )
        if self.stream == "audio":
            size, license_name = None, self._audio_license(at, item)
        elif self.stream.startswith("editorial/"):
            size, license_name = self._size(at, item), self._editorial_license(at, item)
        else:
            size, license_name = self._size(at, item), ""
            self._check_main_fields(at, item)
        subscription = self._subscription(at, item, size)
        if self.stream in ("images", "videos"):
            license_name = subscription.license
            self._check_api_rules(at, item, subscription, metadata)
            self._check_editorial_acknowledgement(at, item, media_id)
        if self.stream != "audio":
            self._check_enterprise_rules(at, subscription, metadata)
        return Wanted(index, media_id, subscription, size, license_name, dict(metadata))

    def _size(self, at: str, item: dict) -> str:
        default = self.query_size if self.stream in ("images", "videos") else None
        size = item.get("size", default) or DEFAULT_SIZE[self.stream]
        sizes = REQUEST_SIZES[self.stream]
        if size not in sizes:
            raise BadRequest(f"{at}.size", _one_of(f"{at}.size", sizes, size))
        return size

    def _check_main_fields(self, at: str, item: dict) -> None:
        if self.stream == "images":
            file_format = item.get("format", self.query_format)
            if file_format not in IMAGE_FORMATS:
                raise BadRequest(
                    f"{at}.format", _one_of(f"{at}.format", IMAGE_FORMATS, file_format)
                )
        price = item.get("price")
        if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))):
            raise BadRequest(f"{at}.price", f"{at}.price must be a number, not {price!r}")
        acknowledged = item.get("editorial_acknowledgement")
        if acknowledged is not None and not isinstance(acknowledged, bool):
            raise BadRequest(
                f"{at}.editorial_acknowledgement", f"{at}.editorial_acknowledgement must be true"
            )

    def _audio_license(self, at: str, item: dict) -> str:
        name = item.get("license", self.query_license)
        if name is None or name == "":
            raise BadRequest(
                f"{at}.license", f"{at}.license (or the license query parameter) is required"
            )
        if name not in AUDIO_LICENSES:
            raise BadRequest(f"{at}.license", _one_of(f"{at}.license", AUDIO_LICENSES, name))
        return name

    def _editorial_license(self, at: str, item: dict) -> str:
        name = item.get("license")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"{at}.license", f"{at}.license is required for editorial licensing")
        if self.stream == "editorial/videos" and name not in EDITORIAL_VIDEO_LICENSES:
            raise BadRequest(
                f"{at}.license", _one_of(f"{at}.license", EDITORIAL_VIDEO_LICENSES, name)
            )
        return name

    def _subscription(self, at: str, item: dict, size: str | None) -> Subscription:
        if self.stream in ("images", "videos"):
            given = item.get("subscription_id", self.query_subscription)
            if given is None:
                # the guide: without one, the API subscription nearest its expiry
                subscription = _choose(self.catalog, self.stream, self.now, kinds=("api",))
                if subscription is None:
                    raise BadRequest(
                        f"{at}.subscription_id",
                        "subscription_id is required: the account has no API subscription "
                        f"for {self.stream}",
                    )
            else:
                found = self.catalog.subscription(given) if isinstance(given, str) else None
                if found is None:
                    raise BadRequest(f"{at}.subscription_id", f"Unknown subscription {given!r}")
                subscription = found
        else:  # no subscription_id in these bodies: the account's own
            chosen = _choose(self.catalog, self.stream, self.now)
            if chosen is None:
                raise BadRequest(self.key, f"No subscription licenses {self.stream}")
            subscription = chosen
        where = f"{at}.subscription_id"
        if self.stream not in subscription.media:
            raise BadRequest(
                where, f"Subscription {subscription.id} does not license {self.stream}"
            )
        if subscription.is_expired(self.now):
            raise BadRequest(
                where,
                f"Subscription {subscription.id} expired on "
                f"{subscription.expiration_time.isoformat(timespec='seconds')}",
            )
        if subscription.downloads_left < 1:
            raise BadRequest(where, f"Subscription {subscription.id} has no downloads left")
        if not subscription.covers(self.stream, size):
            raise BadRequest(
                f"{at}.size", f"Subscription {subscription.id} does not cover the size {size}"
            )
        return subscription

    def _check_api_rules(self, at: str, item: dict, sub: Subscription, metadata: dict) -> None:
        """The guide: "If you are using an API subscription, you must include the price and
        metadata.customer_id fields in the request body"."""
        if sub.kind != "api":
            return
        if item.get("price") is None:
            raise BadRequest(f"{at}.price", f"{at}.price is required by API subscription {sub.id}")
        if "customer_id" not in metadata:
            raise BadRequest(
                f"{at}.metadata.customer_id",
                f"{at}.metadata.customer_id is required by API subscription {sub.id}",
            )

    def _check_enterprise_rules(self, at: str, sub: Subscription, metadata: dict) -> None:
        """The guide: "you must pass an empty or non-empty value for each field that your
        integration requires"."""
        if sub.kind != "enterprise":
            return
        for name in sub.required_metadata:
            if name not in metadata:
                raise BadRequest(
                    f"{at}.metadata.{name}",
                    f"{at}.metadata.{name} is required by subscription {sub.id}",
                )

    def _check_editorial_acknowledgement(self, at: str, item: dict, media_id: str) -> None:
        if item.get("editorial_acknowledgement") is True:
            return
        if self.catalog.is_editorial(self.stream, media_id):
            raise BadRequest(
                f"{at}.editorial_acknowledgement",
                f"{media_id} is editorial: {at}.editorial_acknowledgement must be true",
            )


def _choose(
    catalog: Catalog, stream: str, now: datetime, kinds: tuple[str, ...] | None = None
) -> Subscription | None:
    """The subscription used when none is named: of those licensing `stream`, the usable one
    nearest its expiry (else the nearest, so that the request is refused for its reason)."""
    candidates = [
        sub
        for sub in catalog.subscriptions()
        if stream in sub.media and (kinds is None or sub.kind in kinds)
    ]
    usable = [sub for sub in candidates if not sub.is_expired(now) and sub.downloads_left > 0]
    pool = usable or candidates
    return min(pool, key=lambda sub: sub.expiration_time) if pool else None


def _one_of(name: str, choices: tuple[str, ...], given: object) -> str:
    return f"{name} must be one of {', '.join(choices)}, not {given!r}"


def grant(
    catalog: Catalog, stream: str, wanted: list[Wanted], now: datetime, sandbox: bool
) -> list[Outcome]:
    """Each item in order: an unknown (or deleted) asset, or a subscription that runs out of
    downloads on the way, fails that item only; the others get a new license dated `now` (to
    the second, as the list shows it). The sandbox spends nothing and licenses nothing."""
    outcomes = []
    time = now.replace(microsecond=0)
    for one in wanted:
        known = catalog.has_asset(stream, one.media_id) and not catalog.is_deleted(
            stream, one.media_id
        )
        if not known:
            outcomes.append(Outcome(one, None, 0, f"Asset {one.media_id} was not found"))
        elif sandbox:
            outcomes.append(Outcome(one, None, 1, None))
        elif not catalog.take_download(one.subscription.id):
            message = f"Subscription {one.subscription.id} has no downloads left"
            outcomes.append(Outcome(one, None, 0, message))
        else:
            lic = catalog.add(
                stream,
                media_id=one.media_id,
                size=one.size,
                license=one.license,
                download_time=time,
                subscription_id=one.subscription.id,
                metadata=one.metadata,
                is_downloadable=KINDS[stream].redownload_sizes is not None,
            )
            outcomes.append(Outcome(one, lic, one.subscription.allotment_charge, None))
    return outcomes


def results(stream: str, outcomes: list[Outcome], url_of: Callable[[Outcome], str]) -> dict:
    """`LicenseImageResultDataList` and its kin: per item, the id, `download.url`,
    `allotment_charge` and `license_id` (v1.1.32), or `error`."""
    id_key = ITEM_ID[stream]
    data = []
    for outcome in outcomes:
        item: dict = {id_key: outcome.wanted.media_id}
        if outcome.error is not None:
            item["error"] = outcome.error
        else:
            item["download"] = {"url": url_of(outcome)}
            item["allotment_charge"] = outcome.credits
            if outcome.license is not None:
                item["license_id"] = outcome.license.id
        data.append(item)
    return {"data": data}
