"""What ``syncd sync`` costs when there is nothing new, next to what importing its two big
libraries costs: ``python -c "import requests, sqlalchemy"``, timed in the same run, and
syncd's own import time read from Python's import trace (``-X importtime``).

The simulator (its built-in example catalog: the five license streams) runs in a thread of
this process on 127.0.0.1; every command runs as a real subprocess with the default
configuration (no file, all five media types, SQLite, the folder backend). A first sync (not
timed) fills the database and the folder; then each round times, in an order that rotates
from round to round:

- ``sync``: ``python -m syncd sync --json --no-progress`` with nothing new (five license
  lists, the /updated passes, no download), start to exit, wall clock and CPU (user+sys);
- ``import``: ``python -c "import requests, sqlalchemy"``, the same way;
- ``trace``: the same sync under ``python -X importtime``, from whose trace syncd's own
  import time is taken (below); its wall clock is not reported (tracing slows it down).

Syncd's own import time: the sum of the "self" times (each module's own loading and
execution, its imports excluded) of every module imported during the run, except

- what the bare interpreter imports (the modules of ``python -X importtime -c pass``'s trace
  in the same run, e.g. ``site``, and whatever they import), and
- requests' and SQLAlchemy's: a module named ``requests`` / ``sqlalchemy`` or below, anything
  such a module imports, and any module ``python -c "import requests, sqlalchemy"`` imports
  (whoever imports it first in syncd: the split does not depend on import order).

So it is syncd's modules plus what they pull in on top (structlog, stdlib modules neither
library needs). The report also gives "beyond import": the whole trace's import time minus
that of ``python -X importtime -c "import requests, sqlalchemy"`` (SQLAlchemy's ORM and
dialects count here, as syncd chose to load them).

Last, a new database's schema: Alembic's migrations one after the other (as before) against
the one step ``syncd.db.upgrade`` takes on an empty database, each in a fresh subprocess on
a fresh SQLite file, timed from before the schema step (Alembic's import included) to its
end, after SQLAlchemy and syncd's models are loaded.

    .venv/bin/python benchmarks/startup.py [--runs 7] [--no-save]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from syncd.simulator import Catalog, Simulator  # noqa: E402

TOKEN = "bench-token"
THIRD_PARTY = ("requests", "sqlalchemy")
TRACE_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def environment(home: Path, sim: Simulator, database_url: str | None = None) -> dict[str, str]:
    """A syncd child's environment: this checkout's code, the simulator, a database (a new
    SQLite file under ``home`` unless ``database_url``) and storage under ``home``; no
    proxy, no other SYNCD_ or PYTHON variable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SYNCD_", "PYTHON")) and "proxy" not in k.lower()
    }
    env.update(
        PYTHONPATH=str(REPO),
        SHUTTERSTOCK_API_TOKEN=TOKEN,
        SYNCD_API__BASE_URL=sim.base_url,
        SYNCD_DATABASE__URL=database_url or f"sqlite:///{home / 'syncd.db'}",
        SYNCD_STORAGE__PATH=str(home / "dam"),
    )
    return env


def run(argv: list[str], home: Path, env: dict[str, str]) -> tuple[float, float, str, str]:
    """Runs ``argv``; wall seconds (start to exit), CPU seconds (the child's user+sys, from
    the rusage of reaped children), stdout and stderr. A non-zero exit stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=home, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout, done.stderr


def parse_trace(text: str) -> list[tuple[int, int, int, str]]:
    """(self us, cumulative us, depth, module) per line of an ``-X importtime`` trace, in the
    order printed (a module after the modules it imported)."""
    rows = []
    for line in text.splitlines():
        match = TRACE_LINE.match(line)
        if match:
            rows.append((int(match[1]), int(match[2]), (len(match[3]) - 1) // 2, match[4]))
    return rows


def attribute(
    rows: list[tuple[int, int, int, str]], interpreter: set[str], third_party: set[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Self microseconds by category (``interpreter``, ``requests+sqlalchemy``, ``syncd``),
    and syncd's own by top-level package. A module belongs to its nearest categorised
    ancestor's category, else to its own (see the module's docstring)."""
    totals = {"interpreter": 0, "requests+sqlalchemy": 0, "syncd": 0}
    own: dict[str, int] = {}
    stack: list[tuple[int, str]] = []  # (depth, category) of the ancestors
    for self_us, _cum, depth, name in reversed(rows):  # a parent before its imports
        while stack and stack[-1][0] >= depth:
            stack.pop()
        inherited = stack[-1][1] if stack else None
        if inherited in ("interpreter", "requests+sqlalchemy"):
            category = inherited
        elif name in interpreter:
            category = "interpreter"
        elif name.split(".")[0] in THIRD_PARTY or name in third_party:
            category = "requests+sqlalchemy"
        else:
            category = "syncd"
        stack.append((depth, category))
        totals[category] += self_us
        if category == "syncd":
            package = name.split(".")[0]
            key = name if package == "syncd" else package
            own[key] = own.get(key, 0) + self_us
    return totals, own


def first_sync(home: Path, env: dict[str, str]) -> dict:
    _, _, out, _ = run(SYNC, home, env)
    return json.loads(out.strip().splitlines()[-1])


SYNC = [sys.executable, "-m", "syncd", "sync", "--json", "--no-progress"]
IMPORT = [sys.executable, "-c", "import requests, sqlalchemy"]
TRACE = [sys.executable, "-X", "importtime", "-m", "syncd", "sync", "--json", "--no-progress"]

MIGRATIONS = """
import sys, time
from syncd.db.engine import alembic_config, connect
import syncd.db.models
engine = connect(sys.argv[1])
started = time.perf_counter()
from alembic import command
config = alembic_config()
with engine.begin() as connection:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
print(time.perf_counter() - started)
"""
ONE_STEP = """
import sys, time
from syncd.db.engine import connect, upgrade
import syncd.db.models
engine = connect(sys.argv[1])
started = time.perf_counter()
upgrade(engine)
print(time.perf_counter() - started)
"""


def schema_round(folder: Path, env: dict[str, str], n: int) -> dict[str, float]:
    seconds = {}
    for name, code in (("migrations", MIGRATIONS), ("one_step", ONE_STEP)):
        url = f"sqlite:///{folder / f'{name}-{n}.db'}"
        _, _, out, _ = run([sys.executable, "-c", code, url], folder, env)
        seconds[name] = float(out.strip().splitlines()[-1])
    return seconds


def median(values: list[float], digits: int = 1) -> float:
    return round(statistics.median(values), digits)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds (at least 5; default 7)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs: at least 5")
    load_before = os.getloadavg()
    sim = Simulator(Catalog.example(), token=TOKEN).start()
    rounds = []
    try:
        with tempfile.TemporaryDirectory(prefix="syncd-bench-startup-") as folder:
            home = Path(folder)
            env = environment(home, sim)
            first = first_sync(home, env)
            streams = len({r.path for r in sim.api_requests() if r.path.endswith("/licenses")})
            # the categories' reference sets, from traces taken in this run
            _, _, _, bare = run([sys.executable, "-X", "importtime", "-c", "pass"], home, env)
            interpreter = {row[3] for row in parse_trace(bare)}
            _, _, _, libs = run([sys.executable, "-X", "importtime", *IMPORT[1:]], home, env)
            lib_rows = parse_trace(libs)
            third_party = {row[3] for row in lib_rows} - interpreter
            lib_total_ms = sum(row[0] for row in lib_rows) / 1000
            kinds = ("sync", "import", "trace")
            for n in range(args.runs):
                result: dict = {"order": []}
                for kind in kinds[n % 3 :] + kinds[: n % 3]:  # rotates every round
                    result["order"].append(kind)
                    if kind == "sync":
                        wall, cpu, out, _ = run(SYNC, home, env)
                        summary = json.loads(out.strip().splitlines()[-1])
                        if summary["new_licenses"] or summary["downloaded"]:
                            raise SystemExit(f"the sync was not a no-op: {summary}")
                        result["sync_ms"], result["sync_cpu_ms"] = wall * 1000, cpu * 1000
                        result["api_requests"] = summary["api_requests"]
                    elif kind == "import":
                        wall, cpu, _, _ = run(IMPORT, home, env)
                        result["import_ms"], result["import_cpu_ms"] = wall * 1000, cpu * 1000
                    else:
                        _, _, _, err = run(TRACE, home, env)
                        rows = parse_trace(err)
                        totals, own = attribute(rows, interpreter, third_party)
                        result["own_import_ms"] = totals["syncd"] / 1000
                        result["third_party_import_ms"] = totals["requests+sqlalchemy"] / 1000
                        result["interpreter_import_ms"] = totals["interpreter"] / 1000
                        result["all_imports_ms"] = sum(r[0] for r in rows) / 1000
                        result["beyond_import_ms"] = result["all_imports_ms"] - lib_total_ms
                        result["own_by_module_ms"] = {
                            k: round(v / 1000, 2)
                            for k, v in sorted(own.items(), key=lambda kv: -kv[1])[:15]
                        }
                        loaded = {r[3].split(".")[0] for r in rows}
                        result["loaded"] = sorted(
                            loaded & {"boto3", "botocore", "alembic", "prometheus_client"}
                        )
                result["schema_s"] = schema_round(home, env, n)
                rounds.append(result)
                print(
                    f"round {n + 1}: sync {result['sync_ms']:.0f} ms (cpu "
                    f"{result['sync_cpu_ms']:.0f}), import requests+sqlalchemy "
                    f"{result['import_ms']:.0f} ms (cpu {result['import_cpu_ms']:.0f}), syncd's "
                    f"own imports {result['own_import_ms']:.1f} ms; new schema: migrations "
                    f"{result['schema_s']['migrations'] * 1000:.0f} ms, one step "
                    f"{result['schema_s']['one_step'] * 1000:.0f} ms",
                    flush=True,
                )
    finally:
        sim.stop()
    medians = {
        key: median([r[key] for r in rounds])
        for key in (
            "sync_ms",
            "sync_cpu_ms",
            "import_ms",
            "import_cpu_ms",
            "own_import_ms",
            "third_party_import_ms",
            "interpreter_import_ms",
            "all_imports_ms",
            "beyond_import_ms",
        )
    }
    medians["schema_migrations_ms"] = median([r["schema_s"]["migrations"] * 1000 for r in rounds])
    medians["schema_one_step_ms"] = median([r["schema_s"]["one_step"] * 1000 for r in rounds])
    print(
        f"\nmedians over {len(rounds)} rounds ({streams} license streams, "
        f"{rounds[0]['api_requests']} API requests per no-op sync):\n"
        f"  syncd sync, nothing new          {medians['sync_ms']:7.1f} ms wall  "
        f"{medians['sync_cpu_ms']:6.1f} ms cpu\n"
        f"  python -c 'import requests, sqlalchemy'  {medians['import_ms']:7.1f} ms wall  "
        f"{medians['import_cpu_ms']:6.1f} ms cpu\n"
        f"  syncd's own import time          {medians['own_import_ms']:7.1f} ms "
        f"(requests+sqlalchemy {medians['third_party_import_ms']:.1f} ms, interpreter "
        f"{medians['interpreter_import_ms']:.1f} ms; beyond `import requests, sqlalchemy` "
        f"{medians['beyond_import_ms']:.1f} ms)\n"
        f"  a new database's schema          migrations {medians['schema_migrations_ms']:.0f} ms,"
        f" one step {medians['schema_one_step_ms']:.0f} ms\n"
        f"  loaded by the no-op sync of those watched: {rounds[0]['loaded'] or 'none'}"
    )
    print("  syncd's own import time by module (round 1, ms):", rounds[0]["own_by_module_ms"])
    if not args.no_save:
        out = HERE / "results" / f"startup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        out.write_text(
            json.dumps(
                {
                    "command": "benchmarks/startup.py",
                    "runs": args.runs,
                    "first_sync": first,
                    "streams": streams,
                    "medians": medians,
                    "rounds": rounds,
                    "machine": {
                        "python": platform.python_version(),
                        "cpus": os.cpu_count(),
                        "load_average_before": load_before,
                        "load_average_after": os.getloadavg(),
                    },
                },
                indent=2,
            )
            + "\n"
        )
        print(f"saved {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
