"""One lock for any storage, held in the database (CONTRACT 2, exit 75).

A lease is a row keyed by what it protects (a storage's identity: the resolved root folder, or
endpoint + bucket + prefix). It is taken with the database's own clock, renewed by a heartbeat
thread while the run goes on, and released at the end. Another process takes it over only once
its owner is gone: the owner's process ended on this host, or the lease expired (it was not
renewed for ``TTL_S`` seconds: a host that died, a network split). Because the row lives in the
database every syncd shares, this protects an S3 prefix used from several hosts as well as a
folder.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from syncd.db.engine import clock_sql
from syncd.errors import StorageBusy

log = structlog.get_logger("syncd.lease")

TTL_S = 60.0  # a lease not renewed for this long is free (CONTRACT 2: at most 60 s)
RENEW_EVERY_S = 10.0


def this_host() -> str:
    return socket.gethostname()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@dataclass(frozen=True)
class Holder:
    owner: str
    host: str
    pid: int
    held_for_s: float
    expires_in_s: float

    def gone(self) -> bool:
        """Its lease expired, or its process ended on this host."""
        return self.expires_in_s < 0 or (self.host == this_host() and not process_alive(self.pid))


class Lease:
    """``with Lease(engine, name):`` holds the lease for the block or raises StorageBusy.
    ``lost`` is set when a renewal finds the lease taken by someone else (the owner must stop
    writing); ``on_lost`` is called then too."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        *,
        what: str = "",
        ttl_s: float = TTL_S,
        renew_every_s: float = RENEW_EVERY_S,
        on_lost=None,
    ):
        self.engine = engine
        self.name = name
        self.what = what or name
        self.ttl_s = ttl_s
        self.renew_every_s = min(renew_every_s, ttl_s / 3)
        self.host = this_host()
        self.pid = os.getpid()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}"
        self.lost = threading.Event()
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.run_id: int | None = None
        self._now = clock_sql(engine.dialect.name)

    # --- taking, renewing, releasing ----------------------------------------------------------

    def acquire(self) -> None:
        with self.engine.begin() as connection:
            inserted = self._insert(connection)
            if inserted:
                return
            holder = self._holder(connection)
            if holder is None:  # released between our insert and our look
                if self._insert(connection):
                    return
                holder = self._holder(connection)
            if holder is not None and holder.gone():
                taken = connection.execute(
                    text(
                        f"UPDATE leases SET owner = :owner, host = :host, pid = :pid, "
                        f"run_id = NULL, acquired_at = {self._now}, "
                        f"expires_at = {self._now} + :ttl WHERE name = :name AND owner = :old"
                    ),
                    {**self._params(), "old": holder.owner},
                ).rowcount
                if taken == 1:
                    log.info(
                        "lease.taken_over",
                        lease=self.what,
                        from_host=holder.host,
                        from_pid=holder.pid,
                    )
                    return
                holder = self._holder(connection)
        if holder is None:
            raise StorageBusy(f"could not take the lock on {self.what}; try again")
        raise StorageBusy(
            f"another syncd run (pid {holder.pid} on {holder.host}, for "
            f"{holder.held_for_s:.0f} s) holds the lock on {self.what}; nothing was done, "
            "try again when it ends"
        )

    def _params(self) -> dict:
        return {
            "name": self.name,
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "ttl": self.ttl_s,
        }

    def _insert(self, connection) -> bool:
        statement = (
            "INSERT INTO leases (name, owner, host, pid, run_id, acquired_at, expires_at) "
            f"VALUES (:name, :owner, :host, :pid, NULL, {self._now}, {self._now} + :ttl) "
            "ON CONFLICT (name) DO NOTHING"
        )
        return connection.execute(text(statement), self._params()).rowcount == 1

    def _holder(self, connection) -> Holder | None:
        row = connection.execute(
            text(
                f"SELECT owner, host, pid, {self._now} - acquired_at, expires_at - {self._now} "
                "FROM leases WHERE name = :name"
            ),
            {"name": self.name},
        ).first()
        if row is None:
            return None
        return Holder(row[0], row[1], int(row[2]), float(row[3]), float(row[4]))

    def renew(self) -> bool:
        """Extends the lease (and the heartbeat of the run that holds it); False when it is
        no longer ours."""
        with self.engine.begin() as connection:
            renewed = connection.execute(
                text(
                    f"UPDATE leases SET expires_at = {self._now} + :ttl "
                    "WHERE name = :name AND owner = :owner"
                ),
                self._params(),
            ).rowcount
            if self.run_id is not None:
                connection.execute(
                    text(f"UPDATE runs SET heartbeat_at = {self._now} WHERE id = :id"),
                    {"id": self.run_id},
                )
        return renewed == 1

    def release(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                text("DELETE FROM leases WHERE name = :name AND owner = :owner"), self._params()
            )

    def attach_run(self, run_id: int) -> None:
        self.run_id = run_id
        with self.engine.begin() as connection:
            connection.execute(
                text("UPDATE leases SET run_id = :run WHERE name = :name AND owner = :owner"),
                {**self._params(), "run": run_id},
            )

    # --- the heartbeat ------------------------------------------------------------------------

    def _beat(self) -> None:
        while not self._stop.wait(self.renew_every_s):
            try:
                if self.renew():
                    continue
            except SQLAlchemyError as exc:  # the database is away for a moment: try again
                log.warning(
                    "lease.renew_failed",
                    lease=self.what,
                    error=str(getattr(exc, "orig", None) or exc),
                )
                continue
            log.error("lease.lost", lease=self.what)
            self.lost.set()
            if self._on_lost is not None:
                self._on_lost()
            return

    def __enter__(self) -> Lease:
        self.acquire()
        self._thread = threading.Thread(target=self._beat, name="lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.lost.is_set():
            try:
                self.release()
            except SQLAlchemyError as exc:  # it expires by itself
                log.warning(
                    "lease.release_failed",
                    lease=self.what,
                    error=str(getattr(exc, "orig", None) or exc),
                )


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's own message where there is one (a DBAPIError's ``orig``)."""
    return str(getattr(exc, "orig", None) or exc)
