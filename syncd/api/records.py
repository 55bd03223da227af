"""Typed records parsed from API bodies. A body that is not what the reference documents raises
MalformedResponse; values are kept as sent (their safety as key parts is checked later)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_ID_LENGTH = 1024  # longer is no id; values over 128 characters fail their license


class MalformedResponse(ValueError):
    """The body is not the JSON the API documents."""


@dataclass(frozen=True)
class LicenseRecord:
    media_type: str
    license_id: str
    media_id: str
    size: str
    format: str | None
    license: str
    download_time: datetime
    subscription_id: str | None = None
    username: str | None = None
    is_downloadable: bool | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LicensePage:
    licenses: list[LicenseRecord]
    page: int | None
    per_page: int | None
    total_count: int | None


def decode_json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        preview = body[:60].decode("utf-8", "replace").replace("\n", " ")
        raise MalformedResponse(f"{what}: the body is not JSON (starts {preview!r})") from None


def parse_time(value: Any) -> datetime:
    """ISO 8601 with any offset (or none: UTC) -> an aware datetime in UTC."""
    if not isinstance(value, str):
        raise MalformedResponse(f"download_time {value!r} is not a date-time string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MalformedResponse(f"download_time {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _identifier(value: Any, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise MalformedResponse(f"{what} {value!r} is not a non-empty string")
    return value


def _optional_string(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH:
        raise MalformedResponse(f"{name} {value!r} is not a string")
    return value


def parse_license(item: Any, media_type: str, media_key: str) -> LicenseRecord:
    if not isinstance(item, dict):
        raise MalformedResponse("a license item is not an object")
    license_id = _identifier(item.get("id"), "license id")
    media = item.get(media_key)
    if not isinstance(media, dict):
        raise MalformedResponse(f"license {license_id!r} has no {media_key!r} object")
    media_id = _identifier(media.get("id"), f"{media_key} id")
    format_details = media.get("format") or {}
    if not isinstance(format_details, dict):
        raise MalformedResponse(f"license {license_id!r}: format is not an object")
    size = format_details.get("size") or "original"
    file_format = format_details.get("format")
    if not isinstance(size, str) or len(size) > MAX_ID_LENGTH:
        raise MalformedResponse(f"license {license_id!r}: format.size is not a string")
    if file_format is not None and not isinstance(file_format, str):
        raise MalformedResponse(f"license {license_id!r}: format.format is not a string")
    license_name = _optional_string(item, "license")
    if license_name is None:
        raise MalformedResponse(f"license {license_id!r} has no license name")
    is_downloadable = item.get("is_downloadable")
    if is_downloadable is not None and not isinstance(is_downloadable, bool):
        raise MalformedResponse(f"license {license_id!r}: is_downloadable is not a boolean")
    metadata = item.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise MalformedResponse(f"license {license_id!r}: metadata is not an object")
    user = item.get("user") or {}
    if not isinstance(user, dict):
        raise MalformedResponse(f"license {license_id!r}: user is not an object")
    return LicenseRecord(
        media_type=media_type,
        license_id=license_id,
        media_id=media_id,
        size=size,
        format=file_format,
        license=license_name,
        download_time=parse_time(item.get("download_time")),
        subscription_id=_optional_string(item, "subscription_id"),
        username=_optional_string(user, "username"),
        is_downloadable=is_downloadable,
        metadata=metadata,
    )


def _optional_int(document: dict[str, Any], name: str) -> int | None:
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResponse(f"{name} {value!r} is not an integer")
    return value


def parse_license_page(document: Any, media_type: str, media_key: str) -> LicensePage:
    if not isinstance(document, dict) or not isinstance(document.get("data", []), list):
        raise MalformedResponse("the license list is not an object with a data array")
    errors = document.get("errors")
    if errors:
        raise MalformedResponse(f"the license list reports errors: {_summary(errors)}")
    return LicensePage(
        licenses=[parse_license(item, media_type, media_key) for item in document.get("data", [])],
        page=_optional_int(document, "page"),
        per_page=_optional_int(document, "per_page"),
        total_count=_optional_int(document, "total_count"),
    )


def parse_download_url(document: Any) -> str:
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("url"), str)
        or not document["url"]
    ):
        raise MalformedResponse("the redownload answer has no url")
    url: str = document["url"]
    return url


def _summary(errors: Any) -> str:
    if isinstance(errors, list):
        messages = [e.get("message") for e in errors if isinstance(e, dict)]
        text = "; ".join(m for m in messages if isinstance(m, str))
        if text:
            return text[:300]
    return repr(errors)[:300]


def error_message(body: bytes) -> str:
    """The ``message`` of an API error body, or a short preview of whatever came."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        details: list[str] = [
            e["message"]
            for e in document.get("errors") or []
            if isinstance(e, dict) and isinstance(e.get("message"), str)
        ]
        message: str = document["message"]
        return "; ".join([message, *details])[:300]
    text = body[:80].decode("utf-8", "replace").strip().replace("\n", " ")
    return f"non-JSON body {text!r}" if text else "empty body"


def parse_details_list(document: Any, asked: list[str]) -> dict[str, dict[str, Any]]:
    """``{"data": [...]}`` of ``GET /v2/images?id=..`` (videos, audio): each asset's details
    by id, for the ids asked for only (anything else in the answer is ignored). An id the
    answer leaves out is not in the result."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise MalformedResponse("the body has no 'data' list")
    wanted = set(asked)
    found: dict[str, dict[str, Any]] = {}
    for item in document["data"]:
        if not isinstance(item, dict):
            raise MalformedResponse(f"an item of 'data' is not an object: {str(item)[:60]!r}")
        media_id = item.get("id")
        if isinstance(media_id, int) and not isinstance(media_id, bool):
            media_id = str(media_id)
        if isinstance(media_id, str) and media_id in wanted:
            found.setdefault(media_id, item)
    return found


def parse_details(document: Any, media_id: str) -> dict[str, Any]:
    """One editorial asset's details (``GET /v2/editorial/images/{id}``)."""
    if not isinstance(document, dict):
        raise MalformedResponse("the body is not an object")
    given = document.get("id")
    if given is not None and str(given) != media_id:
        raise MalformedResponse(f"the details are of {str(given)[:60]!r}, not of {media_id!r}")
    return document


@dataclass(frozen=True)
class UpdateRecord:
    """One entry of an /updated stream: which asset, when, and how it changed; ``item`` is
    the whole entry where it carries the asset's details (the editorial stream)."""

    media_id: str
    updated_time: datetime
    updates: tuple[str, ...]
    item: dict[str, Any] | None = None

    @property
    def deletion(self) -> bool:
        return "deletion" in self.updates


@dataclass(frozen=True)
class UpdatePage:
    updates: list[UpdateRecord]
    per_page: int | None = None
    total_count: int | None = None
    next_cursor: str | None = None


def parse_update(item: Any, with_item: bool = False) -> UpdateRecord:
    if not isinstance(item, dict):
        raise MalformedResponse(f"an update is not an object: {str(item)[:60]!r}")
    media_id = _identifier(item.get("id"), "id")
    try:
        when = parse_time(item.get("updated_time"))
    except MalformedResponse as exc:
        raise MalformedResponse(str(exc).replace("download_time", "updated_time")) from None
    updates = item.get("updates")
    if not isinstance(updates, list) or not all(isinstance(u, str) for u in updates):
        raise MalformedResponse(f"update of {media_id}: 'updates' is not a list of strings")
    return UpdateRecord(media_id, when, tuple(updates), item if with_item else None)


def parse_update_page(document: Any, with_items: bool = False) -> UpdatePage:
    """An ``UpdatedMediaDataList`` (images, videos) or ``EditorialUpdatedResults``."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise MalformedResponse("the body has no 'data' list")
    cursor = document.get("next")
    return UpdatePage(
        [parse_update(item, with_items) for item in document["data"]],
        per_page=_optional_int(document, "per_page"),
        total_count=_optional_int(document, "total_count"),
        next_cursor=cursor if isinstance(cursor, str) and cursor else None,
    )
