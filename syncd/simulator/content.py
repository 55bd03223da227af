"""The bytes of the files the simulator serves: pseudo-random, the same for the same file on
every run, and produced a chunk at a time so that a 1 GiB file never sits in memory."""

from __future__ import annotations

import functools
import hashlib
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

from syncd.simulator.catalog import FileKey

CHUNK = 1 << 20
_HEADER = 16  # bytes at the start of each chunk that depend on the chunk's index


def chunks(key: FileKey, size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes `start` to `end` (exclusive; default: the end) of the file `key` of `size` bytes."""
    end = size if end is None else min(end, size)
    seed = _seed(key)
    for index in range(start // CHUNK, (end + CHUNK - 1) // CHUNK):
        chunk = _chunk(seed, index)
        offset = index * CHUNK
        yield chunk[max(start - offset, 0) : min(end - offset, CHUNK)]


def _seed(key: FileKey) -> bytes:
    return hashlib.sha256(f"{key.stream}\0{key.media_id}\0{key.size}".encode()).digest()


@functools.lru_cache(maxsize=16)
def _block(seed: bytes) -> bytes:
    return random.Random(seed).randbytes(CHUNK)


def _chunk(seed: bytes, index: int) -> bytes:
    """The file's block, its first bytes replaced by a hash of the index: never periodic."""
    header = hashlib.blake2b(index.to_bytes(8, "big"), key=seed, digest_size=_HEADER).digest()
    return header + _block(seed)[_HEADER:]


class ContentStore:
    """Hashes of the served files (computed once each) and copies of them on disk."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sha256: dict[tuple[FileKey, int], str] = {}

    def sha256(self, key: FileKey, size: int) -> str:
        with self._lock:
            known = self._sha256.get((key, size))
        if known is None:
            digest = hashlib.sha256()
            for chunk in chunks(key, size):
                digest.update(chunk)
            known = digest.hexdigest()
            with self._lock:
                self._sha256[(key, size)] = known
        return known

    @staticmethod
    def write(key: FileKey, size: int, path: Path) -> None:
        """Write the file at `path` unless a file of that size is already there."""
        if path.is_file() and path.stat().st_size == size:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as out:
            for chunk in chunks(key, size):
                out.write(chunk)
        os.replace(partial, path)
