#!/usr/bin/env python3
"""Plants known bugs, one at a time, in a copy of the tree and checks that the tests named
for each one fail: the proof that a "Must show" test can fail when its behaviour breaks.

Usage: .venv/bin/python scripts/plants.py scripts/plants/issue14.json [--only NAME ...]

A plants file is a JSON list of objects:
  {"name": "...", "file": "syncd/x.py", "old": "exact text", "new": "its replacement",
   "tests": ["tests/test_x.py::test_y", ...], "env": {"VAR": "value"}}
``old`` must occur exactly once in ``file``. The copy is put first on PYTHONPATH, so the
subprocesses the tests start (``python -m syncd``) run the planted code too. Prints one line
per plant (``caught`` or ``MISSED``) and exits 1 if any plant was missed or did not apply.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "mutants", ".mypy_cache", "*.pyc")


def run_plant(plant: dict, python: str) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="syncd-plant-") as folder:
        copy = Path(folder) / "tree"
        shutil.copytree(REPO, copy, ignore=IGNORE)
        target = copy / plant["file"]
        text = target.read_text()
        if text.count(plant["old"]) != 1:
            found = text.count(plant["old"])
            return "NOT APPLIED", f"'old' occurs {found} times in {plant['file']}"
        target.write_text(text.replace(plant["old"], plant["new"]))
        env = {**os.environ, **plant.get("env", {}), "PYTHONPATH": str(copy)}
        done = subprocess.run(
            [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *plant["tests"]],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
        )
        last = (done.stdout.strip().splitlines() or [""])[-1]
        if done.returncode == 1:
            return "caught", last
        if done.returncode == 0:
            return "MISSED", last
        return "ERROR", f"pytest exit {done.returncode}: {last} {done.stderr[-300:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plants", type=Path)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args(argv)
    plants = json.loads(args.plants.read_text())
    bad = 0
    for plant in plants:
        if args.only and plant["name"] not in args.only:
            continue
        verdict, detail = run_plant(plant, sys.executable)
        bad += verdict != "caught"
        print(f"{verdict:12} {plant['name']}: {detail}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
