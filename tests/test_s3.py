"""`syncd sync` and `syncd verify` against real S3 servers on loopback, for what only S3 has:
multipart uploads killed half-way, buckets and credentials, and a store that says SlowDown.
The rest of the sync suite runs on S3 too (scripts/test.sh, SYNCD_TEST_STORAGE)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from syncd.simulator import Simulator
from tests.conftest import TOKEN, Syncd, file_catalog, sigkill
from tests.s3servers import S3Mirror, S3Server, free_port

MIB = 1 << 20


def on_s3(tmp_path, sim, server: S3Server, bucket: str | None = None) -> Syncd:
    syncd = Syncd(tmp_path, sim)
    syncd.s3 = S3Mirror(server, bucket or server.new_bucket(), "dam", syncd.root)
    syncd.env.update(syncd.s3.env())
    return syncd


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.mark.parametrize("server_name", ["moto", "seaweedfs"])
def test_sigkill_during_a_multipart_upload_leaves_no_object_and_repair_then_sync_finish_it(
    tmp_path, s3_servers, server_name
):
    server = s3_servers(server_name)
    # three files of 12 MiB, in 5 MiB parts, at 4 MiB/s: each upload lasts seconds
    catalog = file_catalog(seed=31, stream="videos", count=3, size=12 * MIB)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = on_s3(tmp_path, sim, server)
        syncd.env.update(
            {
                "SYNCD_STORAGE__MULTIPART_THRESHOLD": "5MiB",
                "SYNCD_STORAGE__PART_SIZE": "5MiB",
                "SYNCD_SYNC__CONCURRENCY": "1",
            }
        )
        process = syncd.start("sync", "--json", "--no-progress", "--bwlimit", "4MiB")
        deadline = time.monotonic() + 60
        uploads: list[str] = []
        while time.monotonic() < deadline and process.poll() is None:
            uploads = syncd.s3.unfinished_uploads()
            if uploads and _parts_sent(syncd.s3, uploads[0]) >= 1:
                break
            time.sleep(0.05)
        assert uploads, "no multipart upload was seen in progress"
        sigkill(process)
        key = uploads[0]
        objects = [
            item["Key"]
            for item in syncd.s3.client.list_objects_v2(Bucket=syncd.s3.bucket).get("Contents", [])
        ]
        assert key not in objects  # nothing under the key before the upload completes
        assert syncd.s3.unfinished_uploads() == [key]

        done = syncd.run("verify", "--repair", "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(last_line(done.stdout))
        assert report["leftovers"] == 1 and report["leftovers_removed"] == 1
        assert syncd.s3.unfinished_uploads() == []

        again = syncd.sync()
        assert again.returncode == 0, again.stderr
        stored = syncd.stored_files()
        assert len(stored) == 3
        for path in stored.values():
            media_id = path.parent.name
            assert path.stat().st_size == 12 * MIB
            assert sim.expected_sha256("videos", media_id, path.stem) == _sha256(path)
        assert syncd.s3.unfinished_uploads() == []


def _parts_sent(mirror: S3Mirror, key: str) -> int:
    [upload] = [
        u
        for u in mirror.client.list_multipart_uploads(Bucket=mirror.bucket).get("Uploads", [])
        if u["Key"] == key
    ]
    parts = mirror.client.list_parts(Bucket=mirror.bucket, Key=key, UploadId=upload["UploadId"])
    return len(parts.get("Parts", []))


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("server_name", ["moto", "seaweedfs"])
def test_a_missing_bucket_exits_4_naming_it_before_any_api_request(
    tmp_path, sim, s3_servers, server_name
):
    server = s3_servers(server_name)
    syncd = on_s3(tmp_path, sim, server)
    syncd.env["SYNCD_STORAGE__BUCKET"] = "syncd-nowhere"
    done = syncd.sync()
    assert done.returncode == 4, done.stderr
    assert last_line(done.stderr) == (
        f"syncd: cannot check s3://syncd-nowhere/dam at {server.endpoint}: bucket "
        "'syncd-nowhere' does not exist: create it, or set storage.create_bucket = true"
    )
    assert sim.requests == []
    names = [b["Name"] for b in server.client().list_buckets()["Buckets"]]
    assert "syncd-nowhere" not in names


@pytest.mark.parametrize("server_name", ["moto", "seaweedfs"])
def test_create_bucket_makes_the_missing_bucket_and_the_sync_fills_it(
    tmp_path, sim, s3_servers, server_name
):
    server = s3_servers(server_name)
    bucket = f"syncd-new-{int(time.time() * 1000) % 10**9}"
    syncd = on_s3(tmp_path, sim, server, bucket=bucket)
    done = syncd.sync(env={"SYNCD_STORAGE__CREATE_BUCKET": "true"})
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 9
    assert len(syncd.stored_files()) == 9


def test_refused_credentials_exit_4_saying_so(tmp_path, sim, s3_servers):
    server = s3_servers("seaweedfs")  # moto takes any credentials; SeaweedFS checks them
    syncd = on_s3(tmp_path, sim, server)
    done = syncd.sync(env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert done.returncode == 4, done.stderr
    assert last_line(done.stderr) == (
        f"syncd: cannot check s3://{syncd.s3.bucket}/dam at {server.endpoint}: the store "
        "refused the credentials (403): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the "
        "bucket's policy"
    )
    assert "not-the-secret" not in done.stderr
    assert sim.requests == []


def test_an_endpoint_where_nothing_listens_exits_4_naming_it(tmp_path, sim, s3_servers):
    server = s3_servers("moto")
    syncd = on_s3(tmp_path, sim, server)
    endpoint = f"http://127.0.0.1:{free_port()}"
    done = syncd.sync(env={"SYNCD_STORAGE__ENDPOINT_URL": endpoint})
    assert done.returncode == 4, done.stderr
    line = last_line(done.stderr)
    assert line.startswith(f"syncd: cannot check s3://{syncd.s3.bucket}/dam at {endpoint}: ")
    assert "the endpoint cannot be reached" in line and "check storage.endpoint_url" in line
    assert sim.requests == []


class SlowDownProxy:
    """Forwards every request to an S3 server, but answers the first ``count`` object and part
    uploads with 503 SlowDown, as AWS does when a prefix is written too fast."""

    def __init__(self, upstream: str, count: int):
        self.upstream, self.left = upstream, count
        self.refused: list[str] = []
        self.forwarded: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                what = f"{self.command} {self.path}"
                with proxy._lock:
                    refuse = self.command == "PUT" and "uploads" not in self.path and proxy.left
                    if refuse:
                        proxy.left -= 1
                        proxy.refused.append(what)
                    else:
                        proxy.forwarded.append(what)
                if refuse:
                    answer = (
                        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                        b"<Message>Please reduce your request rate.</Message></Error>"
                    )
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=60,
                )
                self.send_response(upstream.status_code)
                for name, value in upstream.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(upstream.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_slowdown_answers_are_retried_and_every_file_is_stored(tmp_path, sim, s3_servers):
    server = s3_servers("moto")  # moto does not check the signature's host: a proxy may sit between
    proxy = SlowDownProxy(server.endpoint, count=3)
    try:
        syncd = on_s3(tmp_path, sim, server)
        syncd.env["SYNCD_STORAGE__ENDPOINT_URL"] = proxy.endpoint
        done = syncd.sync()
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 9 and done.summary["failed"] == 0
    assert len(proxy.refused) == 3
    # each refused upload was sent again, and went through
    for refused in proxy.refused:
        assert refused in proxy.forwarded
    stored = syncd.stored_files()
    assert len(stored) == 9
    for key, path in stored.items():
        media_type, media_id = key.split("/")[:2]
        assert sim.expected_sha256(media_type, media_id, path.stem) == _sha256(path)


def test_sync_and_verify_name_the_bucket_they_use(tmp_path, sim, s3_servers):
    server = s3_servers("moto")
    syncd = on_s3(tmp_path, sim, server)
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    [loaded] = [
        json.loads(line)
        for line in done.stderr.splitlines()
        if json.loads(line)["event"] == "config.loaded"
    ]
    assert f"s3://{syncd.s3.bucket}/dam" in loaded["storage"]
    assert server.endpoint in loaded["storage"]
    verified = subprocess.run(
        syncd.command("verify", "--json", "--full"),
        cwd=syncd.home,
        env=syncd.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(last_line(verified.stdout))["ok"] == 9
