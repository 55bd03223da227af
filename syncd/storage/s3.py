"""Any S3-compatible object store (AWS S3, R2, B2, Wasabi, Ceph RGW, SeaweedFS, MinIO), through
boto3.

An object is streamed straight from the download: up to ``multipart_threshold`` it is kept in
memory and sent in one PUT; above, as a multipart upload of equal parts (R2 requires them),
each part sent while the next one fills, so a writer holds at most two parts. Nothing is
visible under the final key before CompleteMultipartUpload; any failure aborts the upload.
Every request carries its own Content-MD5 (the store checks what it received) and no CRC32
"flexible checksum": since botocore 1.36 the SDK adds those by default, and several
S3-compatible stores reject or mis-store them (boto/boto3#4392).

What a killed run leaves behind is an unfinished multipart upload under the prefix: listed by
``leftovers`` and aborted by ``remove_partials`` (only uploads begun before this storage was
opened: the lease in the database keeps any other run of this storage away meanwhile)."""

from __future__ import annotations

import base64
import ctypes
import hashlib
import math
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from syncd.config import MIB, StorageConfig
from syncd.errors import StorageError
from syncd.storage.base import ObjectWriter, Storage
from syncd.storage.keys import check_object_key

MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * 1024**3
MAX_OBJECT_SIZE = 5 * 1024**4
READ_CHUNK = 1 * MIB
PROBE_KEY = ".syncd-write-probe"  # no key of the template can start with a dot


def part_size_for(size: int | None, configured: int) -> int:
    """The part size of one upload: the configured one, raised (to whole MiB) where the object
    would need more than 10,000 parts; for an object of unknown size, the configured one."""
    if size is None or size <= configured * MAX_PARTS:
        return configured
    if size > MAX_OBJECT_SIZE:
        raise StorageError(f"an object of {size} bytes is larger than S3 allows (5 TiB)")
    needed = math.ceil(size / MAX_PARTS)
    return min(MAX_PART_SIZE, math.ceil(needed / MIB) * MIB)


def content_md5(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def normalized_prefix(prefix: str) -> str:
    """``dam``, ``dam/`` and ``/dam/`` are one prefix, ``dam/``; the empty one stays empty."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _boto_error(exc: Exception) -> tuple[str, int | None]:
    """An S3 error's code and HTTP status (None when the store never answered)."""
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", "") or type(exc).__name__)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status


def _copy_config() -> Any:
    """Managed copies in one thread, multipart only above S3's 5 GiB limit of one copy."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=5 << 30, max_concurrency=1, use_threads=False)


M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter (malloc.h)


def keep_large_buffers_off_the_heap(threshold: int = MIB) -> bool:
    """Pins glibc's mmap threshold, so that every buffer of ``threshold`` or more (parts,
    objects put whole) is mapped on its own and goes back to the system when freed.

    By default glibc raises the threshold each time such a mapping is freed, up to 32 MiB:
    after the first part, 1-16 MiB buffers come from the per-thread heaps instead, where
    freed parts stay resident (measured: 279 MB peak RSS against 235 MB pinned, same run).
    Does nothing (False) where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


class BufferPool:
    """The part buffers of every upload of one storage, reused: at most ``count`` of the
    standard part size exist at once (an upload that needs one more waits for a part on the
    wire to come back), so memory stays near ``count`` parts whatever the number of files.
    ``count`` must exceed the number of writers at once, each of which holds one to fill."""

    def __init__(self, size: int, count: int):
        self.size = size
        self._free: list[bytearray] = []
        self._made = 0
        self._count = count
        self._ready = threading.Condition()

    def take(self, size: int) -> bytearray:
        if size != self.size:  # an upload with raised parts (a file of over 160 GB)
            return bytearray(size)
        with self._ready:
            while not self._free and self._made >= self._count:
                self._ready.wait()
            if self._free:
                return self._free.pop()
            self._made += 1
        return bytearray(size)

    def give(self, buffer: bytearray) -> None:
        if len(buffer) != self.size:  # not one of the pool's
            return
        with self._ready:
            self._free.append(buffer)
            self._ready.notify()

    def forget(self) -> None:
        """A buffer of the standard size that will not come back (cut short to send the last
        part): another may be made."""
        with self._ready:
            self._made -= 1
            self._ready.notify()


class S3Storage(Storage):
    def __init__(self, config: StorageConfig, concurrency: int = 4, client: Any = None):
        if not config.bucket:
            raise StorageError("storage.bucket is not set")
        self.bucket = config.bucket
        self.prefix = normalized_prefix(config.prefix)
        self.endpoint = config.endpoint_url
        self.config = config
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.description = f"{where} at {self.endpoint}" if self.endpoint else where
        host = self.endpoint.rstrip("/") if self.endpoint else "aws"
        self.identity = f"s3://{host.split('://', 1)[-1]}/{self.bucket}/{self.prefix}"
        self.client = client if client is not None else self._client(concurrency)
        self.opened_at = datetime.now(UTC)
        # parts on the wire: up to two per object
        self._uploads = ThreadPoolExecutor(
            max_workers=2 * concurrency, thread_name_prefix="s3-part"
        )
        # one part filling per writer and one more on the wire, for all uploads together
        self.buffers = BufferPool(config.part_size, count=concurrency + 1)
        keep_large_buffers_off_the_heap()

    def _client(self, concurrency: int) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        boto_config = BotoConfig(
            region_name=self.config.region or "us-east-1",
            signature_version="s3v4",
            # every PUT and part carries Content-MD5, so the body is checked without a
            # sha256 of it in the signature: botocore's own choice over HTTPS, made on plain
            # HTTP too (one hash less here, one less on the store; README "Into S3")
            s3={"addressing_style": self.config.addressing_style, "payload_signing_enabled": False},
            retries={"max_attempts": 8, "mode": "standard"},  # 5xx, SlowDown and throttling
            max_pool_connections=2 * concurrency + 4,
            connect_timeout=10,
            read_timeout=120,
            tcp_keepalive=True,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return boto3.session.Session().client("s3", endpoint_url=self.endpoint, config=boto_config)

    # --- errors ------------------------------------------------------------------------------

    def error(self, doing: str, exc: Exception, key: str | None = None) -> StorageError:
        """One line naming the store, the bucket and what to check."""
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )
        from botocore.exceptions import (
            NoCredentialsError,
            PartialCredentialsError,
        )

        what = f"{doing} {key!r} in {self.description}" if key else f"{doing} {self.description}"
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            hint = (
                "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or a profile)"
            )
        elif isinstance(exc, BotoConnectionError):
            hint = (
                f"the endpoint cannot be reached ({type(exc).__name__}): check storage.endpoint_url"
            )
        else:
            code, status = _boto_error(exc)
            if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and doing == "check"):
                hint = (
                    f"bucket {self.bucket!r} does not exist: create it, or set "
                    "storage.create_bucket = true"
                )
            elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
                hint = (
                    f"the store refused the credentials ({code}): check AWS_ACCESS_KEY_ID, "
                    "AWS_SECRET_ACCESS_KEY and the bucket's policy"
                )
            elif (
                code in ("QuotaExceeded", "EntityTooLarge", "InsufficientStorage") or status == 507
            ):
                hint = f"the store is full or over its quota ({code})"
            else:
                hint = f"{code}" + (f" (HTTP {status})" if status else "")
        return StorageError(f"cannot {what}: {hint}")

    # --- the interface -------------------------------------------------------------------------

    def check_writable(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            code, _ = _boto_error(exc)
            if code in ("404", "NotFound", "NoSuchBucket") and self.config.create_bucket:
                self._create_bucket()
            else:
                raise self.error("check", exc) from None
        probe = self.prefix + PROBE_KEY  # a hidden name: no key can be it
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=probe, Body=b"", ContentMD5=content_md5(b"")
            )
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except Exception as exc:
            raise self.error("write", exc, PROBE_KEY) from None

    def _create_bucket(self) -> None:
        arguments: dict[str, Any] = {"Bucket": self.bucket}
        region = self.config.region
        if region and region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**arguments)
        except Exception as exc:
            code, _ = _boto_error(exc)
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self.error("create", exc) from None

    def object_arguments(self) -> dict[str, Any]:
        """What every new object is written with: storage class, server-side encryption."""
        arguments: dict[str, Any] = {}
        if self.config.storage_class:
            arguments["StorageClass"] = self.config.storage_class
        if self.config.sse:
            arguments["ServerSideEncryption"] = self.config.sse
            if self.config.sse_kms_key_id:
                arguments["SSEKMSKeyId"] = self.config.sse_kms_key_id
        return arguments

    def object_key(self, key: str) -> str:
        return self.prefix + check_object_key(key)

    def writer(self, key: str, size_hint: int | None = None) -> ObjectWriter:
        return S3Writer(self, key, size_hint)

    def sync(self) -> None:
        """Nothing to do: an object is durable once its PUT or completion is answered."""

    def put_bytes(self, key: str, data: bytes) -> None:
        name = self.object_key(key)
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=name,
                Body=data,
                ContentMD5=content_md5(data),
                **self.object_arguments(),
            )
        except Exception as exc:
            raise self.error("write", exc, key) from None

    def size_of(self, key: str) -> int | None:
        name = self.object_key(key)
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            code, status = _boto_error(exc)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self.error("stat", exc, key) from None
        return int(answer["ContentLength"])

    def read(self, key: str) -> Iterator[bytes]:
        name = self.object_key(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
        except Exception as exc:
            raise self.error("read", exc, key) from None
        with body:
            yield from body.iter_chunks(READ_CHUNK)

    def delete(self, key: str) -> None:
        name = self.object_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            raise self.error("delete", exc, key) from None

    def move(self, source: str, target: str) -> bool:
        """S3 has no rename: a server-side copy (the new object appears whole or not at all;
        boto3's managed copy goes multipart above 5 GiB), then the source deleted."""
        target_name = self.object_key(target)  # a hostile key is refused before anything
        if self.size_of(source) is None:
            return self.size_of(target) is not None
        copy_source = {"Bucket": self.bucket, "Key": self.object_key(source)}
        try:
            self.client.copy(
                copy_source,
                self.bucket,
                target_name,
                ExtraArgs=self.object_arguments() or None,
                Config=_copy_config(),
            )
        except Exception as exc:
            raise self.error("copy", exc, source) from None
        self.delete(source)
        return True

    def unfinished_uploads(self) -> list[dict[str, Any]]:
        """The multipart uploads under the prefix that were never completed nor aborted."""
        uploads: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        try:
            while True:
                page = self.client.list_multipart_uploads(**arguments)
                uploads.extend(page.get("Uploads", []))
                if not page.get("IsTruncated"):
                    return uploads
                arguments["KeyMarker"] = page.get("NextKeyMarker", "")
                arguments["UploadIdMarker"] = page.get("NextUploadIdMarker", "")
        except Exception as exc:
            raise self.error("list the unfinished uploads of", exc) from None

    def leftovers(self) -> list[str]:
        return sorted(
            f"{u['Key'][len(self.prefix) :]} (unfinished upload {u['UploadId']})"
            for u in self.unfinished_uploads()
        )

    def remove_partials(self) -> int:
        removed = 0
        for upload in self.unfinished_uploads():
            initiated = upload.get("Initiated")
            if isinstance(initiated, datetime) and initiated >= self.opened_at:
                continue  # begun since this storage was opened: not a killed run's
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            except Exception as exc:
                code, _ = _boto_error(exc)
                if code != "NoSuchUpload":
                    raise self.error("abort an upload in", exc) from None
            removed += 1
        return removed

    def submit(self, work: Any, *args: Any) -> Future[Any]:
        return self._uploads.submit(work, *args)


class S3Writer(ObjectWriter):
    """One object: kept in memory up to the threshold, else a multipart upload whose parts are
    sent while the next one fills (up to two on the wire per object), in buffers of the
    storage's pool."""

    IN_FLIGHT = 2  # parts of one object on the wire at once
    reads_into = True

    def __init__(self, storage: S3Storage, key: str, size_hint: int | None):
        super().__init__(key)
        self._storage = storage
        self._pool = storage.buffers
        self._full_key = storage.object_key(key)
        self._threshold = storage.config.multipart_threshold
        self._part_size = part_size_for(size_hint, storage.config.part_size)
        # known to fit one PUT: buffer it whole; else parts (unknown size: parts once it grows)
        self._single = size_hint is not None and size_hint <= self._threshold
        self._pooled = not self._single
        self._buffer = (
            bytearray(size_hint or 0) if self._single else self._pool.take(self._part_size)
        )
        self._filled = 0
        self._total = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._sending: list[Future[Any]] = []
        self._done = False

    def write(self, data: memoryview | bytes) -> None:
        view = memoryview(data).cast("B")
        while view:
            if self._filled == len(self._buffer):
                self._overflow()
            room = len(self._buffer) - self._filled
            take = min(room, len(view))
            self._buffer[self._filled : self._filled + take] = view[:take]
            self._filled += take
            self._total += take
            view = view[take:]

    def room(self, limit: int) -> memoryview:
        """The rest of the part (or object) buffer being filled, up to ``limit``: the download
        is read straight into it, with no copy between the socket and the upload. An object
        put whole is full at its announced size: nothing more can be read into it (http.client
        reads no further than Content-Length)."""
        if self._filled == len(self._buffer):
            if self._single:
                return memoryview(self._buffer)[self._filled :]
            self._overflow()
        end = min(len(self._buffer), self._filled + limit)
        return memoryview(self._buffer)[self._filled : end]

    def wrote(self, count: int) -> None:
        self._filled += count
        self._total += count

    def _overflow(self) -> None:
        """The buffer is full and more is coming: it becomes a part."""
        if not self._pooled:  # more than the size hint said: parts after all
            held = bytes(self._buffer[: self._filled])
            self._single, self._pooled = False, True
            self._buffer, self._filled = self._pool.take(self._part_size), 0
            self._total -= len(held)
            self.write(held)
            if self._filled < len(self._buffer):
                return
        full = self._buffer
        self._buffer, self._filled = self._pool.take(self._part_size), 0
        self._send_part(full, pooled=True)

    def _send_part(self, part: bytearray | bytes, pooled: bool, counted: bool = False) -> None:
        if self._upload_id is None:
            try:
                answer = self._storage.client.create_multipart_upload(
                    Bucket=self._storage.bucket,
                    Key=self._full_key,
                    **self._storage.object_arguments(),
                )
            except Exception as exc:
                self._release(part, pooled, counted)
                raise self._storage.error("start an upload of", exc, self.key) from None
            self._upload_id = answer["UploadId"]
        while len(self._sending) >= self.IN_FLIGHT:
            self._wait_for_oldest()
        number = len(self._parts) + 1
        self._parts.append({"PartNumber": number})
        self._sending.append(self._storage.submit(self._upload_part, number, part, pooled, counted))

    def _release(self, part: bytearray | bytes, pooled: bool, counted: bool) -> None:
        """A part done with: back to the pool, or (cut short) its place in the pool freed."""
        if pooled and isinstance(part, bytearray):
            self._pool.give(part)  # back for the next part of any upload
        elif counted:
            self._pool.forget()

    def _upload_part(
        self, number: int, part: bytearray | bytes, pooled: bool, counted: bool
    ) -> None:
        try:
            answer = self._storage.client.upload_part(
                Bucket=self._storage.bucket,
                Key=self._full_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
                ContentMD5=content_md5(part),
            )
            self._parts[number - 1]["ETag"] = answer["ETag"]
        finally:
            self._release(part, pooled, counted)

    def _wait_for_oldest(self) -> None:
        sending = self._sending.pop(0)
        try:
            sending.result()
        except Exception as exc:
            raise self._storage.error("upload a part of", exc, self.key) from None

    def commit(self) -> None:
        storage = self._storage
        if self._upload_id is None and (self._single or self._total <= self._threshold):
            whole = self._filled == len(self._buffer) and not self._pooled
            body = self._buffer if whole else bytes(memoryview(self._buffer)[: self._filled])
            try:
                storage.client.put_object(
                    Bucket=storage.bucket,
                    Key=self._full_key,
                    Body=body,
                    ContentMD5=content_md5(body),
                    **storage.object_arguments(),
                )
            except Exception as exc:
                raise storage.error("write", exc, self.key) from None
            self._finish()
            return
        if self._filled or not self._parts:
            last, counted = self._buffer, self._pooled
            del last[self._filled :]  # cut in place: no copy of the last part
            self._buffer, self._pooled, self._filled = bytearray(), False, 0
            # a pool buffer cut short still counts against the pool until it is sent
            self._send_part(last, pooled=False, counted=counted)
        while self._sending:
            self._wait_for_oldest()
        try:
            storage.client.complete_multipart_upload(
                Bucket=storage.bucket,
                Key=self._full_key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except Exception as exc:
            raise storage.error("complete the upload of", exc, self.key) from None
        self._upload_id = None
        self._finish()
        stored = storage.size_of(self.key)
        if stored != self._total:
            raise StorageError(
                f"{self.key!r} in {storage.description} holds {stored} bytes after its upload "
                f"of {self._total}"
            )

    def _finish(self) -> None:
        self._done = True
        if self._pooled:
            self._pool.give(self._buffer)
        self._buffer, self._pooled = bytearray(), False

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._done:  # left without a commit, by an exception or not: nothing stays
            self.abort()

    def abort(self) -> None:
        for sending in self._sending:
            try:
                sending.result()
            except Exception:  # the upload is aborted anyway
                pass
        self._sending = []
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._storage.client.abort_multipart_upload(
                    Bucket=self._storage.bucket, Key=self._full_key, UploadId=upload_id
                )
            except Exception:  # left to the next run's remove_partials, or a lifecycle rule
                pass
        self._finish()
