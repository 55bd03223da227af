"""A throw-away PostgreSQL server for the test suite.

The session starts one server from the installed binaries (Debian's
``/usr/lib/postgresql/<version>/bin``, newest version first, else ``initdb`` and
``pg_ctl`` on PATH) in a temporary data directory, listening on 127.0.0.1 only, on a
free port, with durability switched off for speed. Each test that asks for
``postgres_url`` gets a fresh, empty database on it.

Use from tests/conftest.py::

    from tests.pgserver import postgres_server, postgres_url  # noqa: F401

When the server cannot be set up (no PostgreSQL binaries installed, initdb or pg_ctl
failing), every test that needs it fails, wherever it runs: the README's test command
(scripts/test.sh, via scripts/setup.sh) installs PostgreSQL.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "find_pg_bindir", "postgres_server", "postgres_url"]

PG_USER = "postgres"  # both the OS user the server runs as (under root) and the DB superuser
_START_TIMEOUT_S = 60


def _version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_pg_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    override = os.environ.get("PGSERVER_BINDIR")
    candidates = [override] if override else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for directory in candidates:
        if all(os.access(os.path.join(directory, tool), os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(directory)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        # Debian's /usr/local/bin or /usr/bin entries may be symlinks into the versioned dir.
        resolved = Path(os.path.realpath(pg_ctl)).parent
        if os.access(resolved / "initdb", os.X_OK):
            return resolved
        return Path(pg_ctl).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL server in a temporary directory, on 127.0.0.1:<free port>.

    ``start()`` runs initdb and pg_ctl start; ``stop()`` stops it at once and deletes
    everything it wrote. Running as root, the server runs as the ``postgres`` OS user
    (initdb and postgres refuse to run as root).
    """

    def __init__(self, bindir: Path | str | None = None) -> None:
        found = Path(bindir) if bindir else find_pg_bindir()
        if found is None:
            raise RuntimeError(
                "PostgreSQL server binaries (initdb, pg_ctl) not found under "
                "/usr/lib/postgresql/*/bin or on PATH: run scripts/setup.sh"
            )
        self.bindir = found
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.tmpdir: Path | None = None
        self.datadir: Path | None = None
        self.logfile: Path | None = None
        self._running = False
        self._counter = itertools.count(1)

    # -- running commands as the server's OS user ---------------------------------

    @staticmethod
    def _server_user() -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(PG_USER)
        except KeyError:
            raise RuntimeError(
                f"running as root, but there is no {PG_USER!r} OS user to run PostgreSQL as "
                "(Debian's postgresql package creates it: run scripts/setup.sh)"
            ) from None

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        self._server_user()
        if shutil.which("runuser"):
            return ["runuser", "-u", PG_USER, "--", *argv]
        return ["su", PG_USER, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _run(self, argv: list[str], what: str, timeout: float = _START_TIMEOUT_S) -> None:
        assert self.tmpdir is not None
        out = self.tmpdir / f"{what}.out"
        # Output goes to a file, not a pipe: a pipe inherited by the postmaster would
        # keep communicate() waiting for ever.
        with open(out, "wb") as fh:
            proc = subprocess.run(
                self._as_server_user(argv),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,  # the postgres user may not be able to read our cwd
                env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
                timeout=timeout,
                check=False,
            )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{what} failed (exit {proc.returncode}): {shlex.join(argv)}\n"
                f"{self._tail(out)}\n{self._tail(self.logfile)}"
            )

    @staticmethod
    def _tail(path: Path | None, lines: int = 40) -> str:
        if path is None or not path.exists():
            return ""
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {path.name} ---\n" + "\n".join(text)

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> PostgresServer:
        if self._running:
            return self
        # /tmp rather than $TMPDIR: the postgres OS user must be able to reach it, and
        # the socket path must stay short.
        base = os.environ.get("PGSERVER_TMPDIR") or ("/tmp" if os.path.isdir("/tmp") else None)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="syncd-pg-", dir=base))
        atexit.register(self.stop)  # in case the test session dies without finalizers
        try:
            if os.geteuid() == 0:
                entry = self._server_user()
                os.chown(self.tmpdir, entry.pw_uid, entry.pw_gid)
            os.chmod(self.tmpdir, 0o700)
            self.datadir = self.tmpdir / "data"
            self.logfile = self.tmpdir / "postgres.log"
            self._run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-A",
                    "trust",
                    "-U",
                    PG_USER,
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                "initdb",
            )
            # A free port can be taken between picking and binding it: try a few.
            last_error: Exception | None = None
            for _ in range(5):
                self.port = _free_port()
                options = " ".join(
                    [
                        f"-h {self.host}",
                        f"-p {self.port}",
                        f"-k {self.tmpdir}",
                        "-c fsync=off",
                        "-c full_page_writes=off",
                        "-c synchronous_commit=off",
                        "-c max_connections=200",
                        "-c shared_buffers=32MB",
                        "-c timezone=UTC",
                    ]
                )
                try:
                    self._run(
                        [
                            str(self.bindir / "pg_ctl"),
                            "-D",
                            str(self.datadir),
                            "-l",
                            str(self.logfile),
                            "-w",
                            "-t",
                            str(_START_TIMEOUT_S),
                            "-o",
                            options,
                            "start",
                        ],
                        "pg_ctl-start",
                        timeout=_START_TIMEOUT_S + 15,
                    )
                except RuntimeError as exc:
                    last_error = exc
                    if "already in use" not in self._tail(self.logfile):
                        raise
                    continue
                self._running = True
                break
            else:
                raise RuntimeError(f"could not start PostgreSQL on a free port: {last_error}")
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=5) as conn:
                    conn.execute("select 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Stops the server at once (no checkpoint) and removes its directory."""
        if self.tmpdir is None:
            return
        try:
            if self._running and self.datadir is not None:
                try:
                    self._run(
                        [
                            str(self.bindir / "pg_ctl"),
                            "-D",
                            str(self.datadir),
                            "-m",
                            "immediate",
                            "-w",
                            "stop",
                        ],
                        "pg_ctl-stop",
                        timeout=30,
                    )
                except Exception:
                    self._kill_postmaster()
        finally:
            self._running = False
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
            try:
                atexit.unregister(self.stop)
            except Exception:
                pass

    def _kill_postmaster(self) -> None:
        assert self.datadir is not None
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown
        except (OSError, ValueError, IndexError):
            pass

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- databases -----------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string (for psycopg.connect)."""
        return f"host={self.host} port={self.port} user={PG_USER} dbname={dbname}"

    def url(self, dbname: str = "postgres") -> str:
        """A SQLAlchemy URL for the psycopg 3 driver."""
        return f"postgresql+psycopg://{PG_USER}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """Creates an empty database and returns its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        if not self._running:
            raise RuntimeError("the PostgreSQL server is not running")
        name = name or f"syncd_test_{next(self._counter)}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drops a database, closing whatever connections are still open to it."""
        import psycopg
        from psycopg import sql

        if not self._running:
            return
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# -- pytest fixtures ---------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session (stopped at its end)."""
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under "
            "/usr/lib/postgresql/*/bin or on PATH: run scripts/setup.sh",
            pytrace=False,
        )
    server = PostgresServer(bindir)
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"cannot start the test PostgreSQL server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


_db_numbers = itertools.count(1)


@pytest.fixture()
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, empty database (``syncd_test_<n>``), dropped afterwards."""
    name = f"syncd_test_{next(_db_numbers)}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        try:
            postgres_server.drop_database(name)
        except Exception:
            pass  # the whole server is thrown away at the end of the session anyway
