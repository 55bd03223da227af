"""`Simulator`: the catalog served over real HTTP, as api.shutterstock.com and its download
host would serve it, with a log of every request and faults on demand."""

from __future__ import annotations

import dataclasses
import hmac
import itertools
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from requests.structures import CaseInsensitiveDict

from syncd.simulator.answers import Answer, error_answer, json_answer, raw_answer
from syncd.simulator.api import BadRequest, ListQuery, license_page, redownload
from syncd.simulator.catalog import KINDS, ORIGINAL, STREAMS, Catalog, FileKey, License, file_ext
from syncd.simulator.content import ContentStore
from syncd.simulator.downloads import DownloadLinks, file_answer, published_path
from syncd.simulator.faults import FaultPlan, Hold, RandomFaults
from syncd.simulator.licensing import (
    SANDBOX_STREAMS,
    Grant,
    LicenseRequest,
    Outcome,
    grant,
    parse_request,
    parsed_body,
    results,
)
from syncd.simulator.media import detail_list, editorial_details, editorial_updated, updated_media

_LIST = re.compile(r"/v2/(images|videos|audio|editorial/images|editorial/videos)/licenses")
_REDOWNLOAD = re.compile(r"/v2/(images|videos|audio)/licenses/([^/]+)/downloads")
_FILE = re.compile(r"/files/([^/]+)/([^/]+)")
_SANDBOX_TOKEN = "sandbox-"  # + the stream: the sandbox's sample files
_LICENSING = r"^/v2/(images|videos|audio|editorial/images|editorial/videos)/licenses$"
_DETAILS = re.compile(r"/v2/(images|videos|audio)")
_UPDATED = re.compile(r"/v2/(images|videos)/updated")
_EDITORIAL_UPDATED = re.compile(r"/v2/editorial(?:/images)?/updated")
_EDITORIAL_DETAILS = re.compile(r"/v2/(editorial/images|editorial/videos)/([^/]+)")

PageCallback = Callable[["Simulator"], None]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as sent, without the query
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict
    body: bytes


@dataclass(frozen=True)
class RequestRecord(Request):
    status: int  # 0: the connection was reset without an answer
    received: int = 0  # the order the requests arrived in (the log is in the order answered)
    received_at: float = 0.0  # time.monotonic() on arrival


class Simulator:
    """Serves `catalog` on `host:port` (0: any free port) from `start()` until `stop()`."""

    def __init__(
        self,
        catalog: Catalog | None = None,
        token: str = "demo-token",
        host: str = "127.0.0.1",
        port: int = 0,
        url_ttl_s: float = 8 * 3600,
        download_base: str | None = None,
        files_dir: str | Path | None = None,
        random_faults: RandomFaults | None = None,
        clock: Callable[[], float] = time.time,
        sandbox: bool = False,
    ):
        self.catalog = catalog if catalog is not None else Catalog.example()
        self.token = token
        self.host = host
        self.port = port
        self._links = DownloadLinks(
            url_ttl_s, clock, download_base, Path(files_dir) if files_dir is not None else None
        )
        self._random_faults = random_faults
        self.sandbox = sandbox
        """Licensing as the licensing sandbox does it (seed 002, "Licensing sandbox"): images
        and videos granted with a sample file, no license, no download spent, the credits
        counted apart (`sandbox_credits`); audio and editorial licensing refused (403)."""
        self._license_log: list[LicenseRequest] = []
        self._holds: list[Hold] = []
        self._faults = FaultPlan()
        self._content = ContentStore()
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._arrivals = itertools.count(1)  # next() is atomic: numbers requests as they arrive
        self._page_callbacks: dict[tuple[str, int], list[PageCallback]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- running ---------------------------------------------------------------------------

    def start(self) -> Simulator:
        for stream in STREAMS:
            for lic in self.catalog.history(stream):
                self._publish(lic)
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name="simulator",
            kwargs={"poll_interval": 0.02},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        with self._lock:
            holds = list(self._holds)
        for hold in holds:
            hold.abandon()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}"

    # -- the request log -------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def api_requests(
        self, method: str | None = None, path: str | None = None
    ) -> list[RequestRecord]:
        return [
            record
            for record in self.requests
            if record.path.startswith("/v2")
            and (method is None or record.method == method.upper())
            and path in (None, record.path)
        ]

    def list_requests(self, stream: str) -> list[RequestRecord]:
        return self.api_requests("GET", f"/v2/{stream}/licenses")

    def pages_requested(self, stream: str) -> list[int]:
        """The `page` of every license-list request of `stream`, in the order received
        (retries included; 1 where the query gave none)."""
        return [int(record.query.get("page", ["1"])[0]) for record in self.list_requests(stream)]

    def detail_requests(self, media_type: str) -> list[RequestRecord]:
        """The detail requests of `media_type`: `GET /v2/{images,videos,audio}` (one per batch
        of ids) or, for editorial media, `GET /v2/editorial/{images,videos}/{id}`."""
        if media_type.startswith("editorial/"):
            return [
                record
                for record in self.api_requests("GET")
                if (match := _EDITORIAL_DETAILS.fullmatch(record.path))
                and match[1] == media_type
                and match[2] not in ("updated", "licenses", "categories", "search")
            ]
        return self.api_requests("GET", f"/v2/{media_type}")

    def detail_ids_requested(self, media_type: str) -> list[str]:
        """Every id asked for by the detail requests of `media_type`, in order, repeats kept."""
        ids: list[str] = []
        for record in self.detail_requests(media_type):
            if media_type.startswith("editorial/"):
                ids.append(unquote(record.path.rsplit("/", 1)[1]))
            else:
                ids += [part for raw in record.query.get("id", []) for part in raw.split(",")]
        return ids

    def updated_requests(self, media_type: str) -> list[RequestRecord]:
        """The updated-media requests of `media_type` (for editorial/images, on either path)."""
        paths = {f"/v2/{media_type}/updated"}
        if media_type == "editorial/images":
            paths.add("/v2/editorial/updated")
        return [record for record in self.api_requests("GET") if record.path in paths]

    def set_now(self, now: datetime | None) -> None:
        """The clock the updated-media `interval` counts back from (None: the real time)."""
        self.catalog.set_now(now)

    def download_requests(self) -> list[RequestRecord]:
        return [record for record in self.requests if record.path.startswith("/files/")]

    def reset_log(self) -> None:
        with self._lock:
            self._records.clear()

    # -- shaping what happens --------------------------------------------------------------

    def add_license(
        self,
        stream: str,
        media_id: str | None = None,
        size: str | None = None,
        is_downloadable: bool | None = True,
        username: str = "jsmith",
        **details,
    ) -> dict:
        """A new license at the head of `stream` (see `Catalog.add` for `details`); returns
        the item as the license list shows it."""
        lic = self.catalog.add(
            stream,
            media_id=media_id,
            size=size,
            is_downloadable=is_downloadable,
            username=username,
            **details,
        )
        self._publish(lic)
        return lic.to_api()

    def clear_faults(self) -> None:
        """Every fault set by `add_fault` and not yet used up is dropped."""
        self._faults.clear()

    def on_list_page(self, stream: str, page: int, callback: PageCallback) -> None:
        """Run `callback(self)` once, the next time page `page` of `stream` is served: after
        the page's content is fixed and before it is sent, so that every later request, on
        any connection, sees what the callback changed."""
        with self._lock:
            self._page_callbacks.setdefault((stream, page), []).append(callback)

    def add_fault(
        self,
        method: str,
        path_regex: str,
        *,
        status: int | None = None,
        body: bytes | str | dict | list | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        times: int = 1,
        action: str | None = None,
        delay_s: float | None = None,
    ) -> Hold | None:
        """Answer the next `times` requests of `method` whose path matches `path_regex`
        (`re.search`) with `status` and `body`, or with `action`: `reset` (close the
        connection unanswered), `truncate` (full headers, half the body, then reset), `html`
        (`status`, default 502, with an HTML page), `badjson` (200 with broken JSON).
        These three let the request take effect (a license granted, its credit spent) and
        then: `hold` (the answer waits for the returned Hold's `release()`, or for ever),
        `delay` (the answer is sent `delay_s` late: past a client's timeout), `reset_after`
        (the connection is reset, unanswered)."""
        hold = None
        if action == "hold":
            hold = Hold()
        elif action == "delay":
            if delay_s is None or delay_s < 0:
                raise ValueError("the action delay needs delay_s, 0 or more")
            hold = Hold(timeout_s=delay_s)
        if hold is not None:
            with self._lock:
                self._holds.append(hold)
        self._faults.add(
            method,
            path_regex,
            status=status,
            body=body,
            content_type=content_type,
            headers=headers,
            times=times,
            action=action,
            hold=hold,
        )
        return hold

    # -- licensing -------------------------------------------------------------------------

    @staticmethod
    def _licensing_path(stream: str | None) -> str:
        return _LICENSING if stream is None else rf"^/v2/{re.escape(stream)}/licenses$"

    def hold_next_license(self, stream: str | None = None, times: int = 1) -> Hold:
        """The next `times` licensing requests (of `stream`, None: any) are granted and
        charged, and their answers kept back until `release()` (or the simulator stops):
        time for a test to kill the client between sending and answer."""
        hold = self.add_fault("POST", self._licensing_path(stream), action="hold", times=times)
        assert hold is not None
        return hold

    def time_out_next_license(
        self, stream: str | None = None, delay_s: float = 30.0, times: int = 1
    ) -> Hold:
        """The next licensing requests are granted and charged, then answered `delay_s` late
        (longer than the client waits); the Hold can send them at once."""
        hold = self.add_fault(
            "POST", self._licensing_path(stream), action="delay", delay_s=delay_s, times=times
        )
        assert hold is not None
        return hold

    def reset_next_license(self, stream: str | None = None, times: int = 1) -> None:
        """The next licensing requests are granted and charged, then their connection reset."""
        self.add_fault("POST", self._licensing_path(stream), action="reset_after", times=times)

    def license_requests(self, stream: str | None = None) -> list[LicenseRequest]:
        """The licensing POSTs received (held ones too), in order, with their parsed bodies."""
        with self._lock:
            return [r for r in self._license_log if stream in (None, r.stream)]

    def grants(self, stream: str | None = None, *, sandbox: bool = False) -> list[Grant]:
        """Every item licensed (`sandbox`: granted by the sandbox instead), in order."""
        return [
            one
            for request in self.license_requests(stream)
            for one in request.grants
            if one.sandbox == sandbox
        ]

    def credits_spent(self, stream: str | None = None, media_id: str | None = None) -> int:
        """The credits licensing spent: all, or of one stream, or of one media id."""
        return sum(one.credits for one in self.grants(stream) if media_id in (None, one.media_id))

    def credits_by_media(self) -> dict[tuple[str, str], int]:
        """The credits spent per (stream, media id)."""
        spent: dict[tuple[str, str], int] = {}
        for one in self.grants():
            key = (one.stream, one.media_id)
            spent[key] = spent.get(key, 0) + one.credits
        return spent

    def sandbox_credits(self) -> int:
        """The allotment charges the sandbox answered with, spent from no subscription."""
        return sum(one.credits for one in self.grants(sandbox=True))

    def _license(self, stream: str, request: Request) -> Answer:
        def logged(answer: Answer, error: str | None, outcomes: Sequence[Outcome] = ()) -> Answer:
            grants = tuple(
                Grant(
                    stream,
                    outcome.wanted.media_id,
                    outcome.wanted.subscription.id,
                    outcome.license.id if outcome.license is not None else None,
                    outcome.credits,
                    self.sandbox,
                )
                for outcome in outcomes
                if outcome.error is None
            )
            errors = tuple(o.error for o in outcomes if o.error is not None)
            record = LicenseRequest(
                stream,
                request.query,
                parsed_body(request.body),
                answer.status,
                error,
                grants,
                errors,
            )
            with self._lock:
                self._license_log.append(record)
            return answer

        if self.sandbox and stream not in SANDBOX_STREAMS:
            message = f"Licensing {stream} is not available in the licensing sandbox"
            return logged(error_answer(403, message), message)
        now = self.catalog.now()
        try:
            wanted = parse_request(self.catalog, stream, request.query, request.body, now)
        except BadRequest as bad:
            return logged(bad.answer(), str(bad))
        outcomes = grant(self.catalog, stream, wanted, now, self.sandbox)
        for outcome in outcomes:
            if outcome.license is not None:
                self._publish(outcome.license)
        base_url = self.base_url
        answer = json_answer(
            200,
            results(stream, outcomes, lambda outcome: self._grant_url(stream, outcome, base_url)),
        )
        return logged(answer, None, outcomes)

    def _grant_url(self, stream: str, outcome: Outcome, base_url: str) -> str:
        if outcome.license is not None:
            return self._links.url(outcome.license, base_url)
        size = outcome.wanted.size
        return f"{base_url}/files/{_SANDBOX_TOKEN}{stream}/sample_{size}{file_ext(stream, size)}"

    def _subscriptions(self) -> Answer:
        return json_answer(200, {"data": [sub.to_api() for sub in self.catalog.subscriptions()]})

    # -- the files served ------------------------------------------------------------------

    def expected_size(self, stream: str, media_id: str, size: str | None) -> int:
        return self.catalog.file_size(FileKey(stream, media_id, size or ORIGINAL))

    def expected_sha256(self, stream: str, media_id: str, size: str | None) -> str:
        key = FileKey(stream, media_id, size or ORIGINAL)
        return self._content.sha256(key, self.catalog.file_size(key))

    @staticmethod
    def file_ext(stream: str, size: str | None) -> str:
        return file_ext(stream, size)

    def _publish(self, lic: License) -> None:
        """With `files_dir`, write the file of a license that can be redownloaded there."""
        files_dir = self._links.files_dir
        if files_dir is None or KINDS[lic.stream].redownload_sizes is None:
            return
        if lic.is_downloadable is not False:
            size = self.catalog.file_size(lic.file)
            ContentStore.write(lic.file, size, files_dir / published_path(lic.file))

    # -- answering -------------------------------------------------------------------------

    def _answer(self, request: Request) -> Answer:
        fault = self._faults.take(request.method, request.path)
        if fault is not None:
            return fault.answer(lambda: self._route(request))
        if self._random_faults is None:
            return self._route(request)
        return self._with_random_faults(request, self._random_faults)

    def _with_random_faults(self, request: Request, faults: RandomFaults) -> Answer:
        if request.path.startswith("/v2"):
            return faults.api_answer() or self._route(request)
        if request.path.startswith("/files/"):
            faults.delay_download()
        answer = self._route(request)
        if request.method == "GET" and answer.status in (200, 206) and faults.cut_download():
            return dataclasses.replace(answer, cut="truncate")
        return answer

    def _route(self, request: Request) -> Answer:
        if request.path.startswith("/files/"):
            return self._file(request)
        if not request.path.startswith("/v2"):
            return error_answer(404, f"Not found: {request.path}")
        if not self._authorized(request):
            return error_answer(401, "Invalid or missing token")
        listing = _LIST.fullmatch(request.path)
        if listing and request.method == "GET":
            return self._license_list(listing[1], request)
        if listing and request.method == "POST":
            return self._license(listing[1], request)
        if request.path == "/v2/user/subscriptions" and request.method == "GET":
            return self._subscriptions()
        download = _REDOWNLOAD.fullmatch(request.path)
        if download and request.method == "POST":
            return redownload(
                self.catalog,
                self._links,
                self.base_url,
                download[1],
                unquote(download[2]),
                request.body,
            )
        if request.method == "GET":
            answer = self._media_route(request)
            if answer is not None:
                return answer
        return error_answer(404, f"Not found: {request.method} {request.path}")

    def _media_route(self, request: Request) -> Answer | None:
        """The detail and updated-media endpoints; None for another path."""
        path, query = request.path, request.query
        if match := _UPDATED.fullmatch(path):
            return updated_media(self.catalog, match[1], query)
        if _EDITORIAL_UPDATED.fullmatch(path):
            return editorial_updated(self.catalog, query)
        if match := _DETAILS.fullmatch(path):
            return detail_list(self.catalog, match[1], query)
        if match := _EDITORIAL_DETAILS.fullmatch(path):
            return editorial_details(self.catalog, match[1], unquote(match[2]), query)
        return None

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {self.token}".encode())

    def _license_list(self, stream: str, request: Request) -> Answer:
        try:
            query = ListQuery.parse(stream, request.query)
        except BadRequest as bad:
            return bad.answer()
        answer = json_answer(200, license_page(self.catalog, stream, query))
        with self._lock:
            callbacks = self._page_callbacks.pop((stream, query.page), [])
        for callback in callbacks:
            callback(self)
        return answer

    def _file(self, request: Request) -> Answer:
        match = _FILE.fullmatch(request.path)
        if match is None or request.method not in ("GET", "HEAD"):
            return raw_answer(404, b"Not Found", "text/plain")
        if match[1].startswith(_SANDBOX_TOKEN):
            return self._sandbox_file(match[1][len(_SANDBOX_TOKEN) :], match[2], request)
        license_id = self._links.license_id(match[1])
        if license_id is None:
            return raw_answer(403, b"Forbidden: this link is invalid or has expired", "text/plain")
        record = self.catalog.license(license_id)
        if record is None:
            return raw_answer(404, b"Not Found", "text/plain")
        key = record.file
        return file_answer(
            key,
            self.catalog.file_size(key),
            request.headers.get("Range"),
            request.headers.get("If-Range"),
        )

    def _sandbox_file(self, stream: str, name: str, request: Request) -> Answer:
        """The sandbox's preset sample, one per stream and size."""
        size = name.removeprefix("sample_").rsplit(".", 1)[0]
        if stream not in SANDBOX_STREAMS or not name.startswith("sample_"):
            return raw_answer(404, b"Not Found", "text/plain")
        key = FileKey(stream, "sandbox-sample", size)
        return file_answer(
            key, 24_576, request.headers.get("Range"), request.headers.get("If-Range")
        )

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close_connections(self) -> None:
        """Wake the threads waiting on kept-alive connections, so that they end."""
        with self._connections_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        super().finish()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=CaseInsensitiveDict(self.headers.items()),
            body=self.rfile.read(length) if length else b"",
        )
        simulator = self.server.simulator
        received, received_at = next(simulator._arrivals), time.monotonic()
        answer = simulator._answer(request)
        simulator._record(
            RequestRecord(
                **vars(request), status=answer.status, received=received, received_at=received_at
            )
        )
        self._send(answer)

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _send(self, answer: Answer) -> None:
        if answer.hold is not None and not answer.hold.block():
            self._reset()
            return
        if answer.cut == "reset":
            self._reset()
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(answer.length))
        self.end_headers()
        if self.command == "HEAD":
            return
        budget = answer.length // 2 if answer.cut == "truncate" else answer.length
        for chunk in answer.body:
            if budget <= 0:
                break
            self.wfile.write(chunk[:budget])
            budget -= len(chunk)
        if answer.cut == "truncate":
            # a moment for the half sent to reach the client: a reset discards what its
            # receive queue still holds, and a client that got nothing cannot resume
            self.wfile.flush()
            time.sleep(0.3)
            self._reset()

    def _reset(self) -> None:
        """Close with a TCP reset: the client sees its connection aborted."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def log_message(self, format: str, *args) -> None:
        """Quiet: the request log is `Simulator.requests`."""
