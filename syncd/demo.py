"""``syncd demo``: the built-in simulator on 127.0.0.1, synced into ./syncd-demo/."""

from __future__ import annotations

import sys
from pathlib import Path

from syncd import logs
from syncd.config import load
from syncd.progress import display_for
from syncd.summary import report_run
from syncd.sync import SyncRun

DEMO_DIR = Path("syncd-demo")
DEMO_TOKEN = "demo-token"


def run_demo(args) -> int:
    from syncd.simulator import Catalog, Simulator

    with Simulator(Catalog.example(), token=DEMO_TOKEN) as sim:
        config = load(
            environ={
                "SYNCD_API__BASE_URL": sim.base_url,
                "SHUTTERSTOCK_API_TOKEN": DEMO_TOKEN,
                "SYNCD_DATABASE__URL": f"sqlite:///{DEMO_DIR / 'syncd.db'}",
                "SYNCD_STORAGE__PATH": str(DEMO_DIR / "dam"),
                "SYNCD_UPDATES__ENABLED": "false",
            },
            search=False,
        )
        logs.register_secret(DEMO_TOKEN)
        print(f"simulator listening on {sim.base_url}; syncing into {DEMO_DIR}/")
        result = SyncRun(
            config,
            media=config.sync.media,
            progress=display_for(sys.stderr, "sync", no_progress=False, stats_s=None),
        ).execute()

    report_run(result, as_json=False)
    root = DEMO_DIR / "dam"
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".")
    )
    print(f"\n{len(files)} objects under {root}/:")
    for name in files:
        print(f"  {name}")
    print(
        f"\nrun it again (nothing new is fetched), or look inside:\n"
        f"  SYNCD_DATABASE__URL=sqlite:///{DEMO_DIR}/syncd.db {sys.executable} -m syncd status"
    )
    return result.exit_code
