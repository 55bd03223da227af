"""The asset-details and updated-media endpoints: `GET /v2/{images,videos,audio}`,
`GET /v2/editorial/{images,videos}/{id}`, `GET /v2/{images,videos}/updated` and
`GET /v2/editorial/images/updated` (with its deprecated twin `GET /v2/editorial/updated`)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, date, datetime, timedelta

from syncd.simulator import details as asset_details
from syncd.simulator.answers import Answer, error_answer, json_answer
from syncd.simulator.api import BadRequest, QueryArgs
from syncd.simulator.catalog import Catalog
from syncd.simulator.updates import UPDATE_KINDS, Update

MAX_DETAIL_IDS = 500
"""Ids per `GET /v2/{images,videos,audio}` request: the reference documents no limit (no
`maxItems` on `id`), so the simulator takes up to 500, as many as a search page holds, and
answers 400 above."""

UPDATED_MAX_PER_PAGE = 2000
UPDATED_DEFAULT_PER_PAGE = 100
UPDATED_MAX_RANGE = timedelta(days=3)
"""`start_date` to `end_date`: "a range of no more than three days"."""
DEFAULT_INTERVAL = "1 HOUR"
EDITORIAL_MIN_PER_PAGE = 100
EDITORIAL_MAX_PER_PAGE = 500

_INTERVAL = re.compile(r"\s*(\d+)\s+(SECOND|MINUTE|HOUR|DAY|WEEK)S?\s*", re.IGNORECASE)
_INTERVAL_UNITS = {
    "SECOND": timedelta(seconds=1),
    "MINUTE": timedelta(minutes=1),
    "HOUR": timedelta(hours=1),
    "DAY": timedelta(days=1),
    "WEEK": timedelta(weeks=1),
}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_COUNTRY = re.compile(r"[A-Z]{3}")


# -- details -------------------------------------------------------------------------------


def detail_list(catalog: Catalog, media_type: str, query: dict[str, list[str]]) -> Answer:
    """`GET /v2/{images,videos,audio}?id=..&view=`: the assets held, in the order asked for;
    the others (unknown or deleted) left out of `data` and listed in `errors`."""
    args = QueryArgs(query)
    try:
        ids = args.values("id")
        if not ids:
            raise BadRequest("id", "id is required: one or more ids")
        if len(ids) > MAX_DETAIL_IDS:
            raise BadRequest("id", f"at most {MAX_DETAIL_IDS} ids per request, not {len(ids)}")
        view = args.choice("view", ("minimal", "full"))
    except BadRequest as bad:
        return bad.answer()
    data: list[dict] = []
    errors: list[dict] = []
    for media_id in dict.fromkeys(ids):
        found = catalog.details(media_type, media_id)
        if found is None:
            errors.append(
                {
                    "code": "NOT_FOUND",
                    "message": f"{media_id} was not found",
                    "path": "$.id",
                    "data": media_id,
                }
            )
        else:
            data.append(found if view == "full" else asset_details.minimal(media_type, found))
    payload: dict = {"data": data}
    if errors:
        payload["errors"] = errors
    return json_answer(200, payload)


def editorial_details(
    catalog: Catalog, media_type: str, media_id: str, query: dict[str, list[str]]
) -> Answer:
    """`GET /v2/editorial/{images,videos}/{id}?country=`: `country` required."""
    try:
        _country(QueryArgs(query))
    except BadRequest as bad:
        return bad.answer()
    found = catalog.details(media_type, media_id)
    if found is None:
        return error_answer(404, f"{media_id} was not found")
    return json_answer(200, found)


def _country(args: QueryArgs) -> str:
    country = args.required("country")
    if not _COUNTRY.fullmatch(country):
        raise BadRequest("country", f"country must be an ISO 3166 alpha-3 code, not {country!r}")
    return country


# -- updated media -------------------------------------------------------------------------


def updated_media(catalog: Catalog, media_type: str, query: dict[str, list[str]]) -> Answer:
    """`GET /v2/{images,videos}/updated`: an `UpdatedMediaDataList`. `start_date` is included,
    `end_date` is not ("updated before the specified date"); dates are UTC days."""
    args = QueryArgs(query)
    try:
        kinds = _update_kinds(args) if media_type == "images" else None
        start, end, end_included = _updated_range(catalog, args)
        page = args.integer("page", 1, low=1)
        per_page = args.integer(
            "per_page", UPDATED_DEFAULT_PER_PAGE, low=1, high=UPDATED_MAX_PER_PAGE
        )
        newest = args.choice("sort", ("newest", "oldest")) == "newest"
    except BadRequest as bad:
        return bad.answer()
    window = catalog.update_window(media_type, start, end, end_included=end_included, kinds=kinds)
    events = window.ranked((page - 1) * per_page, per_page, newest)
    return json_answer(
        200,
        {
            "data": [event.to_api() for event in events],
            "page": page,
            "per_page": per_page,
            "total_count": len(window),
        },
    )


def _update_kinds(args: QueryArgs) -> set[str] | None:
    kinds = args.values("type")
    for kind in kinds:
        if kind not in UPDATE_KINDS:
            raise BadRequest(
                "type", f"type must be some of {', '.join(UPDATE_KINDS)}, not {kind!r}"
            )
    return set(kinds) or None


def _updated_range(catalog: Catalog, args: QueryArgs) -> tuple[datetime, datetime, bool]:
    """(start, end, whether end is included)."""
    interval = args.text("interval")
    start_day, end_day = _date(args, "start_date"), _date(args, "end_date")
    if interval is not None and (start_day or end_day):
        raise BadRequest("interval", "interval cannot be used with start_date or end_date")
    if start_day is None and end_day is None:
        now = catalog.now()
        return now - _interval(interval or DEFAULT_INTERVAL), now, True
    if start_day is None:
        assert end_day is not None
        start_day = end_day - UPDATED_MAX_RANGE
    if end_day is None:
        end_day = start_day + UPDATED_MAX_RANGE
    if end_day < start_day:
        raise BadRequest("end_date", f"end_date {end_day} is before start_date {start_day}")
    if end_day - start_day > UPDATED_MAX_RANGE:
        raise BadRequest(
            "end_date",
            f"start_date {start_day} to end_date {end_day} is {(end_day - start_day).days} days:"
            " the range can be no more than three days",
        )
    return _midnight(start_day), _midnight(end_day), False


def _date(args: QueryArgs, name: str) -> date | None:
    raw = args.text(name)
    if raw is None:
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(name, f"{name} must be a date (YYYY-MM-DD), not {raw!r}") from None


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _interval(raw: str) -> timedelta:
    match = _INTERVAL.fullmatch(raw)
    if match is None or int(match[1]) < 1:
        raise BadRequest(
            "interval", f"interval must be like 1 DAY, 6 HOUR or 30 MINUTE, not {raw!r}"
        )
    return int(match[1]) * _INTERVAL_UNITS[match[2].upper()]


# -- updated editorial images ----------------------------------------------------------------


def editorial_updated(catalog: Catalog, query: dict[str, list[str]]) -> Answer:
    """`GET /v2/editorial/images/updated` (and `/v2/editorial/updated`): an
    `EditorialUpdatedResults`, paged by cursor. `date_updated_start` is included,
    `date_updated_end` is not; `type=edit` includes deletions; `supplier_code` and
    `date_taken_*` are accepted and do not filter."""
    args = QueryArgs(query)
    try:
        kind = args.required("type")
        if kind not in ("addition", "edit"):
            raise BadRequest("type", f"type must be addition or edit, not {kind!r}")
        start = _required_time(args, "date_updated_start")
        end = _required_time(args, "date_updated_end")
        if end < start:
            raise BadRequest("date_updated_end", "date_updated_end is before date_updated_start")
        _country(args)
        per_page = args.integer(
            "per_page",
            EDITORIAL_MAX_PER_PAGE,
            low=EDITORIAL_MIN_PER_PAGE,
            high=EDITORIAL_MAX_PER_PAGE,
        )
        sort = args.choice("sort", ("newest", "oldest"))
        cursor = _decode_cursor(args.text("cursor"), sort)
    except BadRequest as bad:
        return bad.answer()
    kinds = {"addition"} if kind == "addition" else {"edit", "deletion"}
    window = catalog.update_window("editorial/images", start, end, kinds=kinds)
    newest = sort == "newest"
    first, count = 0, per_page
    if cursor is not None:
        direction, key = cursor
        if direction == "next":
            first = window.rank_after(key, newest)
        else:
            last = window.rank_of(key, newest)
            first, count = max(0, last - per_page), min(per_page, last)
    events = window.ranked(first, count, newest)
    payload: dict = {
        "data": [_editorial_item(catalog, event) for event in events],
        "per_page": per_page,
    }
    if events and first + len(events) < len(window):
        payload["next"] = _encode_cursor("next", events[-1], sort)
    if events and first > 0:
        payload["prev"] = _encode_cursor("prev", events[0], sort)
    return json_answer(200, payload)


def _required_time(args: QueryArgs, name: str) -> datetime:
    args.required(name)
    value = args.date_time(name)
    assert value is not None
    return value


def _editorial_item(catalog: Catalog, event: Update) -> dict:
    """The asset's full view (a deleted one's as it last was; for an id the catalog does not
    hold, only the id) with the event's `updated_time` and `updates`."""
    item = catalog.last_details("editorial/images", event.media_id) or {"id": event.media_id}
    item["updated_time"] = event.updated_time
    item["updates"] = list(event.updates)
    return item


def _encode_cursor(direction: str, event: Update, sort: str) -> str:
    time, seq = event.key
    raw = json.dumps({"d": direction, "t": time, "s": seq, "o": sort}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str | None, sort: str) -> tuple[str, tuple[float, int]] | None:
    if cursor is None:
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        direction, key = fields["d"], (float(fields["t"]), int(fields["s"]))
        if direction not in ("next", "prev"):
            raise ValueError(direction)
        cursor_sort = fields["o"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadRequest("cursor", f"cursor {cursor!r} is not one this API gave") from None
    if cursor_sort != sort:
        raise BadRequest("cursor", f"the cursor was given for sort={cursor_sort}, not {sort}")
    return direction, key
