"""The API client: bearer auth to the base URL only, timeouts, the retry policy, a request
counter, and answers parsed into records."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable
from urllib.parse import quote

import requests
import structlog

from syncd.api.http import make_session
from syncd.api.records import (LicensePage, MalformedResponse, decode_json, error_message,
                               parse_download_url, parse_license_page)
from syncd.api.retry import RETRIABLE_STATUS, RetryPolicy
from syncd.errors import AuthError

log = structlog.get_logger("syncd.api")


class ApiError(Exception):
    """A request that did not give a usable answer, after the retries the policy allows."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Forbidden(ApiError):
    """403: the account may not do this."""


class NotFound(ApiError):
    """404: no such thing."""


class ApiClient:
    def __init__(self, base_url: str, token: str, *, policy: RetryPolicy | None = None,
                 timeout_s: float = 60.0, pool_size: int = 4,
                 sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.timeout = (min(10.0, timeout_s), timeout_s)
        self._session = make_session(pool_size)
        self._auth = f"Bearer {token}"
        self._sleep = sleep
        self._lock = threading.Lock()
        self.requests_sent = 0

    def close(self) -> None:
        self._session.close()

    # --- endpoints ------------------------------------------------------------------------

    def license_page(self, stream, page: int, per_page: int, team_history: bool) -> LicensePage:
        params = {"sort": "newest", "per_page": per_page, "page": page}
        if team_history:
            params["team_history"] = "true"
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

    # --- the transport --------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: dict | None = None,
                json_body: Any = None) -> Any:
        """Sends one API request with the retry policy; returns the decoded JSON body."""
        what = f"{method} {path}"
        attempt = 0
        while True:
            retry_after = None
            try:
                response = self._send(method, path, params, json_body)
            except requests.RequestException as exc:
                failure = ApiError(f"{what}: {type(exc).__name__} ({_short(exc)})")
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return decode_json(response.content, what)
                    except MalformedResponse as exc:
                        failure = ApiError(str(exc), status)
                else:
                    failure = self._error_for(what, status, response.content)
                    if status not in RETRIABLE_STATUS:
                        raise failure
                    retry_after = response.headers.get("Retry-After")
            if attempt >= self.policy.max_retries:
                raise ApiError(f"{failure} (after {attempt + 1} attempts)", failure.status)
            delay = self.policy.wait_for(attempt, retry_after)
            log.warning("request.retry", request=what, error=str(failure),
                        attempt=attempt + 1, wait_s=round(delay, 2))
            self._sleep(delay)
            attempt += 1

    def _send(self, method, path, params, json_body) -> requests.Response:
        with self._lock:
            self.requests_sent += 1
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        return self._session.request(method, self.base_url + path, params=params, json=json_body,
                                     headers=headers, timeout=self.timeout,
                                     allow_redirects=False)

    @staticmethod
    def _error_for(what: str, status: int, body: bytes) -> Exception:
        message = f"{what}: HTTP {status}: {error_message(body)}"
        if status == 401:
            return AuthError(f"the API refused the credentials (401) on {what}")
        if status == 403:
            return Forbidden(message, status)
        if status == 404:
            return NotFound(message, status)
        return ApiError(message, status)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."
