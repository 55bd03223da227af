"""What a license history of 200,000 entries costs: the first catch-up's wall time and peak
RSS, then a second ``syncd sync`` with nothing new, timed beside the same no-op sync of a
tiny history (20 licenses) in the same run, on SQLite and on PostgreSQL.

The history (deterministic from ``--seed``): ``--count`` licenses, of which 0.5% in each of
videos, audio, editorial/images and editorial/videos and the rest images; 5% of the image
licenses are twins (an earlier license's asset and size). ``--files`` of them (images,
spread over the history) are downloadable, 1 KiB each; all the others have
``is_downloadable: false``. So the run measures paging, planning and the ledger, not bytes:
every license is recorded, planned and settled (stored, or unavailable with its reason),
every asset's sidecar is written, and the details of every asset are fetched (the default
``sync.details``: 100 ids per request for images, videos and audio, one request per
editorial asset).

Two simulators run in threads of this process on 127.0.0.1 (the big history and a tiny one
of 20 licenses, 4 per stream); PostgreSQL is a throw-away cluster on 127.0.0.1 (tests/
pgserver.py: Debian's binaries, ``fsync=off``, as the test fixture), stopped at the end.
Every ``syncd sync --json --no-progress`` runs as a real subprocess with the default
configuration but the simulator's URL, the token, the database URL and the storage path. Per
database, in a fresh database and folder:

1. the first catch-up of the big history (``--catchup-rounds``, default 1: each in a fresh
   database): wall clock, CPU and the child's own peak RSS (``ru_maxrss`` from ``wait4``);
2. the tiny history's first sync (not timed);
3. ``--runs`` rounds (default 3), the order rotating each round, of a no-op sync of the big
   history and of the tiny one: wall clock, CPU, and the API requests by kind from the
   simulator's log (the run fails unless the big no-op sent exactly one list request per
   stream and no download or details request).

    .venv/bin/python benchmarks/scale.py [--count 200000] [--files 2000] [--db sqlite,postgresql]
        [--runs 3] [--catchup-rounds 1] [--seed 17] [--no-save]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import startup  # noqa: E402
import transfer  # noqa: E402

from syncd.simulator import Catalog, Simulator  # noqa: E402
from syncd.simulator.catalog import STREAMS  # noqa: E402
from tests.conftest import requests_by_kind  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402

TOKEN = "bench-token"
OTHER_SHARE = 0.005  # of the history in each stream but images
TWIN_SHARE = 0.05  # image licenses for an earlier license's asset and size
FILE_BYTES = 1024
SYNC = [sys.executable, "-m", "syncd", "sync", "--json", "--no-progress"]
TARGET_RSS_MB = 250
TARGET_BEYOND_S = 1.0


def big_catalog(count: int, files: int, seed: int) -> Catalog:
    """``count`` licenses, ``files`` of them downloadable (see the module's docstring)."""
    import random

    rng = random.Random(seed)
    catalog = Catalog(seed=seed)
    others = {stream: int(count * OTHER_SHARE) for stream in STREAMS if stream != "images"}
    images = count - sum(others.values())
    every = max(1, images // files) if files else 0
    moment = datetime(2016, 1, 4, tzinfo=UTC)
    made: list[tuple[str, str]] = []  # (media id, size) of the image licenses so far
    downloadable = 0
    for n in range(images):
        moment += timedelta(seconds=rng.randrange(30, 900))
        is_file = bool(every) and n % every == 0 and downloadable < files
        if made and not is_file and rng.random() < TWIN_SHARE:
            media_id, size = rng.choice(made)
            catalog.add(
                "images",
                media_id=media_id,
                size=size,
                download_time=moment,
                is_downloadable=False,
            )
            continue
        lic = catalog.add(
            "images",
            size=rng.choice(("huge", "medium", "small")),
            download_time=moment,
            is_downloadable=is_file,
            file_size=FILE_BYTES,
        )
        downloadable += is_file
        if not is_file:
            made.append((lic.media_id, lic.size or "original"))
    for stream, number in others.items():
        for _ in range(number):
            moment += timedelta(seconds=rng.randrange(30, 900))
            catalog.add(stream, download_time=moment, is_downloadable=False, file_size=FILE_BYTES)
    return catalog


def tiny_catalog(seed: int) -> Catalog:
    catalog = Catalog(seed=seed)
    moment = datetime(2020, 1, 1, tzinfo=UTC)
    for stream in STREAMS:
        for _ in range(4):
            moment += timedelta(minutes=7)
            catalog.add(stream, download_time=moment, file_size=FILE_BYTES)
    return catalog


def environment(home: Path, sim: Simulator, database_url: str) -> dict[str, str]:
    return startup.environment(home, sim, database_url)


def run_sync(home: Path, env: dict[str, str], timeout_s: float) -> dict:
    """One ``syncd sync``: wall and CPU seconds, peak RSS (MB, the child's own, from
    ``wait4``) and its summary. Any exit but 0 stops the benchmark."""
    home.mkdir(parents=True, exist_ok=True)
    out, err = home / "sync.out", home / "sync.err"
    started = time.perf_counter()
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = transfer._spawn(SYNC, cwd=home, env=env, stdout=stdout, stderr=stderr)
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                raise SystemExit(f"sync took more than {timeout_s} s")
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)
        transfer._forget(proc)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"sync exited {proc.returncode}:\n{err.read_text()[-3000:]}")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "summary": json.loads(out.read_text().strip().splitlines()[-1]),
    }


class Databases:
    """A fresh database for each (kind, name): SQLite files in the folder, or databases on
    one throw-away PostgreSQL server started on first use."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.server: PostgresServer | None = None

    def url(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.folder / f'{name}.db'}"
        if self.server is None:
            self.server = PostgresServer().start()
        return self.server.create_database(name.replace("-", "_"))

    def version(self) -> str | None:
        if self.server is None:
            return None
        import psycopg

        with psycopg.connect(self.server.dsn()) as conn:
            row = conn.execute("show server_version").fetchone()
        return None if row is None else str(row[0])

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def one_database(
    kind: str, args, big: Simulator, tiny: Simulator, dbs: Databases, folder: Path
) -> dict:
    catch_ups = []
    for n in range(args.catchup_rounds):
        home = folder / f"{kind}-big-{n}"
        env = environment(home, big, dbs.url(kind, f"big_{n}"))
        big.reset_log()
        result = run_sync(home, env, args.timeout)
        result["requests"] = requests_by_kind(big)
        catch_ups.append(result)
        print(
            f"{kind}: first catch-up {result['wall_s']:.1f} s (cpu {result['cpu_s']:.1f} s), "
            f"peak RSS {result['peak_rss_mb']:.0f} MB, requests {result['requests']}",
            flush=True,
        )
    big_env = env  # the last catch-up's database and folder: the no-op rounds run on it
    tiny_home = folder / f"{kind}-tiny"
    tiny_env = environment(tiny_home, tiny, dbs.url(kind, "tiny"))
    run_sync(tiny_home, tiny_env, args.timeout)
    rounds = []
    for n in range(args.runs):
        order = ["big", "tiny"] if n % 2 == 0 else ["tiny", "big"]
        result: dict = {"order": order}
        for which in order:
            sim, home, env = (big, home, big_env) if which == "big" else (tiny, tiny_home, tiny_env)
            sim.reset_log()
            done = run_sync(home, env, args.timeout)
            done["requests"] = requests_by_kind(sim)
            summary = done["summary"]
            if summary["new_licenses"] or summary["downloaded"]:
                raise SystemExit(f"the {which} sync was not a no-op: {summary}")
            result[which] = done
        result["beyond_s"] = round(result["big"]["wall_s"] - result["tiny"]["wall_s"], 3)
        rounds.append(result)
        print(
            f"{kind}: round {n + 1}: no-op sync of {args.count} licenses "
            f"{result['big']['wall_s'] * 1000:.0f} ms (cpu {result['big']['cpu_s'] * 1000:.0f}), "
            f"of 20 {result['tiny']['wall_s'] * 1000:.0f} ms (cpu "
            f"{result['tiny']['cpu_s'] * 1000:.0f}); requests {result['big']['requests']}",
            flush=True,
        )
    big_requests = rounds[0]["big"]["requests"]
    requests_ok = all(
        r["big"]["requests"].get("list") == len(STREAMS)
        and not {"redownload", "details"} & set(r["big"]["requests"])
        for r in rounds
    )

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    medians = {
        "catch_up_s": med([c["wall_s"] for c in catch_ups]),
        "catch_up_cpu_s": med([c["cpu_s"] for c in catch_ups]),
        "catch_up_peak_rss_mb": max(c["peak_rss_mb"] for c in catch_ups),
        "noop_s": med([r["big"]["wall_s"] for r in rounds]),
        "noop_cpu_s": med([r["big"]["cpu_s"] for r in rounds]),
        "noop_peak_rss_mb": max(r["big"]["peak_rss_mb"] for r in rounds),
        "tiny_noop_s": med([r["tiny"]["wall_s"] for r in rounds]),
        "tiny_noop_cpu_s": med([r["tiny"]["cpu_s"] for r in rounds]),
        "beyond_s": med([r["beyond_s"] for r in rounds]),
    }
    return {
        "catch_ups": catch_ups,
        "rounds": rounds,
        "medians": medians,
        "noop_requests": big_requests,
        "tiny_noop_requests": rounds[0]["tiny"]["requests"],
        "requests_ok": requests_ok,
        "targets": {
            "peak_rss_under_250_mb": medians["catch_up_peak_rss_mb"] < TARGET_RSS_MB,
            "noop_under_1_s_beyond_startup": medians["beyond_s"] < TARGET_BEYOND_S,
            "one_list_request_per_stream": requests_ok,
        },
    }


def report(args, results: dict, build_s: float) -> None:
    print(
        f"\n{args.count} licenses ({args.files} downloadable files of {FILE_BYTES} B, the rest "
        f"not downloadable; history built in {build_s:.1f} s); medians of {args.runs} no-op "
        f"rounds, {args.catchup_rounds} first catch-up(s) per database"
    )
    header = (
        f"  {'database':<11} {'catch-up s':>10} {'cpu s':>7} {'peak MB':>8} "
        f"{'no-op ms':>9} {'cpu ms':>7} {'20-lic ms':>9} {'beyond ms':>9}  requests of a no-op"
    )
    print(header)
    for kind, r in results.items():
        m = r["medians"]
        print(
            f"  {kind:<11} {m['catch_up_s']:>10.1f} {m['catch_up_cpu_s']:>7.1f} "
            f"{m['catch_up_peak_rss_mb']:>8.0f} {m['noop_s'] * 1000:>9.0f} "
            f"{m['noop_cpu_s'] * 1000:>7.0f} {m['tiny_noop_s'] * 1000:>9.0f} "
            f"{m['beyond_s'] * 1000:>9.0f}  {r['noop_requests']}"
        )
    for kind, r in results.items():
        print(f"  {kind} targets: {r['targets']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000, help="licenses (default 200000)")
    parser.add_argument("--files", type=int, default=2000, help="downloadable ones (1 KiB each)")
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite,postgresql or one")
    parser.add_argument("--runs", type=int, default=3, help="no-op rounds (at least 3)")
    parser.add_argument("--catchup-rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per sync")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.db.split(",") if k.strip()]
    if not kinds or set(kinds) - {"sqlite", "postgresql"}:
        parser.error("--db: sqlite, postgresql or both, comma-separated")
    if args.runs < 3:
        parser.error("--runs: at least 3")
    if args.catchup_rounds < 1 or args.count < 1000 or not 0 <= args.files <= args.count // 2:
        parser.error("--catchup-rounds at least 1, --count at least 1000, --files at most half")
    signal.signal(signal.SIGTERM, transfer._on_sigterm)
    load_before = os.getloadavg()
    started = time.perf_counter()
    catalog = big_catalog(args.count, args.files, args.seed)
    build_s = time.perf_counter() - started
    big = Simulator(catalog, token=TOKEN).start()
    tiny = Simulator(tiny_catalog(args.seed), token=TOKEN).start()
    results: dict[str, dict] = {}
    pg_version = None
    try:
        with tempfile.TemporaryDirectory(prefix="syncd-bench-scale-") as scratch:
            dbs = Databases(Path(scratch))
            try:
                for kind in kinds:
                    results[kind] = one_database(kind, args, big, tiny, dbs, Path(scratch))
                pg_version = dbs.version()
            finally:
                dbs.stop()
    finally:
        transfer._kill_children()
        big.stop()
        tiny.stop()
    report(args, results, build_s)
    if not args.no_save:
        out = HERE / "results" / f"scale-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        versions = transfer.versions("nginx", sys.executable, [])
        versions.pop("nginx", None)
        versions.pop("curl", None)
        versions["postgresql"] = pg_version
        import sqlite3

        versions["sqlite"] = sqlite3.sqlite_version
        out.write_text(
            json.dumps(
                {
                    "command": "benchmarks/scale.py " + " ".join(sys.argv[1:]),
                    "count": args.count,
                    "files": args.files,
                    "file_bytes": FILE_BYTES,
                    "seed": args.seed,
                    "runs": args.runs,
                    "catchup_rounds": args.catchup_rounds,
                    "catalog_build_s": round(build_s, 2),
                    "results": results,
                    "versions": versions,
                    "machine": {
                        **transfer.machine(),
                        "python": platform.python_version(),
                        "load_average_before": load_before,
                        "load_average_after": os.getloadavg(),
                    },
                },
                indent=2,
            )
            + "\n"
        )
        print(f"saved {out.relative_to(REPO)}")
    ok = all(all(r["targets"].values()) for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
