"""One conformance suite for every storage backend (rclone's fstest is the model): the same
tests, on a folder, on moto's standalone S3 server and on SeaweedFS, both real servers on
loopback. A backend passes when each test passes on it."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
import tracemalloc

import pytest

from syncd.config import MIB, StorageConfig
from syncd.errors import StorageError
from syncd.storage import open_storage
from syncd.storage.keys import UnsafeValue
from syncd.storage.s3 import MAX_PARTS, S3Storage, part_size_for
from tests.s3servers import ACCESS_KEY, SECRET_KEY

BACKENDS = ["filesystem", "moto", "seaweedfs"]
PART = 5 * MIB


def s3_config(server, bucket: str, **changes) -> StorageConfig:
    return dataclasses.replace(
        StorageConfig(),
        backend="s3",
        bucket=bucket,
        prefix="dam",
        endpoint_url=server.endpoint,
        addressing_style="path",
        region="us-east-1",
        multipart_threshold=PART,
        part_size=PART,
        **changes,
    )


@pytest.fixture
def aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path, aws_credentials):
    """(name, a function that opens the storage again: a new process's view of it)."""
    if request.param == "filesystem":
        config = dataclasses.replace(StorageConfig(), path=str(tmp_path / "dam"))
    else:
        server = request.getfixturevalue("s3_servers")(request.param)
        config = s3_config(server, server.new_bucket())
    opened = []

    def reopen():
        storage = open_storage(config)
        if not opened:  # a run checks its storage first (the folder's partial area is made)
            storage.check_writable()
        opened.append(storage)
        return storage

    yield request.param, reopen


def chunks(data: bytes, size: int = MIB):
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield view[start : start + size]


def put_stream(storage, key: str, data: bytes, size_hint: int | None) -> None:
    with storage.writer(key, size_hint=size_hint) as writer:
        for chunk in chunks(data):
            writer.write(chunk)
        writer.commit()


def read_all(storage, key: str) -> bytes:
    return b"".join(storage.read(key))


@pytest.mark.parametrize(
    "size, hinted",
    [
        (0, True),
        (1, True),
        (PART - 1, True),
        (PART, True),
        (PART + 1, True),
        (3 * PART + 17, True),
        (3 * PART + 17, False),
        (1000, False),
    ],
)
def test_put_from_a_stream_then_stat_and_read_back(backend, size, hinted):
    _name, reopen = backend
    storage = reopen()
    storage.check_writable()
    data = os.urandom(size)
    put_stream(storage, "images/1/huge.jpg", data, size if hinted else None)
    again = reopen()
    assert again.size_of("images/1/huge.jpg") == size
    assert (
        hashlib.sha256(read_all(again, "images/1/huge.jpg")).digest()
        == hashlib.sha256(data).digest()
    )
    assert again.leftovers() == []


def test_a_size_hint_that_is_wrong_still_stores_every_byte(backend):
    _name, reopen = backend
    storage = reopen()
    data = os.urandom(PART + 3 * MIB)
    put_stream(storage, "videos/2/hd.mov", data, size_hint=1000)  # far too small a hint
    assert read_all(reopen(), "videos/2/hd.mov") == data


def test_put_bytes_replaces_and_delete_removes(backend):
    _name, reopen = backend
    storage = reopen()
    storage.put_bytes("images/1/metadata.json", b'{"a": 1}')
    storage.put_bytes("images/1/metadata.json", b'{"a": 2}')
    assert read_all(reopen(), "images/1/metadata.json") == b'{"a": 2}'
    storage.delete("images/1/metadata.json")
    assert reopen().size_of("images/1/metadata.json") is None
    storage.delete("images/1/metadata.json")  # deleting what is not there is no error
    assert storage.size_of("images/9/none.jpg") is None


def test_move_puts_the_whole_object_under_the_new_key_and_removes_the_old(backend):
    _name, reopen = backend
    storage = reopen()
    data = os.urandom(PART + MIB)  # a multipart object on S3
    put_stream(storage, "images/5/huge.jpg", data, size_hint=len(data))
    assert storage.move("images/5/huge.jpg", "quarantine/images/5/huge.jpg") is True
    later = reopen()
    assert later.size_of("images/5/huge.jpg") is None
    assert read_all(later, "quarantine/images/5/huge.jpg") == data
    # a move repeated after it finished (a crash before the ledger heard of it) is done
    assert later.move("images/5/huge.jpg", "quarantine/images/5/huge.jpg") is True
    assert read_all(later, "quarantine/images/5/huge.jpg") == data
    assert later.move("images/6/none.jpg", "quarantine/images/6/none.jpg") is False


@pytest.mark.parametrize("key", ["../outside.jpg", "/abs/x.jpg", "images/../../x"])
def test_move_refuses_a_hostile_target_and_keeps_the_source(backend, key):
    _name, reopen = backend
    storage = reopen()
    storage.put_bytes("images/7/huge.jpg", b"kept")
    with pytest.raises(UnsafeValue):
        storage.move("images/7/huge.jpg", key)
    assert read_all(reopen(), "images/7/huge.jpg") == b"kept"


def test_nothing_is_visible_under_the_key_before_commit(backend):
    _name, reopen = backend
    storage = reopen()
    data = os.urandom(2 * PART + 5)
    with storage.writer("audio/3/original.wav", size_hint=len(data)) as writer:
        for chunk in chunks(data):
            writer.write(chunk)
            assert reopen().size_of("audio/3/original.wav") is None
        writer.commit()
    assert reopen().size_of("audio/3/original.wav") == len(data)


@pytest.mark.parametrize("size", [1000, 2 * PART + 5])
def test_a_failure_mid_stream_leaves_nothing(backend, size):
    _name, reopen = backend
    storage = reopen()
    data = os.urandom(size)

    class Broken(Exception):
        pass

    with pytest.raises(Broken), storage.writer("images/4/huge.jpg", size_hint=size) as writer:
        for chunk in chunks(data[: size // 2 + 1], 64 * 1024):
            writer.write(chunk)
        raise Broken()
    again = reopen()
    assert again.size_of("images/4/huge.jpg") is None
    assert again.leftovers() == []


def test_what_a_killed_writer_left_is_listed_and_removed(backend):
    name, reopen = backend
    storage = reopen()
    storage.check_writable()
    data = os.urandom(2 * PART + 5)
    writer = storage.writer("videos/5/4k.mov", size_hint=len(data))
    for chunk in chunks(data[: PART + MIB]):  # one part on its way, then the run is "killed"
        writer.write(chunk)
    if name != "filesystem":
        while writer._sending:  # the part has landed: an upload with data is what is left
            writer._wait_for_oldest()
    later = reopen()  # the next run opens the storage afresh
    leftovers = later.leftovers()
    assert len(leftovers) == 1
    assert later.size_of("videos/5/4k.mov") is None
    assert later.remove_partials() == 1
    assert reopen().leftovers() == []
    put_stream(later, "videos/5/4k.mov", data, len(data))
    assert read_all(reopen(), "videos/5/4k.mov") == data


@pytest.mark.parametrize(
    "key", ["../x", "/abs/x", "a//b", "a/./b", ".syncd-partial/x", "a/../b", "", "a\\b"]
)
def test_hostile_keys_are_refused_before_any_write(backend, key):
    _name, reopen = backend
    storage = reopen()
    with pytest.raises(UnsafeValue):
        storage.put_bytes(key, b"x")
    with pytest.raises(UnsafeValue):
        storage.writer(key, size_hint=1).write(b"x")
    assert reopen().leftovers() == []


def test_a_large_object_is_written_in_bounded_memory(backend):
    name, reopen = backend
    storage = reopen()
    size = 64 * MIB
    block = os.urandom(MIB)
    tracemalloc.start()
    try:
        with storage.writer("videos/6/4k.mov", size_hint=size) as writer:
            for _ in range(size // MIB):
                writer.write(block)
            writer.commit()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a folder holds nothing; S3 at most the part filling, the part on the wire and its body
    bound = 2 * MIB if name == "filesystem" else 4 * PART + 2 * MIB
    assert peak < bound, f"peak {peak / MIB:.1f} MiB"
    assert reopen().size_of("videos/6/4k.mov") == size


# --- S3 only ---------------------------------------------------------------------------------


@pytest.mark.parametrize("server_name", ["moto", "seaweedfs"])
def test_a_last_part_cut_short_counts_against_the_buffer_pool_until_it_is_sent(
    s3_servers, server_name, aws_credentials
):
    """Part memory stays within the pool's count of parts: the short last part of an upload
    keeps its place in the pool while it is on the wire, so no new buffer is made meanwhile."""
    server = s3_servers(server_name)
    storage = S3Storage(s3_config(server, server.new_bucket()), concurrency=1)  # pool of 2
    gate, sent = threading.Event(), []
    real_upload_part = storage.client.upload_part

    def held_upload_part(**kwargs):
        sent.append(kwargs["PartNumber"])
        gate.wait(30)
        return real_upload_part(**kwargs)

    storage.client.upload_part = held_upload_part
    data = os.urandom(PART + PART // 2)  # one full part and a short last one

    def upload():
        put_stream(storage, "videos/7/hd.mov", data, size_hint=len(data))

    uploading = threading.Thread(target=upload)
    uploading.start()
    taken = []
    taking = threading.Thread(target=lambda: taken.append(storage.buffers.take(PART)))
    try:
        deadline = time.monotonic() + 30
        while len(sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(sent) == [1, 2], "both parts should be on the wire"
        taking.start()
        taking.join(0.5)
        assert not taken, "a third buffer was made while both of the pool's were on the wire"
    finally:
        gate.set()
        uploading.join(30)
        if taking.ident is not None:
            taking.join(30)
    assert len(taken) == 1 and len(taken[0]) == PART
    assert read_all(storage, "videos/7/hd.mov") == data


@pytest.mark.parametrize("server_name", ["moto", "seaweedfs"])
def test_a_missing_bucket_is_a_storage_error_naming_it(s3_servers, server_name, aws_credentials):
    server = s3_servers(server_name)
    storage = S3Storage(s3_config(server, "syncd-no-such-bucket"))
    with pytest.raises(StorageError) as caught:
        storage.check_writable()
    assert str(caught.value) == (
        f"cannot check s3://syncd-no-such-bucket/dam at {server.endpoint}: bucket "
        "'syncd-no-such-bucket' does not exist: create it, or set storage.create_bucket = true"
    )


@pytest.mark.parametrize("server_name", ["moto", "seaweedfs"])
def test_create_bucket_creates_a_missing_bucket(s3_servers, server_name, aws_credentials):
    server = s3_servers(server_name)
    bucket = f"syncd-made-{os.urandom(4).hex()}"
    storage = S3Storage(s3_config(server, bucket, create_bucket=True))
    storage.check_writable()
    storage.put_bytes("images/1/metadata.json", b"{}")
    names = [b["Name"] for b in server.client().list_buckets()["Buckets"]]
    assert bucket in names


def test_refused_credentials_are_a_storage_error_saying_so(s3_servers, monkeypatch):
    server = s3_servers("seaweedfs")  # moto takes any credentials; SeaweedFS checks them
    bucket = server.new_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    storage = S3Storage(s3_config(server, bucket))
    with pytest.raises(StorageError) as caught:
        storage.check_writable()
    assert str(caught.value) == (
        f"cannot check s3://{bucket}/dam at {server.endpoint}: the store refused the "
        "credentials (403): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's policy"
    )


def test_an_endpoint_where_nothing_listens_is_a_storage_error_naming_it(aws_credentials):
    from tests.s3servers import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    config = dataclasses.replace(
        StorageConfig(), backend="s3", bucket="b-b-b", endpoint_url=endpoint, region="us-east-1"
    )
    storage = S3Storage(config)
    storage.client.meta.config.retries["max_attempts"] = 1
    with pytest.raises(StorageError) as caught:
        storage.check_writable()
    assert str(caught.value).startswith(
        f"cannot check s3://b-b-b at {endpoint}: the endpoint cannot be reached ("
    )
    assert str(caught.value).endswith("): check storage.endpoint_url")


def test_seaweedfs_rejects_a_wrong_content_md5_so_every_part_is_checked(
    s3_servers, aws_credentials
):
    """The integrity check syncd relies on: the store refuses a body whose MD5 is not the one
    sent with it (a part corrupted on the way is refused, never stored)."""
    server = s3_servers("seaweedfs")
    bucket = server.new_bucket()
    client = server.client()
    with pytest.raises(Exception) as caught:
        client.put_object(
            Bucket=bucket, Key="x", Body=b"hello", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA=="
        )
    assert "BadDigest" in str(caught.value)


def test_every_upload_request_carries_content_md5_and_no_flexible_checksum(
    s3_servers, aws_credentials
):
    server = s3_servers("moto")
    storage = S3Storage(s3_config(server, server.new_bucket()))
    seen: list[tuple[str, dict]] = []

    def record(request, **_kwargs):
        seen.append((request.method, dict(request.headers)))

    storage.client.meta.events.register("before-send.s3", record)
    data = os.urandom(2 * PART + 7)
    put_stream(storage, "videos/7/hd.mov", data, len(data))
    storage.put_bytes("videos/7/metadata.json", b"{}")
    bodies = [(m, h) for m, h in seen if m in ("PUT",)]
    assert len(bodies) == 4  # three parts and the sidecar
    for _method, headers in bodies:
        names = {k.lower() for k in headers}
        assert "content-md5" in names
        assert not any(n.startswith("x-amz-checksum") for n in names), names
        assert "x-amz-sdk-checksum-algorithm" not in names


@pytest.mark.parametrize(
    "size, expected",
    [
        (None, 16 * MIB),
        (0, 16 * MIB),
        (16 * MIB * MAX_PARTS, 16 * MIB),
        (16 * MIB * MAX_PARTS + 1, 17 * MIB),
        (5 * 1024**4, 525 * MIB),
    ],
)
def test_the_part_size_fits_every_object_in_10000_parts(size, expected):
    part = part_size_for(size, 16 * MIB)
    assert part == expected
    if size:
        assert -(-size // part) <= MAX_PARTS
        assert part % MIB == 0


def test_an_object_beyond_5_tib_is_refused():
    with pytest.raises(StorageError):
        part_size_for(5 * 1024**4 + 1, 16 * MIB)
