"""The API client: bearer auth to the base URL only, timeouts, the retry policy, a request
counter, and answers parsed into records."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import requests
import structlog

from syncd.api.http import make_session, proxies_for
from syncd.api.records import (
    LicensePage,
    MalformedResponse,
    UpdatePage,
    decode_json,
    error_message,
    parse_details,
    parse_details_list,
    parse_download_url,
    parse_license_page,
    parse_update_page,
)
from syncd.api.retry import RetryPolicy, is_retriable
from syncd.errors import AuthError

log = structlog.get_logger("syncd.api")

# what a host that is not there at all answers (a closed port, a name that does not resolve)
NOT_THERE = frozenset({"connection refused", "name or service not known"})
GIVE_UP_AFTER = 2  # requests in a row that used up their retries


def api_moment(moment: datetime) -> str:
    """A date-time as the reference writes them (``YYYY-MM-DDTHH:mm:ssZ``), in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """A request that did not give a usable answer, after the retries the policy allows."""

    def __init__(self, message: str, status: int | None = None, unanswered: bool = False):
        super().__init__(message)
        self.status = status
        self.unanswered = unanswered  # retries used up without any HTTP answer


class Forbidden(ApiError):
    """403: the account may not do this."""


class NotFound(ApiError):
    """404: no such thing."""


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        policy: RetryPolicy | None = None,
        timeout_s: float = 60.0,
        pool_size: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[int | None], None] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.timeout = (min(10.0, timeout_s), timeout_s)
        self._session = make_session(pool_size)
        self._proxies = proxies_for(self.base_url)
        self._auth = f"Bearer {token}"
        self._sleep = sleep
        # told of every request sent: its HTTP status, or None when nothing answered (metrics)
        self._on_request = on_request or (lambda status: None)
        self._lock = threading.Lock()
        self.requests_sent = 0
        self._unanswered_in_a_row = 0
        self._ever_answered = False
        self.succeeded = False  # an answer of 2xx this run: the API is there and takes the token
        self._given_up: str | None = None
        # time.monotonic() before which the API asked not to be sent more (the last 429's
        # wait): what may be sent ahead of need (the fetcher's look-ahead) waits for it
        self.rate_limited_until = 0.0

    def close(self) -> None:
        self._session.close()

    # --- endpoints ------------------------------------------------------------------------

    def license_page(
        self,
        stream,
        page: int,
        per_page: int,
        team_history: bool,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> LicensePage:
        """One page of the stream's license history, newest first; ``start``/``end`` keep it
        to licenses downloaded on or after ``start`` and before ``end`` (whole seconds)."""
        params: dict[str, Any] = {"sort": "newest", "per_page": per_page, "page": page}
        if team_history:
            params["team_history"] = "true"
        if start is not None:
            params["start_date"] = api_moment(start)
        if end is not None:
            params["end_date"] = api_moment(end)
        document = self.request("GET", f"/v2/{stream.path}/licenses", params=params)
        try:
            return parse_license_page(document, stream.media_type, stream.media_key)
        except MalformedResponse as exc:
            raise ApiError(f"GET /v2/{stream.path}/licenses page {page}: {exc}") from None

    def redownload(self, stream, license_id: str, size: str) -> str:
        body = {"size": size} if stream.redownload_takes_size and size != "original" else None
        path = f"/v2/{stream.path}/licenses/{quote(license_id, safe='')}/downloads"
        document = self.request("POST", path, json_body=body)
        try:
            return parse_download_url(document)
        except MalformedResponse as exc:
            raise ApiError(f"POST {path}: {exc}") from None

    def details(self, path: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """``GET /v2/{path}?id=..&id=..&view=full``: the full details of several assets, by
        id; ids the answer leaves out (withdrawn, unknown) are not in the result."""
        what = f"GET /v2/{path}"
        document = self.request("GET", f"/v2/{path}", params={"id": ids, "view": "full"})
        try:
            return parse_details_list(document, ids)
        except MalformedResponse as exc:
            raise ApiError(f"{what}: {exc}") from None

    def editorial_details(self, path: str, media_id: str, country: str) -> dict[str, Any] | None:
        """``GET /v2/{path}/{id}?country=..``: one editorial asset's details, or None when the
        API has no such asset (404)."""
        where = f"/v2/{path}/{quote(media_id, safe='')}"
        try:
            document = self.request("GET", where, params={"country": country})
        except NotFound:
            return None
        try:
            return parse_details(document, media_id)
        except MalformedResponse as exc:
            raise ApiError(f"GET {where}: {exc}") from None

    def updated_page(
        self, path: str, start: date, end: date, page: int, per_page: int
    ) -> UpdatePage:
        """``GET /v2/{path}`` (images/updated, videos/updated): one page of the updates in
        [start, end) (dates, at most three days apart), newest first."""
        params = {
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "sort": "newest",
            "page": page,
            "per_page": per_page,
        }
        document = self.request("GET", f"/v2/{path}", params=params)
        try:
            return parse_update_page(document)
        except MalformedResponse as exc:
            raise ApiError(f"GET /v2/{path} page {page}: {exc}") from None

    def editorial_updated_page(
        self,
        path: str,
        start: datetime,
        end: datetime,
        country: str,
        cursor: str | None,
        per_page: int,
    ) -> UpdatePage:
        """``GET /v2/{path}`` (editorial/images/updated): edits (deletions included) after
        ``start`` and before ``end``, newest first, paged by cursor; each entry carries the
        item's details."""
        params: dict[str, Any] = {
            "type": "edit",
            "date_updated_start": api_moment(start),
            "date_updated_end": api_moment(end),
            "country": country,
            "sort": "newest",
            "per_page": per_page,
        }
        if cursor is not None:
            params["cursor"] = cursor
        document = self.request("GET", f"/v2/{path}", params=params)
        try:
            return parse_update_page(document, with_items=True)
        except MalformedResponse as exc:
            raise ApiError(f"GET /v2/{path}: {exc}") from None

    # --- the transport --------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body: Any = None,
        retries: int | None = None,
    ) -> Any:
        """Sends one API request with the retry policy; returns the decoded JSON body. Once
        GIVE_UP_AFTER requests in a row have used up their retries without any answer at all
        (refused, reset, timed out), the API is taken to be unreachable for this run: later
        requests fail at once, and what they were for stays queued for the next run. Any HTTP
        answer, even an error, shows the API is there and starts the count again."""
        what = f"{method} {path}"
        if self._given_up:
            raise ApiError(f"{what}: not sent, the API is not answering ({self._given_up})")
        try:
            document = self._request_with_retries(what, method, path, params, json_body, retries)
        except ApiError as exc:
            with self._lock:
                if exc.unanswered:
                    self._unanswered_in_a_row += 1
                    # an API that never answered this run is given up after one request
                    limit = GIVE_UP_AFTER if self._ever_answered else 1
                    if self._unanswered_in_a_row >= limit and not self._given_up:
                        self._given_up = str(exc)
                        log.error("api.given_up", error=str(exc))
                else:
                    self._unanswered_in_a_row = 0
                    self._ever_answered = True
            raise
        with self._lock:
            self._unanswered_in_a_row = 0
            self._ever_answered = True
            self.succeeded = True
        return document

    def wait_out_rate_limit(self) -> None:
        """Sleeps (with the client's sleep) until the last 429's wait has passed: what is
        sent ahead of need waits for it."""
        wait_s = self.rate_limited_until - time.monotonic()
        if wait_s > 0:
            self._sleep(wait_s)

    @property
    def given_up(self) -> str | None:
        """Why the API is taken to be unreachable for this run, or None."""
        return self._given_up

    def _request_with_retries(
        self,
        what: str,
        method: str,
        path: str,
        params: dict | None,
        json_body: Any,
        retries: int | None = None,
    ) -> Any:
        """``retries``: instead of the policy's (0 for a licensing request: never repeated)."""
        limit = self.policy.max_retries if retries is None else retries
        attempt = 0
        answered = False
        while True:
            retry_after = None
            refused = False
            failure: ApiError
            try:
                response = self._send(method, path, params, json_body)
            except requests.RequestException as exc:
                self._on_request(None)
                reason = _network_reason(exc)
                refused = reason in NOT_THERE
                failure = ApiError(f"{what}: {reason}")
            else:
                answered = True
                status = response.status_code
                self._on_request(status)
                if 200 <= status < 300:
                    try:
                        return decode_json(response.content, what)
                    except MalformedResponse as exc:
                        failure = ApiError(str(exc), status)
                else:
                    error = self._error_for(what, status, response.content)
                    if not is_retriable(status) or not isinstance(error, ApiError):
                        raise error
                    failure = error
                    retry_after = response.headers.get("Retry-After")
            if failure.status == 429:
                pause = time.monotonic() + self.policy.wait_for(attempt, retry_after)
                with self._lock:
                    self.rate_limited_until = max(self.rate_limited_until, pause)
            # An API that has not answered once this run and refuses the connection is not
            # there (a wrong base_url, a closed port): one retry, not the whole backoff ladder.
            not_there = refused and not answered and not self._ever_answered
            if attempt >= limit or (not_there and attempt >= 1):
                raise ApiError(
                    f"{failure} (after {attempt + 1} attempts)",
                    failure.status,
                    unanswered=failure.status is None and not answered,
                )
            delay = self.policy.wait_for(attempt, retry_after)
            log.warning(
                "request.retry",
                request=what,
                error=str(failure),
                attempt=attempt + 1,
                wait_s=round(delay, 2),
            )
            self._sleep(delay)
            attempt += 1

    def _send(self, method, path, params, json_body) -> requests.Response:
        with self._lock:
            self.requests_sent += 1
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        started = time.monotonic()
        response = self._session.request(
            method,
            self.base_url + path,
            params=params,
            json=json_body,
            headers=headers,
            timeout=self.timeout,
            proxies=self._proxies,
            allow_redirects=False,
        )
        log.debug(
            "request.answered",
            method=method,
            path=path,
            params=params,
            status=response.status_code,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        return response

    @staticmethod
    def _error_for(what: str, status: int, body: bytes) -> Exception:
        message = f"{what}: HTTP {status}: {error_message(body)}"
        if status == 401:
            return AuthError(
                f"the API refused the credentials (401) on {what}: check the token in "
                "SHUTTERSTOCK_API_TOKEN (or api.token), that it has not expired, and that it "
                "has the licenses.view scope"
            )
        if status == 403:
            return Forbidden(message, status)
        if status == 404:
            return NotFound(message, status)
        return ApiError(message, status)


def _network_reason(exc: requests.RequestException) -> str:
    """'connection refused' rather than urllib3's paragraph about pools and retries."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    errno_text = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
    if errno_text:
        return errno_text.group(1).strip().lower()
    return type(exc).__name__
