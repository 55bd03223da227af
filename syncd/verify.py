"""``syncd verify [--repair] [--full]``: is every file the ledger holds as stored in this
storage really there, whole and right? Makes no API request.

Each file: present, the size recorded, and (when its last check is older than
``verify.rehash_after``, or always with ``--full``) the sha256 recorded. Also what killed runs
left behind (partial files, unfinished multipart uploads). ``--repair`` forgets the missing and
corrupt files in the ledger, so the next ``sync`` fetches them again (over the corrupt data,
which stays in place until then: repair deletes no stored data), marks their sidecars to be
rewritten, and removes the leftovers. The storage's lease is held throughout, so no sync
writes while verify looks (a running sync makes verify exit 75)."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from syncd import logs
from syncd.config import Config
from syncd.db import ledger
from syncd.db.engine import check_url, connect, upgrade
from syncd.db.lease import Lease
from syncd.db.models import StoredFile
from syncd.errors import StorageError
from syncd.progress import Meter
from syncd.storage import Storage, open_storage

log = structlog.get_logger("syncd.verify")

COMMIT_EVERY = 200  # files: a killed verify keeps the checks it made


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    missing: int = 0
    corrupt: int = 0
    queued: int = 0
    leftovers: int = 0
    leftovers_removed: int = 0
    problems: list[dict] = field(default_factory=list)
    # not in the JSON: for the progress display and the human report
    rehashed: int = 0
    bytes_hashed: int = 0

    def as_json(self) -> dict:
        shown = asdict(self)
        del shown["rehashed"], shown["bytes_hashed"]
        return shown

    @property
    def wrong(self) -> bool:
        """Something is wrong and was not repaired."""
        unrepaired = self.missing + self.corrupt - self.queued
        return unrepaired > 0 or self.leftovers > self.leftovers_removed


class Verify:
    def __init__(
        self,
        config: Config,
        *,
        repair: bool = False,
        full: bool = False,
        progress: Meter | None = None,
        stop: threading.Event | None = None,
    ):
        self.config = config
        self.repair = repair
        self.full = full
        self.progress = progress or Meter("verify")
        self.stop = stop or threading.Event()
        self.report = VerifyReport()
        self.interrupted = False

    def execute(self) -> VerifyReport:
        check_url(self.config.database.url)
        storage = open_storage(self.config.storage)
        engine = connect(self.config.database.url)
        try:
            upgrade(engine)
            self.progress.where = logs.announce_config(
                self.config, "verify --repair" if self.repair else "verify"
            )
            with (
                Lease(engine, storage.identity, what=storage.description) as lease,
                Session(engine, expire_on_commit=False) as session,
            ):
                run = ledger.start_run(session, "verify", storage.identity)
                session.commit()
                lease.attach_run(run.id)
                outcome, code = "failed", 4
                try:
                    self._check_files(session, storage)
                    self._check_leftovers(storage)
                    outcome = "interrupted" if self.interrupted else "ok"
                    code = 130 if self.interrupted else (1 if self.report.wrong else 0)
                finally:
                    session.commit()
                    ledger.finish_run(session, run, outcome, code, self.report.as_json())
                    session.commit()
        finally:
            self.progress.done("interrupted" if self.interrupted else "done")
            engine.dispose()
        return self.report

    # --- files --------------------------------------------------------------------------------

    def _check_files(self, session: Session, storage: Storage) -> None:
        rows = list(
            session.scalars(
                select(StoredFile)
                .where(StoredFile.storage == storage.identity)
                .order_by(StoredFile.key)
            )
        )
        due = ledger.utcnow() - timedelta(seconds=self.config.verify.rehash_after)
        to_hash = sum(row.size_bytes for row in rows if self.full or _last_check(row) <= due)
        self.progress.checking(len(rows), to_hash)
        self.progress.start()
        bad: list[StoredFile] = []
        for done, row in enumerate(rows, 1):
            if self.stop.is_set():
                self.interrupted = True
                break
            problem = self._check_one(storage, row, self.full or _last_check(row) <= due)
            self.report.checked += 1
            if problem is None:
                self.report.ok += 1
            else:
                bad.append(row)
                if problem == "missing":
                    self.report.missing += 1
                else:
                    self.report.corrupt += 1
                self.report.problems.append({"key": row.key, "problem": problem})
                log.warning("verify.problem", key=row.key, problem=problem)
            self.progress.checked(row.size_bytes, problem is not None)
            if done % COMMIT_EVERY == 0:
                session.commit()
        if self.repair and bad:
            self._queue_again(session, storage, bad)

    def _check_one(self, storage: Storage, row: StoredFile, rehash: bool) -> str | None:
        size = storage.size_of(row.key)
        if size is None:
            return "missing"
        if size != row.size_bytes:
            return "size"
        if not rehash:
            return None
        digest = hashlib.sha256()
        read = 0
        try:
            for chunk in storage.read(row.key):
                if self.stop.is_set():
                    self.interrupted = True
                    return None
                digest.update(chunk)
                read += len(chunk)
                self.progress.add_bytes(len(chunk))
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            raise StorageError(
                f"cannot read {row.key!r} from {storage.description}: {exc.strerror or exc}"
            ) from None
        self.report.rehashed += 1
        self.report.bytes_hashed += read
        if read != row.size_bytes:
            return "size"
        if digest.hexdigest() != row.sha256:
            return "sha256"
        row.checked_at = ledger.utcnow()
        return None

    def _queue_again(self, session: Session, storage: Storage, bad: list[StoredFile]) -> None:
        """The ledger forgets these files in this storage: their licenses (still ``stored``,
        the account's) are queued again by the next sync, which writes over the bad data."""
        for row in bad:
            session.execute(
                delete(StoredFile).where(
                    StoredFile.storage == storage.identity, StoredFile.key == row.key
                )
            )
        ledger.mark_sidecars_dirty(
            session, {(row.media_type, row.media_id) for row in bad}, storage.identity
        )
        session.commit()
        self.report.queued = len(bad)
        log.info("verify.queued", files=len(bad))

    # --- what killed runs left ---------------------------------------------------------------

    def _check_leftovers(self, storage: Storage) -> None:
        found = storage.leftovers()
        self.report.leftovers = len(found)
        for name in found:
            log.warning("verify.leftover", leftover=name)
        if self.repair and found:
            self.report.leftovers_removed = storage.remove_partials()


def _last_check(row: StoredFile):
    return row.checked_at or row.stored_at


def render(report: VerifyReport, repair: bool) -> str:
    lines = []
    for problem in report.problems:
        what = {"missing": "missing", "size": "wrong size", "sha256": "wrong sha256"}
        lines.append(f"{what[problem['problem']]:<13} {problem['key']}")
    if report.leftovers:
        lines.append(f"{report.leftovers} leftover(s) of killed runs")
    lines.append(
        f"verify: {report.checked} checked ({report.rehashed} re-hashed), {report.ok} ok, "
        f"{report.missing} missing, {report.corrupt} corrupt, {report.leftovers} leftovers"
    )
    if repair:
        lines.append(
            f"repair: {report.queued} queued for the next sync, "
            f"{report.leftovers_removed} leftovers removed"
        )
    elif report.wrong:
        lines.append("run `syncd verify --repair`, then `syncd sync`, to fetch them again")
    return "\n".join(lines)
