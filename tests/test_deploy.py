"""deploy/: the systemd units pass the real systemd-analyze (verify without a word of output,
security exposure at most 2.0), the crontab's schedules are cron, and the alert rules name
metrics that syncd exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from syncd.config import ServeConfig
from syncd.credentials import TOKEN_CREDENTIAL
from syncd.metrics import Metrics
from syncd.schedule import cron_trigger

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
UNITS = ("syncd.service", "syncd-backfill.service", "syncd-backfill.timer")
SERVICES = ("syncd.service", "syncd-backfill.service")
EXEC = "/usr/local/bin/syncd"
# systemd-analyze security prints the exposure from 0.0 to 10.0 but reads --threshold on its
# internal scale of 0 to 100: --threshold=20 is an exposure of 2.0.
MAX_EXPOSURE = 2.0


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if not found:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (scripts/setup.sh)")
    return found


def system_unit_dir() -> Path:
    for candidate in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (candidate / "sysinit.target").exists():
            return candidate
    pytest.fail("no systemd unit folder with sysinit.target: apt-get install systemd")


@pytest.fixture
def root(tmp_path) -> Path:
    """A file-system root for ``systemd-analyze verify --root``: the distribution's units,
    ours in /etc/systemd/system, and an executable where ExecStart looks."""
    root = tmp_path / "root"
    shutil.copytree(system_unit_dir(), root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(DEPLOY / unit, root / "etc/systemd/system" / unit)
    binary = root / EXEC.lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return root


def verify(root: Path, *units: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [systemd_analyze(), "verify", f"--root={root}", *units],
        capture_output=True,
        text=True,
        timeout=120,
    )


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values, in order]}}."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        name, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {line!r} outside a section"
        current.setdefault(name.strip(), []).append(value.strip())
    return sections


def one(unit: dict, section: str, name: str) -> str:
    values = unit[section][name]
    assert len(values) == 1, f"{name} set {len(values)} times"
    return values[0]


def seconds(text: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+)\s*([a-z]*)", text):
        total += int(number) * units[unit]
    return total


# --- systemd-analyze ------------------------------------------------------------------------


def test_units_pass_systemd_analyze_verify_without_any_output(root):
    done = verify(root, *UNITS)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_harness_reports_an_unknown_key(root):
    # verify exits 0 on unknown keys: the test above must fail on its output alone.
    unit = root / "etc/systemd/system/syncd.service"
    unit.write_text(unit.read_text().replace("[Service]\n", "[Service]\nWatchdogSecs=60\n"))
    done = verify(root, "syncd.service")
    assert "Unknown key" in done.stdout + done.stderr


def test_verify_harness_reports_a_missing_exec_start_binary(root):
    (root / EXEC.lstrip("/")).unlink()
    done = verify(root, "syncd.service")
    assert "is not executable" in done.stdout + done.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_service_exposure_is_at_most_two(service):
    done = subprocess.run(
        [
            systemd_analyze(),
            "security",
            "--offline=yes",
            f"--threshold={int(MAX_EXPOSURE * 10)}",
            str(DEPLOY / service),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


# --- what the units say ---------------------------------------------------------------------


def test_service_is_a_hardened_notify_daemon_running_serve():
    unit = parse_unit(DEPLOY / "syncd.service")
    service = unit["Service"]
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "User") == "syncd"
    assert one(unit, "Service", "ExecStart").split()[:2] == [EXEC, "serve"]
    assert one(unit, "Service", "StateDirectory") == "syncd"
    assert one(unit, "Service", "ProtectSystem") == "strict"
    assert service["ReadWritePaths"]
    for name in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices"):
        assert one(unit, "Service", name) == "yes", name
    assert "@system-service" in service["SystemCallFilter"]
    assert seconds(one(unit, "Service", "WatchdogSec")) > 0
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_stop_timeout_leaves_room_beyond_the_grace():
    unit = parse_unit(DEPLOY / "syncd.service")
    assert seconds(one(unit, "Service", "TimeoutStopSec")) > ServeConfig().grace_s + 5


@pytest.mark.parametrize("service", SERVICES)
def test_token_comes_in_as_the_credential_syncd_reads(service):
    unit = parse_unit(DEPLOY / service)
    name, _, source = one(unit, "Service", "LoadCredential").partition(":")
    assert (name, source) == (TOKEN_CREDENTIAL, "/etc/syncd/token")
    assert not any("TOKEN" in value for value in unit["Service"].get("Environment", []))


def test_backfill_timer_is_persistent_and_randomized():
    timer = parse_unit(DEPLOY / "syncd-backfill.timer")
    assert one(timer, "Timer", "Persistent") == "true"
    assert seconds(one(timer, "Timer", "RandomizedDelaySec")) > 0
    assert one(timer, "Install", "WantedBy") == "timers.target"
    service = parse_unit(DEPLOY / "syncd-backfill.service")
    assert one(service, "Service", "Type") == "oneshot"
    assert one(service, "Service", "ExecStart").split()[:2] == [EXEC, "backfill"]


# --- crontab.example ------------------------------------------------------------------------


def crontab_entries() -> list[tuple[str, list[str]]]:
    entries = []
    for line in (DEPLOY / "crontab.example").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        fields = line.split()
        entries.append((" ".join(fields[:5]), fields[5:]))
    return entries


def test_crontab_example_runs_sync_verify_and_backfill_on_valid_schedules():
    entries = crontab_entries()
    assert [command[:2] for _, command in entries] == [
        [EXEC, "sync"],
        [EXEC, "verify"],
        [EXEC, "backfill"],
    ]
    for expression, _ in entries:
        cron_trigger(expression)  # raises on anything cron would not read


# --- alerts.yml -----------------------------------------------------------------------------


def exported_metric_names() -> set[str]:
    """Every series name syncd's registry exposes (counters with their _total)."""
    metrics = Metrics()
    metrics.record_api_request(200)
    return {
        sample.name
        for family in metrics.registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def alert_rules() -> list[dict]:
    document = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules
    return rules


def test_every_alert_rule_names_only_real_syncd_metrics():
    real = exported_metric_names()
    for rule in alert_rules():
        named = set(re.findall(r"\bsyncd_[a-z_]+", rule["expr"]))
        assert named, f"{rule['alert']} names no syncd metric"
        assert named <= real, f"{rule['alert']}: unknown {sorted(named - real)}"


def test_alert_rules_are_complete_prometheus_rules():
    for rule in alert_rules():
        assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"])
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert rule["annotations"]["summary"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["expr"].count("(") == rule["expr"].count(")")
        assert rule["expr"].count("{") == rule["expr"].count("}")


def test_alerts_cover_overdue_jobs_and_rising_failures():
    expressions = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    assert "syncd_job_deadline_timestamp_seconds" in expressions["SyncdJobOverdue"]
    assert "time()" in expressions["SyncdJobOverdue"]
    assert 'outcome="failure"' in expressions["SyncdJobFailing"]
    assert "increase(syncd_licenses_failed_total" in expressions["SyncdLicenseFailuresRising"]
