"""The fetcher's transfer against a small real HTTP server on loopback: bodies cut short,
bodies without Content-Length, encoded bodies, redirects."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
import time

import pytest

from syncd.api.retry import RetryPolicy
from syncd.fetch import Fetcher, Interrupted, TransferConfig
from syncd.storage.filesystem import FilesystemStorage
from syncd.transfer import BrokenTransfer
from tests.test_storage_conformance import aws_credentials, s3_config  # noqa: F401

BODY = bytes(range(256)) * 20_000  # 5,120,000 bytes: several buffers, so the sink thread runs
BIG = bytes(reversed(range(256))) * 50_000  # 12,800,000 bytes


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/short.jpg":  # promises more than it sends, then closes cleanly
            self._head(200, {"Content-Length": str(len(BODY))})
            self.wfile.write(BODY[: len(BODY) // 2])
            self.close_connection = True
        elif self.path == "/chunked.jpg":
            self._head(200, {"Transfer-Encoding": "chunked"})
            for start in range(0, len(BODY), 300_000):
                piece = BODY[start : start + 300_000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/gzip.jpg":
            packed = gzip.compress(BODY)
            self._head(200, {"Content-Length": str(len(packed)), "Content-Encoding": "gzip"})
            self.wfile.write(packed)
        elif self.path == "/big.jpg":  # three S3 parts of 5 MiB
            self._head(200, {"Content-Length": str(len(BIG))})
            self.wfile.write(BIG)
        elif self.path == "/hop.jpg":
            self._head(302, {"Location": "/whole.jpg", "Content-Length": "0"})
        else:
            self._head(200, {"Content-Length": str(len(BODY))})
            self.wfile.write(BODY)

    def _head(self, status, headers):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def make_fetcher(tmp_path, transfer: TransferConfig) -> Fetcher:
    storage = FilesystemStorage(tmp_path / "dam")
    storage.check_writable()
    return Fetcher(
        None,
        storage,
        key_template="{media_type}/{media_id}/{size}{ext}",
        allow_http=False,
        transfer=transfer,
        pool_size=2,
    )


@pytest.fixture
def fetcher(tmp_path):
    f = make_fetcher(tmp_path, TransferConfig())
    yield f
    f.close()


def transfer(fetcher, url):
    """One transfer, no second attempt: a break is raised as it is."""

    def broke(exc, resume_from=None):
        raise exc

    return fetcher._transfer(url, "images/1/huge.jpg", "images", "i1", broke)


def test_whole_body_is_stored_with_its_sha256(fetcher, server):
    stored = transfer(fetcher, server + "/whole.jpg")
    assert stored.size_bytes == len(BODY)
    assert stored.sha256 == hashlib.sha256(BODY).hexdigest()
    assert (fetcher.storage.root / "images/1/huge.jpg").read_bytes() == BODY


def test_body_cut_short_is_a_broken_transfer_and_leaves_nothing(fetcher, server):
    with pytest.raises(BrokenTransfer):
        transfer(fetcher, server + "/short.jpg")
    assert not (fetcher.storage.root / "images").exists()
    assert list(fetcher.storage.partial_dir.iterdir()) == []


def test_chunked_body_without_content_length(fetcher, server):
    stored = transfer(fetcher, server + "/chunked.jpg")
    assert stored.sha256 == hashlib.sha256(BODY).hexdigest()


def test_encoded_body_is_stored_decoded(fetcher, server):
    stored = transfer(fetcher, server + "/gzip.jpg")
    assert stored.sha256 == hashlib.sha256(BODY).hexdigest()


def test_redirect_within_loopback_is_followed(fetcher, server):
    stored = transfer(fetcher, server + "/hop.jpg")
    assert stored.size_bytes == len(BODY)


class Trickle(Handler):
    def do_GET(self):
        self._head(200, {"Content-Length": str(len(BODY))} if self.path == "/slow.jpg" else {})
        try:
            for _ in range(200):
                self.wfile.write(b"x" * 10)
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass
        self.close_connection = True


@pytest.fixture
def trickle():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("path", ["/slow.jpg", "/slow-no-length.jpg"])
def test_a_trickling_host_is_cut_off_after_the_stall_time(tmp_path, trickle, path):
    storage = FilesystemStorage(tmp_path / "dam")
    storage.check_writable()
    f = Fetcher(
        None,
        storage,
        key_template="{media_type}/{media_id}/{size}{ext}",
        allow_http=False,
        transfer=TransferConfig(timeout_s=1.0),
        pool_size=2,
    )
    started = time.monotonic()
    try:
        with pytest.raises(BrokenTransfer):
            transfer(f, trickle + path)
    finally:
        f.close()
    assert time.monotonic() - started < 5
    assert not (storage.root / "images").exists()


def test_stopping_the_run_cuts_a_blocked_read_at_once(tmp_path, trickle):
    storage = FilesystemStorage(tmp_path / "dam")
    storage.check_writable()
    stop = threading.Event()
    f = Fetcher(
        None,
        storage,
        key_template="{media_type}/{media_id}/{size}{ext}",
        allow_http=False,
        transfer=TransferConfig(timeout_s=60),
        pool_size=2,
        stop=stop,
    )
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            transfer(f, trickle + "/slow.jpg")
    finally:
        f.close()
    assert time.monotonic() - started < 3


LARGE = (bytes(range(251)) * 45_000)[: (9 << 20) + 123]  # over the O_DIRECT size, odd tail


class LargeHandler(Handler):
    def do_GET(self):
        self._head(200, {"Content-Length": str(len(LARGE))})
        self.wfile.write(LARGE)


def test_a_large_file_written_past_the_page_cache_is_whole(fetcher):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LargeHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        stored = transfer(fetcher, f"http://127.0.0.1:{httpd.server_address[1]}/big.mov")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert stored.sha256 == hashlib.sha256(LARGE).hexdigest()
    assert (fetcher.storage.root / "images/1/huge.jpg").read_bytes() == LARGE


def test_direct_writer_falls_back_for_writes_the_kernel_refuses(tmp_path):
    storage = FilesystemStorage(tmp_path / "dam")
    storage.check_writable()
    data = bytes(range(256)) * 40_001  # not a whole number of blocks
    with storage.writer("videos/1/hd.mov", size_hint=64 << 20) as writer:
        writer.write(data[:1000])  # unaligned bytes object
        writer.write(data[1000:])
        writer.commit()
    assert (storage.root / "videos/1/hd.mov").read_bytes() == data


def test_tls_and_routing_failures_are_network_errors_and_local_ones_are_not():
    import errno
    import ssl

    from syncd.transfer import is_network_error

    assert is_network_error(ssl.SSLError("bad record mac"))
    assert is_network_error(OSError(errno.EHOSTUNREACH, "no route"))
    assert is_network_error(ConnectionResetError())
    assert not is_network_error(OSError(errno.ENOSPC, "no space left on device"))


# --- resuming a broken body ---------------------------------------------------------------------


class Resumable(Handler):
    """Serves BODY with an ETag and byte ranges. The first whole-body answer of a path breaks
    after CUT bytes (a reset). ``/changed.jpg`` changes its ETag after that first answer;
    ``/badrange.jpg`` answers a range with the wrong Content-Range; ``/norange.jpg`` ignores
    ranges and has no validator."""

    CUT = 3_000_000
    log: list[tuple[str, str | None, str | None, int]] = []  # path, Range, If-Range, bytes sent
    broken: set[str] = set()

    def do_GET(self):
        path, wanted = self.path, self.headers.get("Range")
        etag = '"v2"' if path == "/changed.jpg" and path in self.broken else '"v1"'
        headers = {"Accept-Ranges": "bytes"} if path != "/norange.jpg" else {}
        if path != "/norange.jpg":
            headers["ETag"] = etag
        if_range = self.headers.get("If-Range")
        start = 0
        if wanted and path != "/norange.jpg" and (if_range is None or if_range == etag):
            start = int(wanted.removeprefix("bytes=").split("-")[0])
        body = BODY[start:]
        if start:
            first = start + 1 if path == "/badrange.jpg" else start
            headers["Content-Range"] = f"bytes {first}-{len(BODY) - 1}/{len(BODY)}"
        headers["Content-Length"] = str(len(body))
        self._head(206 if start else 200, headers)
        sent = body
        if path not in self.broken and not start:
            self.broken.add(path)
            sent = body[: self.CUT]
        try:
            self.wfile.write(sent)
            self.wfile.flush()
        except OSError:
            pass
        Resumable.log.append((path, wanted, if_range, len(sent)))
        if len(sent) < len(body):
            self.close_connection = True
            self.connection.shutdown(2)


@pytest.fixture
def resumable():
    Resumable.log, Resumable.broken = [], set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Resumable)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def quick_fetcher(tmp_path):
    """Retries after 10 ms, not seconds."""
    f = make_fetcher(tmp_path, TransferConfig(backoff=RetryPolicy(base_s=0.01, cap_s=0.01)))
    yield f
    f.close()


def download(fetcher, url):
    return fetcher._download(url, "images/1/huge.jpg", "images", "i1")


def test_a_body_broken_midway_is_resumed_from_the_next_byte(quick_fetcher, resumable):
    stored = download(quick_fetcher, resumable + "/file.jpg")
    assert stored.size_bytes == len(BODY)
    assert stored.sha256 == hashlib.sha256(BODY).hexdigest()
    assert (quick_fetcher.storage.root / "images/1/huge.jpg").read_bytes() == BODY
    (_, first_range, _, first_sent), (_, second_range, if_range, second_sent) = Resumable.log
    assert first_range is None and first_sent == Resumable.CUT
    # the second request asks for exactly what is missing, and only if the file is the same
    assert second_range == f"bytes={Resumable.CUT}-" and if_range == '"v1"'
    assert first_sent + second_sent == len(BODY)  # the break cost nothing twice


def test_a_file_that_changed_meanwhile_is_fetched_again_from_byte_0(quick_fetcher, resumable):
    stored = download(quick_fetcher, resumable + "/changed.jpg")
    assert stored.sha256 == hashlib.sha256(BODY).hexdigest()
    (_, _, _, first_sent), (_, second_range, if_range, second_sent) = Resumable.log
    assert second_range == f"bytes={Resumable.CUT}-" and if_range == '"v1"'
    assert second_sent == len(BODY)  # If-Range did not match: the whole file came, and is used
    assert (quick_fetcher.storage.root / "images/1/huge.jpg").read_bytes() == BODY
    assert list(quick_fetcher.storage.partial_dir.iterdir()) == []


def test_a_range_answered_with_other_bytes_starts_again(quick_fetcher, resumable):
    stored = download(quick_fetcher, resumable + "/badrange.jpg")
    assert stored.sha256 == hashlib.sha256(BODY).hexdigest()
    paths = [entry[1] for entry in Resumable.log]
    assert paths == [None, f"bytes={Resumable.CUT}-", None]  # range refused, then from 0


def test_without_a_validator_a_broken_body_starts_again_from_byte_0(quick_fetcher, resumable):
    stored = download(quick_fetcher, resumable + "/norange.jpg")
    assert stored.sha256 == hashlib.sha256(BODY).hexdigest()
    assert [entry[1] for entry in Resumable.log] == [None, None]
    assert [entry[3] for entry in Resumable.log] == [Resumable.CUT, len(BODY)]


# --- into S3: the download is read straight into the part being filled ---------------------


@pytest.fixture(params=["moto", "seaweedfs"])
def s3_fetcher(request):
    """A fetcher storing into a fresh bucket of a real S3 server (5 MiB parts and threshold:
    BIG is three parts, BODY one PUT), with retries after 10 ms."""
    request.getfixturevalue("aws_credentials")
    from syncd.storage import open_storage

    server = request.getfixturevalue("s3_servers")(request.param)
    storage = open_storage(s3_config(server, server.new_bucket()))
    storage.check_writable()
    fetcher = Fetcher(
        None,
        storage,
        key_template="{media_type}/{media_id}/{size}{ext}",
        allow_http=False,
        transfer=TransferConfig(backoff=RetryPolicy(base_s=0.01, cap_s=0.01)),
        pool_size=2,
    )
    yield fetcher
    fetcher.close()


def stored_bytes(storage, key: str) -> bytes:
    return b"".join(storage.read(key))


@pytest.mark.parametrize(
    "path, body",
    [("/big.jpg", BIG), ("/chunked.jpg", BODY), ("/whole.jpg", BODY)],
    ids=["parts", "unknown-length", "one-put"],
)
def test_a_download_into_s3_is_read_into_the_upload_buffers_and_never_copied(
    s3_fetcher, server, monkeypatch, path, body
):
    from syncd.storage.s3 import S3Writer

    def copying_write(self, data):
        raise AssertionError("the body went through write(): one more copy of every byte")

    monkeypatch.setattr(S3Writer, "write", copying_write)
    stored = transfer(s3_fetcher, server + path)
    assert stored.size_bytes == len(body)
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    assert stored_bytes(s3_fetcher.storage, "images/1/huge.jpg") == body
    assert s3_fetcher.storage.unfinished_uploads() == []
    head = s3_fetcher.storage.client.head_object(
        Bucket=s3_fetcher.storage.bucket, Key=s3_fetcher.storage.object_key("images/1/huge.jpg")
    )
    # a multipart ETag ends in -<parts>: 12.8 MB is three 5 MiB parts; a body of the announced
    # size below the threshold, which fills its buffer exactly, is one PUT
    assert head["ETag"].strip('"').endswith("-3") == (path == "/big.jpg")


def test_a_body_broken_midway_into_s3_is_resumed_from_the_next_byte(s3_fetcher, resumable):
    stored = download(s3_fetcher, resumable + "/file.jpg")
    assert stored.sha256 == hashlib.sha256(BODY).hexdigest()
    assert stored_bytes(s3_fetcher.storage, "images/1/huge.jpg") == BODY
    (_, first_range, _, first_sent), (_, second_range, _, second_sent) = Resumable.log
    assert first_range is None and second_range == f"bytes={Resumable.CUT}-"
    assert first_sent + second_sent == len(BODY)
