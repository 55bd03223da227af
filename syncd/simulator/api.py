"""The API endpoints syncd uses: the license lists and the redownloads."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from syncd.simulator.answers import Answer, error_answer, json_answer
from syncd.simulator.catalog import ACCOUNT_USER, KINDS, Catalog, License
from syncd.simulator.downloads import DownloadLinks

MAX_PER_PAGE = 200


class BadRequest(Exception):
    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter

    def answer(self) -> Answer:
        return error_answer(400, str(self), path=f"$.{self.parameter}")


@dataclass(frozen=True)
class ListQuery:
    """The query of `GET /v2/{stream}/licenses`; parameters it does not know are ignored."""

    page: int = 1
    per_page: int = 20
    sort: str = "newest"
    team_history: bool = False
    download_availability: str = "all"
    media_id: str | None = None
    license: str | None = None
    username: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None

    @classmethod
    def parse(cls, stream: str, query: dict[str, list[str]]) -> ListQuery:
        args = QueryArgs(query)
        return cls(
            page=args.integer("page", 1, low=1),
            per_page=args.integer("per_page", 20, low=0, high=MAX_PER_PAGE),
            sort=args.choice("sort", ("newest", "oldest")),
            team_history=args.choice("team_history", ("false", "true")) == "true",
            download_availability=args.choice(
                "download_availability", ("all", "downloadable", "non_downloadable")
            ),
            media_id=args.text(f"{KINDS[stream].media_key}_id"),
            license=args.text("license"),
            username=args.text("username"),
            start_date=args.date_time("start_date"),
            end_date=args.date_time("end_date"),
        )

    def filter_key(self) -> ListQuery:
        """The query without its paging and order: queries with equal keys keep the same
        licenses."""
        return dataclasses.replace(self, page=1, per_page=0, sort="newest")

    def matches(self, lic: License) -> bool:
        return (
            (self.team_history or lic.username == ACCOUNT_USER)
            and self.media_id in (None, lic.media_id)
            and self.username in (None, lic.username)
            and self._license_matches(lic.license)
            and (self.start_date is None or lic.time >= self.start_date)
            and (self.end_date is None or lic.time < self.end_date)
            and self._availability_matches(lic.is_downloadable)
        )

    def _license_matches(self, name: str) -> bool:
        if self.license is None:
            return True
        if self.license.startswith("-"):
            return name != self.license[1:]
        return name == self.license

    def _availability_matches(self, is_downloadable: bool | None) -> bool:
        if self.download_availability == "downloadable":
            return is_downloadable is not False
        if self.download_availability == "non_downloadable":
            return is_downloadable is False
        return True


class QueryArgs:
    """Reads query parameters (the first value of each), raising BadRequest."""

    def __init__(self, query: dict[str, list[str]]):
        self._query = query

    def text(self, name: str) -> str | None:
        values = self._query.get(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        """Every value given, a comma-separated value split: `id=1&id=2` or `id=1,2`."""
        return [part for raw in self._query.get(name, []) for part in raw.split(",") if part]

    def required(self, name: str) -> str:
        raw = self.text(name)
        if raw is None or raw == "":
            raise BadRequest(name, f"{name} is required")
        return raw

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(name, f"{name} must be an integer, not {raw!r}") from None
        if value < low or (high is not None and value > high):
            limits = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise BadRequest(name, f"{name} must be {limits}, not {value}")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        """One of `choices`; the first when the parameter is absent."""
        raw = self.text(name)
        if raw is None:
            return choices[0]
        if raw not in choices:
            raise BadRequest(name, f"{name} must be one of {', '.join(choices)}, not {raw!r}")
        return raw

    def date_time(self, name: str) -> datetime | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise BadRequest(name, f"{name} must be an ISO 8601 date-time, not {raw!r}") from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)


def license_page(catalog: Catalog, stream: str, query: ListQuery) -> dict:
    """A `DownloadHistoryDataList`: the page asked for, newest first unless sorted oldest."""
    matching = catalog.listing(stream, query.filter_key(), query.matches)
    first = (query.page - 1) * query.per_page
    if query.sort == "oldest":
        end = len(matching) - first
        shown = matching[max(0, end - query.per_page) : max(0, end)][::-1]
    else:
        shown = matching[first : first + query.per_page]
    return {
        "data": [lic.to_api() for lic in shown],
        "page": query.page,
        "per_page": query.per_page,
        "total_count": len(matching),
    }


def redownload(
    catalog: Catalog,
    links: DownloadLinks,
    own_base_url: str,
    stream: str,
    license_id: str,
    body: bytes,
) -> Answer:
    """`POST /v2/{stream}/licenses/{license_id}/downloads`: a fresh download URL."""
    sizes = KINDS[stream].redownload_sizes
    try:
        size = _requested_size(body, sizes) if sizes else None
    except BadRequest as bad:
        return bad.answer()
    lic = catalog.license(license_id)
    if lic is None or lic.stream != stream:
        return error_answer(404, f"License {license_id} was not found")
    if lic.is_downloadable is False:
        return error_answer(403, f"License {license_id} cannot be redownloaded")
    if sizes and size != lic.size:
        wrong_size = BadRequest("size", f"License {license_id} is for size {lic.size}, not {size}")
        return wrong_size.answer()
    return json_answer(200, {"url": links.url(lic, own_base_url)})


def _requested_size(body: bytes, sizes: tuple[str, ...]) -> str:
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        raise BadRequest("body", "The body must be JSON") from None
    size = payload.get("size") if isinstance(payload, dict) else None
    if size not in sizes:
        raise BadRequest("size", f"size must be one of {', '.join(sizes)}, not {size!r}")
    return size
