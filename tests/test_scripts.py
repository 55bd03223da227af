"""The set-up scripts as a new user meets them: the demo installs only what syncd needs to run,
and the config file that can hold the token is kept out of git."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO


def test_the_config_file_that_can_hold_the_token_is_ignored_by_git():
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "config/syncd.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr or "config/syncd.toml is not ignored"
    assert done.stdout.strip() == "config/syncd.toml"


def test_the_demo_installs_syncd_without_test_tools_or_system_packages(tmp_path):
    listed = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    copy = tmp_path / "checkout"
    for name in listed:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    # apt-get and sudo that only record being called
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "calls"
    for tool in ("apt-get", "sudo"):
        script = fake_bin / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\nexit 1\n')
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "CI": "true"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        ["bash", "scripts/setup.sh", "--runtime"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert not calls.exists(), calls.read_text()
    python = copy / ".venv" / "bin" / "python"
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u, syncd.cli;"
            "print([m for m in ('pytest', 'hypothesis', 'mypy', 'ruff', 'mutmut')"
            " if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "[]"
    assert Path(copy / ".venv" / "bin" / "syncd").exists()
    assert "bash scripts/setup.sh --runtime" in (copy / "scripts" / "demo.sh").read_text()
