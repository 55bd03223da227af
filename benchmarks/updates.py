"""What one /updated window with many updates costs: 100,000 updates of images in the last
hour, of which 100 concern images syncd holds. Prints the API requests by kind (license
lists, /updated pages, detail requests) and the time of the sync that applies them.

The simulator runs in a thread of this process on 127.0.0.1; ``syncd sync`` runs as a real
subprocess (the default configuration, ``--media images``). A first sync takes the 100 images
in (their files and details); then the updates are added and a second sync is timed. The run
fails (exit 1) unless the second sync asked for exactly the list request, the /updated pages
and one detail request per 100 held images that were edited: updates of assets syncd does
not hold cost no detail request.

    .venv/bin/python benchmarks/updates.py [--updates 100000] [--held 100] [--runs 3] [--no-save]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from syncd.details import IDS_PER_REQUEST  # noqa: E402
from syncd.simulator import Catalog, Simulator  # noqa: E402
from syncd.updates import DATED_PER_PAGE  # noqa: E402
from tests.conftest import requests_by_kind  # noqa: E402

TOKEN = "bench-token"


def sync(home: Path, sim: Simulator) -> tuple[dict, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_") and "proxy" not in k}
    env.update(
        SHUTTERSTOCK_API_TOKEN=TOKEN,
        SYNCD_API__BASE_URL=sim.base_url,
        SYNCD_DATABASE__URL=f"sqlite:///{home / 'syncd.db'}",
        SYNCD_STORAGE__PATH=str(home / "dam"),
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "sync", "--media", "images", "--json", "--no-progress"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"sync exited {done.returncode}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), elapsed


def one_run(updates: int, held: int, seed: int) -> dict:
    catalog = Catalog(seed=seed)
    for n in range(held):
        catalog.add(
            "images",
            download_time=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
            file_size=2000,
        )
    sim = Simulator(catalog, token=TOKEN).start()
    try:
        with tempfile.TemporaryDirectory(prefix="syncd-bench-updates-") as folder:
            home = Path(folder)
            sync(home, sim)
            ids = sorted({lic.media_id for lic in catalog.history("images")})
            when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
            others = updates - held
            catalog.add_updates(
                "images", ((f"7{n:09d}", when - timedelta(seconds=n % 1800)) for n in range(others))
            )
            catalog.add_updates("images", ((m, when) for m in ids))
            sim.reset_log()
            summary, elapsed = sync(home, sim)
            sent = requests_by_kind(sim)
    finally:
        sim.stop()
    pages = math.ceil(updates / DATED_PER_PAGE)
    ok = (
        sent.get("list") == 1
        and pages <= sent.get("updated", 0) <= pages + 1
        and sent.get("details") == math.ceil(held / IDS_PER_REQUEST)
        and set(sent) == {"list", "updated", "details"}
    )
    return {
        "requests": sent,
        "api_requests": summary["api_requests"],
        "seconds": round(elapsed, 2),
        "expected_ok": ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--held", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    runs = [one_run(args.updates, args.held, seed=n + 1) for n in range(args.runs)]
    for n, run in enumerate(runs, 1):
        print(f"run {n}: {run['seconds']} s, requests {run['requests']}, ok={run['expected_ok']}")
    median = statistics.median(r["seconds"] for r in runs)
    print(
        f"median over {len(runs)} runs: {median} s for a window of {args.updates} updates, "
        f"{args.held} of them of held images; requests {runs[0]['requests']}"
    )
    if not args.no_save:
        out = HERE / "results" / f"updates-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        out.write_text(
            json.dumps(
                {
                    "updates": args.updates,
                    "held": args.held,
                    "runs": runs,
                    "median_s": median,
                    "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                },
                indent=2,
            )
            + "\n"
        )
        print(f"saved {out.relative_to(REPO)}")
    return 0 if all(r["expected_ok"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
