"""The storage interface every backend implements (filesystem now; S3 beside it)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator


class ObjectWriter(ABC):
    """Receives one object's bytes. Nothing is visible under ``key`` until ``commit``; ``abort``
    (or leaving the ``with`` block by an exception) discards what was written."""

    # reads go straight into the writer's buffer (``room`` and ``wrote``) instead of ``write``
    reads_into = False

    def __init__(self, key: str):
        self.key = key

    @abstractmethod
    def write(self, data: memoryview | bytes) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...

    def room(self, limit: int) -> memoryview:
        """Where the next bytes (up to ``limit``) can be read straight into the writer's own
        buffer, to be handed over with ``wrote`` (writers with ``reads_into`` only)."""
        raise NotImplementedError

    def wrote(self, count: int) -> None:
        """``count`` bytes were read into the view ``room`` gave."""
        raise NotImplementedError

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


class Storage(ABC):
    """Where files and sidecars land. Keys are relative, '/'-separated and already checked."""

    description: str
    # names this storage for the database: the key of its lease, and what its files and
    # sidecars are recorded under (file:///resolved/root, s3://endpoint/bucket/prefix)
    identity: str

    @abstractmethod
    def check_writable(self) -> None:
        """Raises StorageError unless an object can be written now."""

    @abstractmethod
    def writer(self, key: str, size_hint: int | None = None) -> ObjectWriter:
        """A writer whose ``commit`` makes the object appear under ``key`` atomically.
        ``size_hint``: the expected size, when known (a backend may write large objects
        differently)."""

    @abstractmethod
    def sync(self) -> None:
        """Makes every object committed so far durable (a crash of the machine keeps it).
        Called before the ledger records objects as stored."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Writes a small object atomically."""

    @abstractmethod
    def size_of(self, key: str) -> int | None:
        """The stored object's size in bytes, or None when there is none."""

    @abstractmethod
    def read(self, key: str) -> Iterator[bytes]: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def move(self, source: str, target: str) -> bool:
        """Moves the object under ``source`` to ``target``: ``target`` appears whole or not at
        all, and ``source`` is gone once it has. Repeating a move that was cut short finishes
        it. Returns False when there is nothing under either key."""

    @abstractmethod
    def leftovers(self) -> list[str]:
        """What killed runs left half-written (partial files, unfinished multipart uploads),
        one name each, for ``verify``."""

    @abstractmethod
    def remove_partials(self) -> int:
        """Removes what a killed run left half-written; returns how many."""
