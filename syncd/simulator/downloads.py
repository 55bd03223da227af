"""Download URLs (signed, expiring, like a CDN's) and the answers of the file host."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from syncd.simulator.answers import Answer, raw_answer
from syncd.simulator.catalog import KINDS, FileKey, License, file_ext
from syncd.simulator.content import chunks

CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".eps": "application/postscript",
    ".mov": "video/quicktime",
    ".mp3": "audio/mpeg",
}
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def safe_segment(value: str) -> str:
    """`value` when it is safe as a path segment, else a stand-in derived from it."""
    if _SAFE_SEGMENT.fullmatch(value):
        return value
    return "unsafe-" + hashlib.sha256(value.encode()).hexdigest()[:16]


def published_path(key: FileKey) -> str:
    """Where a file lies below `files_dir`, and below `download_base` in its URL."""
    ext = file_ext(key.stream, key.size)
    return f"{key.stream}/{safe_segment(key.media_id)}/{safe_segment(key.size)}{ext}"


class DownloadLinks:
    """Makes the URL a redownload answers with, and reads the token back when it is used.

    By default the URL points at the simulator's own `/files/<token>/<name>`; the token holds
    the license id and an expiry, signed. With `files_dir`, the URL points into
    `download_base` (a web server serving that folder) as `<stream>/<id>/<size><ext>`."""

    def __init__(
        self,
        ttl_s: float,
        clock: Callable[[], float],
        download_base: str | None = None,
        files_dir: Path | None = None,
    ):
        if files_dir is not None and download_base is None:
            raise ValueError("files_dir needs download_base: the URL of a server serving it")
        self._ttl_s = ttl_s
        self._clock = clock
        self._download_base = download_base.rstrip("/") if download_base else None
        self.files_dir = files_dir
        self._secret = secrets.token_bytes(32)

    def url(self, lic: License, own_base_url: str) -> str:
        expires = int(self._clock() + self._ttl_s)
        if self.files_dir is not None:
            return f"{self._download_base}/{published_path(lic.file)}?expires={expires}"
        token = self._sign({"license": lic.id, "expires": expires})
        name = KINDS[lic.stream].url_prefix + safe_segment(lic.media_id)
        base = self._download_base or own_base_url
        return f"{base}/files/{token}/{quote(name)}{file_ext(lic.stream, lic.size)}"

    def license_id(self, token: str) -> str | None:
        """The license a token was made for, or None when it is forged or expired."""
        payload, _, signature = token.partition(".")
        if not hmac.compare_digest(signature.encode(), self._signature(payload).encode()):
            return None
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims["license"] if claims["expires"] >= self._clock() else None

    def _sign(self, claims: dict) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"{payload}.{self._signature(payload)}"

    def _signature(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).decode()


def etag_of(key: FileKey, size: int) -> str:
    """A strong ETag: the same for the same bytes, as a CDN gives."""
    digest = hashlib.sha256(f"{key.stream}/{key.media_id}/{key.size}/{size}".encode())
    return f'"{digest.hexdigest()[:20]}"'


def file_answer(
    key: FileKey, size: int, range_header: str | None, if_range: str | None = None
) -> Answer:
    """The file, whole (200) or from `Range: bytes=N-` / `bytes=N-M` (206), with a strong
    ETag; an `If-Range` that is not the file's ETag gets the whole file (RFC 9110 13.1.5)."""
    content_type = CONTENT_TYPES.get(file_ext(key.stream, key.size), "application/octet-stream")
    etag = etag_of(key, size)
    headers = {"Content-Type": content_type, "Accept-Ranges": "bytes", "ETag": etag}
    if if_range is not None and if_range.strip() != etag:
        range_header = None
    wanted = _RANGE.fullmatch(range_header.strip()) if range_header else None
    if wanted is None:
        return Answer(200, chunks(key, size), size, headers)
    start = int(wanted[1])
    end = min(int(wanted[2]) + 1, size) if wanted[2] else size
    if start >= size or end <= start:
        return raw_answer(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Answer(206, chunks(key, size, start, end), end - start, headers)
