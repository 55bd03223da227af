#!/usr/bin/env python3
"""Plants known bugs, one at a time, in a copy of the tree and checks that the tests named
for each one fail: the proof that a "Must show" test can fail when its behaviour breaks.

Usage: .venv/bin/python scripts/plants.py scripts/plants/issue14.json [--only NAME ...]

A plants file is a JSON list of objects:
  {"name": "...", "file": "syncd/x.py", "old": "exact text", "new": "its replacement",
   "tests": ["tests/test_x.py::test_y", ...], "env": {"VAR": "value"}}
``old`` must occur exactly once in ``file``. The copy is put first on PYTHONPATH, so the
subprocesses the tests start (``python -m syncd``) run the planted code too; its
``migrations/`` is linked in as ``syncd/migrations`` (the editable install maps that package
to the installed tree's folder, which would otherwise be run instead). Prints one line per
plant (``caught`` or ``MISSED``) and exits 1 if any plant was missed or did not apply.
``--baseline`` first runs every named test in an unplanted copy: a plant "caught" by a test
that fails anyway proves nothing.
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


def copy_tree(folder: str) -> Path:
    """The tree copied into ``folder``, its migrations where ``import syncd.migrations`` finds
    them first."""
    copy = Path(folder) / "tree"
    shutil.copytree(REPO, copy, ignore=IGNORE)
    link = copy / "syncd" / "migrations"
    if link.is_symlink() or link.exists():  # a worktree with the link made (copied as a folder)
        shutil.rmtree(link) if link.is_dir() and not link.is_symlink() else link.unlink()
    link.symlink_to(Path("..") / "migrations")
    return copy


def run_baseline(tests: list[str], python: str) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="syncd-plant-") as folder:
        copy = copy_tree(folder)
        done = subprocess.run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
            cwd=copy,
            env={**os.environ, "PYTHONPATH": str(copy)},
            capture_output=True,
            text=True,
        )
        last = (done.stdout.strip().splitlines() or [""])[-1]
        failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        return ("ok" if done.returncode == 0 else "FAILS"), "; ".join([*failed, last])


def run_plant(plant: dict, python: str) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="syncd-plant-") as folder:
        copy = copy_tree(folder)
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
    parser.add_argument("--baseline", action="store_true", help="first run the tests unplanted")
    args = parser.parse_args(argv)
    plants = json.loads(args.plants.read_text())
    bad = 0
    if args.baseline:
        chosen = [p for p in plants if not args.only or p["name"] in args.only]
        tests = list(dict.fromkeys(test for plant in chosen for test in plant["tests"]))
        verdict, detail = run_baseline(tests, sys.executable)
        print(f"{'baseline ' + verdict:12} {len(tests)} tests unplanted: {detail}", flush=True)
        if verdict != "ok":
            return 1
    for plant in plants:
        if args.only and plant["name"] not in args.only:
            continue
        verdict, detail = run_plant(plant, sys.executable)
        bad += verdict != "caught"
        print(f"{verdict:12} {plant['name']}: {detail}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
