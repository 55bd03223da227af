"""The account's subscriptions, as `GET /v2/user/subscriptions` shows them (guide seed 002,
"Subscriptions"; reference `Subscription`, `Allotment`, `LicenseFormat`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

KINDS = ("standard", "api", "enterprise")
"""`api`: a developers' API subscription (needs `price` and `metadata.customer_id`, one image
a request); `enterprise`: a Premier subscription (needs its `required_metadata` fields)."""

LICENSE_SIZES: dict[str, tuple[str, ...]] = {
    "images": ("small", "medium", "huge", "supersize", "vector"),
    "videos": ("web", "sd", "hd", "4k"),
    "audio": ("original",),
    "editorial/images": ("small", "medium", "original"),
    "editorial/videos": ("original",),
}
"""The sizes a subscription of each stream can cover."""

_MEDIA_TYPE = {
    "images": "image",
    "videos": "video",
    "audio": "audio",
    "editorial/images": "editorial",
    "editorial/videos": "editorial",
}
_ASSET_TYPE = {
    "images": "images",
    "videos": "videos",
    "audio": "audio",
    "editorial/images": "editorial",
    "editorial/videos": "editorial",
}
_FORMATS = {  # (format, min_resolution, description) as the guide's examples show them
    ("images", "small"): ("jpg", 500, "Small"),
    ("images", "medium"): ("jpg", 1000, "Med"),
    ("images", "huge"): ("jpg", 4_000_000, "Huge"),
    ("images", "supersize"): ("jpg", 16_000_000, "Super"),
    ("images", "vector"): ("eps", None, "Vector"),
    ("videos", "web"): ("mov", 480, "Web"),
    ("videos", "sd"): ("mov", 720, "SD"),
    ("videos", "hd"): ("mov", 1920, "HD"),
    ("videos", "4k"): ("mov", 4096, "4K"),
    ("audio", "original"): ("mp3", None, "Original"),
    ("editorial/images", "small"): ("jpg", 500, "Small"),
    ("editorial/images", "medium"): ("jpg", 1000, "Medium"),
    ("editorial/images", "original"): ("jpg", None, "Original"),
    ("editorial/videos", "original"): ("mov", None, "Original"),
}

FAR_FUTURE = datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)
_START = datetime(2016, 1, 4, tzinfo=UTC)


@dataclass
class Subscription:
    id: str
    kind: str  # one of KINDS
    media: tuple[str, ...]  # the streams it licenses
    sizes: tuple[str, ...]  # the sizes it covers (of any of its streams)
    expiration_time: datetime
    downloads_left: int
    downloads_limit: int
    required_metadata: tuple[str, ...] = ()
    optional_metadata: tuple[str, ...] = ()
    one_per_request: bool = False
    license: str = "standard"
    description: str = ""
    start_time: datetime = _START
    price_per_download: float = 0.0
    allotment_charge: int = 1  # credits one licensed item costs (the answer's allotment_charge)

    def covers(self, stream: str, size: str | None) -> bool:
        """Whether it licenses `stream` in `size` (None: no size asked, as for audio)."""
        if stream not in self.media:
            return False
        return size is None or size in self.sizes

    def is_expired(self, now: datetime) -> bool:
        return self.expiration_time <= now

    def metadata_fields(self) -> dict:
        """The reference's `SubscriptionMetadata` (v1.1.32's shape: `{field: {is_required,
        name}}`)."""
        fields: dict = {}
        required = self.required_metadata
        if self.kind == "api" and "customer_id" not in required:
            required = ("customer_id", *required)
        for name in required:
            fields[name] = {"is_required": True, "name": name}
        for name in self.optional_metadata:
            fields.setdefault(name, {"is_required": False, "name": name})
        return fields

    def to_api(self) -> dict:
        formats = []
        for stream in self.media:
            for size in LICENSE_SIZES[stream]:
                if size not in self.sizes:
                    continue
                file_format, min_resolution, description = _FORMATS[(stream, size)]
                entry: dict = {
                    "size": size,
                    "format": file_format,
                    "media_type": _MEDIA_TYPE[stream],
                    "description": description,
                }
                if min_resolution is not None:
                    entry["min_resolution"] = min_resolution
                formats.append(entry)
        return {
            "id": self.id,
            "license": self.license,
            "description": self.description,
            "asset_type": _ASSET_TYPE[self.media[0]],
            "expiration_time": _render(self.expiration_time),
            "allotment": {
                "downloads_left": self.downloads_left,
                "downloads_limit": self.downloads_limit,
                "start_time": _render(self.start_time),
                "end_time": _render(self.expiration_time),
            },
            "formats": formats,
            "metadata": self.metadata_fields(),
            "price_per_download": {
                "local_amount": self.price_per_download,
                "local_currency": "USD",
            },
        }


def make_subscription(
    subscription_id: str,
    *,
    kind: str = "standard",
    media: tuple[str, ...] | list[str] | str = ("images",),
    sizes: tuple[str, ...] | list[str] | None = None,
    expires: datetime | str = FAR_FUTURE,
    downloads_left: int = 100,
    downloads_limit: int | None = None,
    required_metadata: tuple[str, ...] | list[str] = (),
    optional_metadata: tuple[str, ...] | list[str] = (),
    one_per_request: bool | None = None,
    license: str | None = None,
    description: str | None = None,
    allotment_charge: int = 1,
) -> Subscription:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    streams = (media,) if isinstance(media, str) else tuple(media)
    unknown = [stream for stream in streams if stream not in LICENSE_SIZES]
    if not streams or unknown:
        raise ValueError(f"media must be streams of {', '.join(LICENSE_SIZES)}, not {media!r}")
    every = tuple(dict.fromkeys(size for stream in streams for size in LICENSE_SIZES[stream]))
    covered = every if sizes is None else tuple(sizes)
    if not set(covered) <= set(every):
        raise ValueError(f"sizes {sorted(set(covered) - set(every))} are not sizes of {streams}")
    if isinstance(expires, str):
        expires = datetime.fromisoformat(expires)
    if expires.tzinfo is None:
        raise ValueError("expires needs a UTC offset")
    if downloads_left < 0:
        raise ValueError("downloads_left cannot be negative")
    if allotment_charge < 1:
        raise ValueError("allotment_charge must be 1 or more")
    return Subscription(
        id=subscription_id,
        kind=kind,
        media=streams,
        sizes=covered,
        expiration_time=expires,
        downloads_left=downloads_left,
        downloads_limit=downloads_limit if downloads_limit is not None else max(downloads_left, 1),
        required_metadata=tuple(required_metadata),
        optional_metadata=tuple(optional_metadata),
        one_per_request=kind == "api" if one_per_request is None else one_per_request,
        license=license or _default_license(kind, streams[0]),
        description=description or f"{kind.title()} {_ASSET_TYPE[streams[0]]} subscription",
        price_per_download=1.5 if kind == "api" else 0.0,
        allotment_charge=allotment_charge,
    )


def _default_license(kind: str, stream: str) -> str:
    if stream == "videos":
        return "footage_standard"
    if stream == "audio":
        return "audio_platform"
    if stream.startswith("editorial/"):
        return "premier_editorial_all_digital"
    return "api_standard" if kind == "api" else "standard"


def default_subscriptions() -> list[Subscription]:
    """One standard subscription per kind of media, each with 100 downloads left, expiring in
    2099: the images one is `s8906043`, the id `Catalog.add` gives licenses by default."""
    return [
        make_subscription("s8906043", media="images", description="Images On Demand"),
        make_subscription("s8241443", media="videos", description="Footage Standard"),
        make_subscription("s7715063", media="audio", description="Music Platform"),
        make_subscription(
            "s9012345",
            media=("editorial/images", "editorial/videos"),
            description="Premier Editorial",
        ),
    ]


def _render(time: datetime) -> str:
    return time.isoformat(timespec="seconds")
