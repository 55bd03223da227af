"""A folder tree. Partial files live in ``.syncd-partial/`` under the root (same filesystem,
so the final rename is atomic) where no key can point, and are fsynced before the rename."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from syncd.errors import StorageError
from syncd.storage.base import ObjectWriter, Storage
from syncd.storage.keys import check_object_key

PARTIAL_DIR = ".syncd-partial"
# Files of at least this size are written with O_DIRECT (where the filesystem allows it): their
# bytes go from syncd's buffers to the disk without being copied into, and later written back
# from, the page cache, which on a busy machine costs more CPU than the copy itself. A write
# the kernel refuses that way (a short last block, a buffer not aligned) turns it off.
DIRECT_MIN_BYTES = 1 << 20
LOCK_FILE = ".syncd.lock"
READ_CHUNK = 1 << 20


def _storage_error(action: str, path: Path | str, exc: OSError) -> StorageError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason = "no space left on device"
    return StorageError(f"cannot {action} {str(path)!r}: {reason}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemWriter(ObjectWriter):
    def __init__(self, storage: FilesystemStorage, key: str, direct: bool = False):
        super().__init__(check_object_key(key))
        self._storage = storage
        self._partial = storage.partial_dir / f"{uuid.uuid4().hex}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self._direct = direct and hasattr(os, "O_DIRECT")
        try:
            try:
                self._fd: int | None = os.open(
                    self._partial, flags | (os.O_DIRECT if self._direct else 0), 0o644
                )
            except OSError as exc:
                if not self._direct or exc.errno != errno.EINVAL:
                    raise
                self._direct = False  # the filesystem has no O_DIRECT
                self._fd = os.open(self._partial, flags, 0o644)
        except OSError as exc:
            raise _storage_error("create", self._partial, exc) from None

    def write(self, data: memoryview | bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                try:
                    written = os.write(self._open_fd(), view)
                except OSError as exc:
                    if not self._direct or exc.errno != errno.EINVAL:
                        raise
                    self._buffered_from_now_on()
                    continue
                view = view[written:]
        except OSError as exc:
            self.abort()
            raise _storage_error("write", self._partial, exc) from None

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self._partial} is already committed or aborted")
        return self._fd

    def _buffered_from_now_on(self) -> None:
        fd = self._open_fd()
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        self._direct = False

    def commit(self) -> None:
        final = self._storage.path_of(self.key)
        try:
            fd = self._open_fd()
            os.fsync(fd)
            os.close(fd)
            self._fd = None
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._partial, final)
        except OSError as exc:
            self.abort()
            raise _storage_error("store", final, exc) from None
        # the rename lives in its folder, and a new folder's entry in its parent: every folder
        # from the file's up to the root is made durable by the next sync(), in one batch (a
        # journal commits them together; the shared ones are counted once)
        self._storage.unsynced(self._storage.folders_above(final))

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._partial.unlink(missing_ok=True)


class FilesystemStorage(Storage):
    def __init__(self, root: str | Path):
        self.root = Path(root).absolute()
        self.partial_dir = self.root / PARTIAL_DIR
        self.description = f"folder {str(self.root)!r}"
        self.identity = "file://" + str(Path(root).resolve())
        self._lock = threading.Lock()
        self._unsynced: set[Path] = set()

    def folders_above(self, path: Path) -> set[Path]:
        folders = set()
        while path != self.root:
            path = path.parent
            folders.add(path)
        return folders

    def unsynced(self, folders: set[Path]) -> None:
        with self._lock:
            self._unsynced |= folders

    def sync(self) -> None:
        with self._lock:
            folders, self._unsynced = self._unsynced, set()
        pending = sorted(folders, key=lambda p: len(p.parts), reverse=True)
        while pending:
            try:
                _fsync_dir(pending[0])
            except OSError as exc:
                self.unsynced(set(pending))  # tried again by the next sync()
                raise _storage_error("sync", pending[0], exc) from None
            pending.pop(0)

    def path_of(self, key: str) -> Path:
        return self.root.joinpath(*check_object_key(key).split("/"))

    def check_writable(self) -> None:
        try:
            self.partial_dir.mkdir(parents=True, exist_ok=True)
            probe = self.partial_dir / f"probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise _storage_error("write to", self.root, exc) from None

    def writer(self, key: str, size_hint: int | None = None) -> ObjectWriter:
        return FilesystemWriter(
            self, key, direct=size_hint is not None and size_hint >= DIRECT_MIN_BYTES
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as writer:
            writer.write(data)
            writer.commit()

    def size_of(self, key: str) -> int | None:
        try:
            return self.path_of(key).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, key: str) -> Iterator[bytes]:
        with self.path_of(key).open("rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                yield chunk

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)

    def move(self, source: str, target: str) -> bool:
        """A rename inside the root (atomic on one filesystem), then the folders synced."""
        old, new = self.path_of(source), self.path_of(target)
        try:
            if not old.exists():
                return new.exists()
            new.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, new)
            _fsync_dir(new.parent)
            _fsync_dir(old.parent)
        except OSError as exc:
            raise _storage_error("move", old, exc) from None
        return True

    def leftovers(self) -> list[str]:
        if not self.partial_dir.is_dir():
            return []
        return sorted(f"{PARTIAL_DIR}/{entry.name}" for entry in self.partial_dir.iterdir())

    def remove_partials(self) -> int:
        if not self.partial_dir.is_dir():
            return 0
        removed = 0
        for entry in self.partial_dir.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        return removed
