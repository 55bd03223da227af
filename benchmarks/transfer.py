"""Throughput of ``syncd sync`` next to aria2c, rclone and a plain requests client, all
fetching the same files from nginx on loopback at the same concurrency, in one run.

The simulator (in a thread of this process) answers the license list and the redownload
requests; nginx serves the bytes. Every timing ends with ``os.sync()``, so all tools pay for
durability (syncd fsyncs each file itself; the others leave it to that final sync). The order
of the tools rotates each round. See benchmarks/README.md.

    .venv/bin/python benchmarks/transfer.py [--runs 3] [--small N] [--medium N]
        [--big-mib N] [--concurrency 4] [--quick] [--workdir DIR] [--tools syncd,aria2c,...]
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MIB = 1 << 20
MB = 1_000_000
TOKEN = "bench-token"
STREAM = "videos"
TOOLS = ("syncd", "aria2c", "rclone", "plain")
TOOL_LABELS = {"syncd": "syncd", "aria2c": "aria2c", "rclone": "rclone", "plain": "plain client"}
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")


class BenchError(Exception):
    """A problem that ends the benchmark with a clear message (exit 2)."""


# --- child processes: all started here, all ended here ----------------------------------------

_children: dict[int, subprocess.Popen] = {}
_children_lock = threading.Lock()


def _spawn(cmd: list[str], **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
    with _children_lock:
        _children[proc.pid] = proc
    return proc


def _forget(proc: subprocess.Popen) -> None:
    with _children_lock:
        _children.pop(proc.pid, None)


def _kill_children() -> None:
    """Ends every child still running (each its own process group, by its id)."""
    with _children_lock:
        procs = list(_children.values())
        _children.clear()
    for proc in procs:
        if proc.returncode is not None:
            continue
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)
        except ChildProcessError:
            pass


atexit.register(_kill_children)


def _on_sigterm(signum, _frame):
    raise SystemExit(128 + signum)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without proxies (nothing may leave loopback) or SYNCD_* settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in PROXY_VARS
        and not k.startswith("SYNCD_")
        and k not in ("SHUTTERSTOCK_API_TOKEN", "RCLONE_CONFIG")
    }
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


@dataclass
class Timed:
    seconds: float
    returncode: int
    maxrss_kib: int  # the child's own peak RSS (VmHWM, polled)
    timed_out: bool = False
    cpu_s: float = 0.0  # the child's own user + system CPU seconds
    ru_maxrss_kib: int = 0  # wait4's figure: at least this process's RSS at fork, see below


def vm_hwm_kib(pid: int) -> int | None:
    """A running process's peak RSS so far (VmHWM); None once it has exited."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakRss:
    """Polls a child's VmHWM every `interval` s until stopped. wait4's ru_maxrss cannot be used
    alone: a forked child starts with this process's pages mapped, and exec keeps that high
    water mark, so ru_maxrss is never below this (large) process's RSS at the fork. VmHWM
    belongs to the exec'd image only; what grows in its last `interval` s is missed."""

    def __init__(self, pid: int, interval: float = 0.01):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            value = vm_hwm_kib(self.pid)
            if value is not None:
                self.peak = max(self.peak, value)
            if self._stop.wait(self.interval):
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_timed(
    cmd: list[str],
    *,
    timeout: float,
    log_prefix: Path,
    env: dict[str, str],
    cwd: Path | None = None,
) -> Timed:
    """Runs `cmd` to its end and then `os.sync()`, timed together; the child's own peak RSS
    is its VmHWM, polled (see PeakRss). The caller has synced before. stdout/stderr go to
    log_prefix.out/.err."""
    with open(f"{log_prefix}.out", "wb") as out, open(f"{log_prefix}.err", "wb") as err:
        started = time.perf_counter()
        proc = _spawn(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        peak = PeakRss(proc.pid)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            peak_kib = peak.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        _forget(proc)
        os.sync()
        seconds = time.perf_counter() - started
    return Timed(
        seconds,
        proc.returncode,
        peak_kib or usage.ru_maxrss,
        timed_out.is_set(),
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss,
    )


def tail(path: Path | str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# --- the dataset ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    small: int
    small_mib: float
    medium: int
    medium_mib: float
    big_mib: int
    seed: int

    @property
    def count(self) -> int:
        return self.small + self.medium + (1 if self.big_mib else 0)

    def name(self) -> str:
        return (
            f"seed{self.seed}-{self.small}x{self.small_mib:g}M-{self.medium}x"
            f"{self.medium_mib:g}M-{self.big_mib}M"
        )

    def sizes(self) -> list[int]:
        """Byte sizes by generation index (oldest license first). syncd fetches newest first,
        so the big file goes first and the medium files are spread evenly among the small."""
        rest = self.small + self.medium
        in_fetch_order = []
        for j in range(rest):
            medium = (j + 1) * self.medium // max(rest, 1) > j * self.medium // max(rest, 1)
            in_fetch_order.append(int((self.medium_mib if medium else self.small_mib) * MIB))
        if self.big_mib:
            in_fetch_order.insert(0, self.big_mib * MIB)
        return list(reversed(in_fetch_order))


@dataclass(frozen=True)
class FileEntry:
    rel: str  # path below the data dir and in every URL
    size: int


def build_catalog(spec: Spec):
    from syncd.simulator import Catalog

    sizes = spec.sizes()
    catalog = Catalog.generate(
        spec.seed,
        counts={STREAM: spec.count},
        sizes=lambda _stream, index: sizes[index],
        twin_ratio=0,
        not_downloadable_ratio=0,
    )
    return catalog


def dataset_files(catalog) -> list[FileEntry]:
    """The files, in the order syncd fetches them (newest license first)."""
    from syncd.simulator.downloads import published_path

    files, seen = [], set()
    for lic in catalog.history(STREAM):
        key = lic.file
        if key in seen or lic.is_downloadable is False:
            continue
        seen.add(key)
        files.append(FileEntry(published_path(key), catalog.file_size(key)))
    return files


def prune_data_dir(data_dir: Path, files: list[FileEntry]) -> None:
    """Removes files the catalog does not hold (left by an interrupted generation)."""
    wanted = {data_dir / f.rel for f in files}
    if not data_dir.is_dir():
        return
    for path in data_dir.rglob("*"):
        if path.is_file() and path not in wanted:
            path.unlink()


def check_data_dir(data_dir: Path, files: list[FileEntry]) -> None:
    for f in files:
        path = data_dir / f.rel
        if not path.is_file() or path.stat().st_size != f.size:
            raise BenchError(f"dataset file {path} missing or of the wrong size")


def warm_page_cache(data_dir: Path, files: list[FileEntry]) -> None:
    """Reads every source file once, so no tool is the one that pulls them from disk."""
    buffer = bytearray(8 * MIB)
    for f in files:
        with open(data_dir / f.rel, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass


# --- nginx ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 2;
{user}pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 512;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 300s;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{
        video/quicktime mov;
        image/jpeg jpg;
        audio/mpeg mp3;
    }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        location / {{
            autoindex on;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, binary: str, prefix: Path, root: Path):
        self.binary = binary
        self.prefix = prefix
        self.root = root
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        self.prefix.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _ in range(5):
            self.port = free_port()
            conf = self.prefix / "nginx.conf"
            conf.write_text(
                NGINX_CONF.format(
                    user="user root;\n" if os.geteuid() == 0 else "",
                    prefix=self.prefix,
                    port=self.port,
                    root=self.root,
                )
            )
            err = open(self.prefix / "stderr.log", "wb")
            self.proc = _spawn(
                [
                    self.binary,
                    "-p",
                    str(self.prefix),
                    "-c",
                    str(conf),
                    "-e",
                    str(self.prefix / "error.log"),
                ],
                stdout=err,
                stderr=err,
            )
            err.close()
            if self._wait_listening(10.0):
                return self
            last_error = tail(self.prefix / "error.log") or tail(self.prefix / "stderr.log")
            self.stop()
        raise BenchError(f"nginx did not start:\n{last_error}")

    def _wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()  # the master's fast shutdown also ends its workers
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        _forget(proc)


# --- the tools --------------------------------------------------------------------------------


@dataclass
class Context:
    python: str
    syncd_cmd: list[str]
    sim_url: str
    nginx_url: str
    files: list[FileEntry]
    total_bytes: int
    concurrency: int
    timeout: float
    scratch: Path
    aria2_list: Path
    rclone_list: Path
    plain_list: Path


@dataclass
class Outcome:
    tool: str
    round: int
    seconds: float
    mb_per_s: float
    peak_rss_mb: float
    extra: dict = field(default_factory=dict)
    cpu_s: float = 0.0


def verify_tree(root: Path, files: list[FileEntry]) -> None:
    """Every file at its path with its size (not timed)."""
    problems = []
    for f in files:
        path = root / f.rel
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            problems.append(f"missing {f.rel}")
            continue
        if size != f.size:
            problems.append(f"{f.rel}: {size} bytes, not {f.size}")
    if problems:
        raise BenchError(f"{len(problems)} files wrong under {root}: " + "; ".join(problems[:5]))


def run_tool(tool: str, ctx: Context, round_no: int) -> Outcome:
    dest = ctx.scratch / f"dest-{tool}"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir()
    os.sync()
    logs = ctx.scratch / "logs"
    logs.mkdir(exist_ok=True)
    prefix = logs / f"r{round_no}-{tool}"
    env = clean_env()
    extra: dict = {}
    if tool == "syncd":
        env.update(
            {
                "SYNCD_API__BASE_URL": ctx.sim_url,
                "SHUTTERSTOCK_API_TOKEN": TOKEN,
                "SYNCD_DATABASE__URL": f"sqlite:///{dest}/syncd.db",
                "SYNCD_STORAGE__PATH": f"{dest}/dam",
                "SYNCD_SYNC__CONCURRENCY": str(ctx.concurrency),
                "SYNCD_UPDATES__ENABLED": "false",
            }
        )
        cmd = [part.replace("{round}", str(round_no)) for part in ctx.syncd_cmd] + [
            "--log-format",
            "json",
            "sync",
            "--json",
            "--no-progress",
            "--media",
            STREAM,
        ]
        timed = run_timed(cmd, timeout=ctx.timeout, log_prefix=prefix, env=env, cwd=dest)
        check_exit(tool, timed, prefix)
        summary = last_json_line(Path(f"{prefix}.out"))
        if (
            summary.get("downloaded") != len(ctx.files)
            or summary.get("failed")
            or summary.get("bytes_downloaded") != ctx.total_bytes
        ):
            raise BenchError(f"syncd did not fetch every file: {summary}\n{tail(f'{prefix}.err')}")
        verify_tree(dest / "dam", ctx.files)
        extra = {
            "api_requests": summary.get("api_requests"),
            "syncd_duration_s": summary.get("duration_s"),
        }
    elif tool == "aria2c":
        cmd = [
            "aria2c",
            "-i",
            str(ctx.aria2_list),
            "-d",
            str(dest),
            f"-j{ctx.concurrency}",
            "-x1",
            "-s1",
            "--no-conf=true",
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            "--file-allocation=none",
            "--console-log-level=warn",
            "--summary-interval=0",
            "--download-result=hide",
        ]
        timed = run_timed(cmd, timeout=ctx.timeout, log_prefix=prefix, env=env)
        check_exit(tool, timed, prefix)
        verify_tree(dest, ctx.files)
    elif tool == "rclone":
        cmd = [
            "rclone",
            "copy",
            ":http:",
            str(dest),
            "--http-url",
            ctx.nginx_url + "/",
            "--files-from-raw",
            str(ctx.rclone_list),
            "--transfers",
            str(ctx.concurrency),
            "--checkers",
            "8",
            "--config",
            "/dev/null",
            "--log-level",
            "ERROR",
        ]
        timed = run_timed(cmd, timeout=ctx.timeout, log_prefix=prefix, env=env)
        check_exit(tool, timed, prefix)
        verify_tree(dest, ctx.files)
    elif tool == "plain":
        cmd = [
            ctx.python,
            str(HERE / "plain_client.py"),
            str(ctx.plain_list),
            str(dest),
            "--concurrency",
            str(ctx.concurrency),
        ]
        timed = run_timed(cmd, timeout=ctx.timeout, log_prefix=prefix, env=env)
        check_exit(tool, timed, prefix)
        verify_tree(dest, ctx.files)
    else:
        raise BenchError(f"unknown tool {tool}")
    shutil.rmtree(dest)  # not timed
    return Outcome(
        tool,
        round_no,
        timed.seconds,
        ctx.total_bytes / MB / timed.seconds,
        timed.maxrss_kib * 1024 / MB,
        extra,
        timed.cpu_s,
    )


def check_exit(tool: str, timed: Timed, prefix: Path) -> None:
    if timed.timed_out:
        raise BenchError(
            f"{tool} did not finish within {timed.seconds:.0f} s (killed); logs: {prefix}.*"
        )
    if timed.returncode != 0:
        raise BenchError(
            f"{tool} exited {timed.returncode}:\n{tail(f'{prefix}.err')}\n{tail(f'{prefix}.out')}"
        )


def last_json_line(path: Path) -> dict:
    for line in reversed(path.read_text(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"no JSON summary in {path}:\n{tail(path)}")


def curl_ceiling(ctx: Context, entry: FileEntry) -> float:
    """One curl of the biggest file into /dev/null: the loopback + nginx ceiling, MB/s."""
    url = f"{ctx.nginx_url}/{entry.rel}"
    started = time.perf_counter()
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=ctx.timeout,
        env=clean_env(),
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0 or int(float(done.stdout.strip() or 0)) != entry.size:
        raise BenchError(f"curl of {url} failed: {done.stderr.strip()} ({done.stdout!r} bytes)")
    return entry.size / MB / seconds


# --- reporting --------------------------------------------------------------------------------


def versions(nginx_binary: str, python: str, tools: list[str]) -> dict:
    def first_line(cmd):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    info = {"nginx": first_line([nginx_binary, "-v"]), "curl": first_line(["curl", "--version"])}
    if "aria2c" in tools:
        info["aria2c"] = first_line(["aria2c", "--version"])
    if "rclone" in tools:
        info["rclone"] = first_line(["rclone", "version"])
    info["python"] = platform.python_version()
    info["requests"] = first_line([python, "-c", "import requests; print(requests.__version__)"])
    info["syncd"] = first_line([python, "-c", "import syncd; print(syncd.__version__)"])
    info["git_commit"] = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return info


def machine() -> dict:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) * 1024 / 1e9, 1)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_gb": mem, "kernel": platform.release()}


def summarise(outcomes: list[Outcome], tools: list[str], ceilings: list[float]) -> dict:
    per_tool = {}
    for tool in tools:
        mine = sorted((o for o in outcomes if o.tool == tool), key=lambda o: o.round)
        if not mine:
            continue
        per_tool[tool] = {
            "median_mb_s": round(statistics.median(o.mb_per_s for o in mine), 1),
            "rounds_mb_s": [round(o.mb_per_s, 1) for o in mine],
            "rounds_s": [round(o.seconds, 3) for o in mine],
            "peak_rss_mb": round(max(o.peak_rss_mb for o in mine), 1),
            "median_cpu_s": round(statistics.median(o.cpu_s for o in mine), 2),
        }
        if tool == "syncd":
            per_tool[tool]["api_requests"] = [o.extra.get("api_requests") for o in mine]
            per_tool[tool]["syncd_duration_s"] = [o.extra.get("syncd_duration_s") for o in mine]
    result: dict = {"tools": per_tool}
    if "syncd" in per_tool:
        syncd = per_tool["syncd"]["median_mb_s"]
        ratios = {
            t: round(syncd / v["median_mb_s"], 2) for t, v in per_tool.items() if t != "syncd"
        }
        result["syncd_ratio"] = ratios
        others = {t: v["median_mb_s"] for t, v in per_tool.items() if t != "syncd"}
        if others:
            best = max(others, key=others.get)
            result["syncd_ratio_to_best"] = {"tool": best, "ratio": ratios[best]}
    if ceilings:
        result["curl_ceiling_mb_s"] = {
            "median": round(statistics.median(ceilings), 1),
            "rounds": [round(c, 1) for c in ceilings],
        }
    return result


def render(report: dict) -> str:
    ds = report["dataset"]
    res = report["results"]
    lines = [
        f"dataset: {ds['files']} files, {ds['total_mb']:.0f} MB ({ds['description']}); "
        f"concurrency {report['concurrency']}; {report['rounds']} round(s); MB = 10^6 bytes",
        "",
        f"{'tool':<14}{'median MB/s':>12}  {'rounds MB/s':<24}{'syncd ratio':>12}"
        f"{'peak RSS MB':>13}{'CPU s':>8}",
    ]
    for tool, row in res["tools"].items():
        ratio = (
            "-"
            if tool == "syncd"
            else f"{res['syncd_ratio'].get(tool, float('nan')):.2f}"
            if "syncd_ratio" in res
            else "-"
        )
        rounds = " / ".join(f"{v:.0f}" for v in row["rounds_mb_s"])
        lines.append(
            f"{TOOL_LABELS[tool]:<14}{row['median_mb_s']:>12.0f}  {rounds:<24}"
            f"{ratio:>12}{row['peak_rss_mb']:>13.0f}"
            f"{row.get('median_cpu_s', float('nan')):>8.1f}"
        )
    lines.append("")
    if "syncd_ratio_to_best" in res:
        best = res["syncd_ratio_to_best"]
        lines.append(
            f"syncd / best of the others ({TOOL_LABELS[best['tool']]}): {best['ratio']:.2f}"
        )
    if "curl_ceiling_mb_s" in res:
        c = res["curl_ceiling_mb_s"]
        lines.append(
            f"loopback ceiling (one curl of the {ds['ceiling_file_mib']} MiB file to "
            f"/dev/null): {c['median']:.0f} MB/s (rounds: "
            + " / ".join(f"{v:.0f}" for v in c["rounds"])
            + ")"
        )
    if "syncd" in res["tools"]:
        s = res["tools"]["syncd"]
        lines.append(
            f"syncd peak RSS: {s['peak_rss_mb']:.0f} MB (max over rounds); "
            f"API requests per run: {', '.join(str(n) for n in s['api_requests'])}"
        )
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="syncd's transfer rate next to aria2c, rclone and a plain requests client "
        "(files served by nginx on loopback)"
    )
    parser.add_argument("--runs", type=int, help="rounds (default 3; --quick: 1)")
    parser.add_argument("--small", type=int, help="files of --small-mib (default 300; quick: 40)")
    parser.add_argument("--small-mib", type=float, default=1.0)
    parser.add_argument("--medium", type=int, help="files of --medium-mib (default 40; quick: 4)")
    parser.add_argument("--medium-mib", type=float, default=25.0)
    parser.add_argument(
        "--big-mib",
        type=int,
        help="size of the one big file, MiB (default 1024; quick: 256; 0: none)",
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--quick", action="store_true", help="40 x 1 MiB + 4 x 25 MiB + 1 x 256 MiB, 1 round"
    )
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}"
    )
    parser.add_argument("--seed", type=int, default=2437)
    parser.add_argument(
        "--workdir",
        type=Path,
        help="datasets and scratch (default: $TMPDIR/syncd-bench); the "
        "dataset is kept there and reused",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds allowed per tool per round (default: from the dataset "
        "size at 10 MB/s, at least 300)",
    )
    parser.add_argument(
        "--no-save", action="store_true", help="do not write benchmarks/results/transfer-*.json"
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the scratch dir (tool logs) instead of deleting it",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run syncd under `py-spy record` (all threads, idle ones too) and write one "
        "flame graph per round into DIR; its figures are then not comparable",
    )
    args = parser.parse_args(argv)
    q = args.quick
    args.runs = args.runs if args.runs is not None else (1 if q else 3)
    args.small = args.small if args.small is not None else (40 if q else 300)
    args.medium = args.medium if args.medium is not None else (4 if q else 40)
    args.big_mib = args.big_mib if args.big_mib is not None else (256 if q else 1024)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in args.tools if t not in TOOLS]
    if unknown or not args.tools:
        parser.error(f"--tools: unknown {unknown}; choose from {', '.join(TOOLS)}")
    if min(args.runs, args.concurrency) < 1 or min(args.small, args.medium, args.big_mib) < 0:
        parser.error("--runs and --concurrency must be at least 1, counts at least 0")
    if args.small + args.medium + (1 if args.big_mib else 0) == 0:
        parser.error("the dataset is empty")
    return args


def find_tools(tools: list[str]) -> str:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    missing = [] if nginx else ["nginx (nginx-light)"]
    needed = {"curl": "curl"}
    needed.update({t: t for t in tools if t in ("aria2c", "rclone")})
    for name, binary in needed.items():
        if not shutil.which(binary):
            missing.append(name)
    if missing:
        raise BenchError(
            f"missing: {', '.join(missing)}; install them with `bash scripts/setup.sh --bench`"
        )
    return nginx


def syncd_command(python: str) -> list[str]:
    script = Path(python).with_name("syncd")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [python, "-m", "syncd"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args)
    except BenchError as exc:
        print(f"transfer.py: {exc}", file=sys.stderr)
        return 2
    finally:
        _kill_children()


def _run(args: argparse.Namespace) -> int:
    nginx_binary = find_tools(args.tools)
    python = sys.executable
    try:
        import syncd.simulator  # noqa: F401
    except ImportError:
        raise BenchError(
            "syncd is not importable: run with .venv/bin/python (after scripts/setup.sh)"
        ) from None
    from syncd.simulator import Simulator

    spec = Spec(args.small, args.small_mib, args.medium, args.medium_mib, args.big_mib, args.seed)
    workdir = (args.workdir or Path(tempfile.gettempdir()) / "syncd-bench").absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    data_dir = workdir / f"data-{spec.name()}"
    data_dir.mkdir(exist_ok=True)
    catalog = build_catalog(spec)
    files = dataset_files(catalog)
    total = sum(f.size for f in files)
    need_free = total * 2.2 + 512 * MIB  # the data set, one destination, slack
    free = shutil.disk_usage(workdir).free
    have = sum((data_dir / f.rel).stat().st_size for f in files if (data_dir / f.rel).is_file())
    if free + have < need_free:
        raise BenchError(
            f"{workdir}: {free / 1e9:.1f} GB free, about {need_free / 1e9:.1f} GB "
            "needed (the data set and one copy of it)"
        )
    timeout = args.timeout or max(300.0, total / (10 * MB))

    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    os.chmod(scratch, 0o755)
    nginx = Nginx(nginx_binary, scratch / "nginx", data_dir)
    simulator = None
    try:
        nginx.start()
        print(f"nginx on {nginx.base_url}, serving {data_dir}", flush=True)
        prune_data_dir(data_dir, files)
        started = time.monotonic()
        print(
            f"writing the data set ({len(files)} files, {total / MB:.0f} MB; files already "
            "there are reused) ...",
            flush=True,
        )
        simulator = Simulator(
            catalog, token=TOKEN, host="127.0.0.1", download_base=nginx.base_url, files_dir=data_dir
        ).start()
        check_data_dir(data_dir, files)
        print(
            f"  ready in {time.monotonic() - started:.1f} s; simulator on {simulator.base_url}",
            flush=True,
        )
        warm_page_cache(data_dir, files)

        (scratch / "lists").mkdir()
        aria2_list = scratch / "lists" / "aria2.txt"
        aria2_list.write_text("".join(f"{nginx.base_url}/{f.rel}\n  out={f.rel}\n" for f in files))
        rclone_list = scratch / "lists" / "rclone.txt"
        rclone_list.write_text("".join(f"{f.rel}\n" for f in files))
        plain_list = scratch / "lists" / "plain.txt"
        plain_list.write_text("".join(f"{nginx.base_url}/{f.rel}\t{f.rel}\n" for f in files))
        syncd_cmd = syncd_command(python)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            flags = os.environ.get("PROFILE_FLAGS", "--idle").split()  # --gil: on-CPU only
            beside = Path(python).with_name("py-spy")  # the bench extra, in the virtualenv
            pyspy = str(beside) if beside.is_file() else "py-spy"
            out = str(args.profile.absolute() / "syncd-{round}.txt")
            syncd_cmd = [
                *(pyspy, "record", *flags, "--threads", "--rate", "250", "--format", "raw"),
                *("-o", out, "--", *syncd_cmd),
            ]
        ctx = Context(
            python,
            syncd_cmd,
            simulator.base_url,
            nginx.base_url,
            files,
            total,
            args.concurrency,
            timeout,
            scratch,
            aria2_list,
            rclone_list,
            plain_list,
        )

        biggest = max(files, key=lambda f: f.size)
        outcomes: list[Outcome] = []
        ceilings: list[float] = []
        tools = list(args.tools)
        for round_no in range(args.runs):
            order = tools[round_no % len(tools) :] + tools[: round_no % len(tools)]
            ceilings.append(curl_ceiling(ctx, biggest))
            print(
                f"round {round_no + 1}/{args.runs}: curl ceiling {ceilings[-1]:.0f} MB/s",
                flush=True,
            )
            for tool in order:
                outcome = run_tool(tool, ctx, round_no)
                outcomes.append(outcome)
                note = f", {outcome.extra['api_requests']} API requests" if tool == "syncd" else ""
                print(
                    f"  {TOOL_LABELS[tool]:<13} {outcome.seconds:7.2f} s "
                    f"{outcome.mb_per_s:7.0f} MB/s  peak RSS {outcome.peak_rss_mb:.0f} MB"
                    f"{note}",
                    flush=True,
                )
    finally:
        if simulator is not None:
            simulator.stop()
        nginx.stop()
        if args.keep_logs:
            print(f"logs kept in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    description = ", ".join(
        part
        for part in (
            f"{spec.small} x {spec.small_mib:g} MiB" if spec.small else "",
            f"{spec.medium} x {spec.medium_mib:g} MiB" if spec.medium else "",
            f"1 x {spec.big_mib} MiB" if spec.big_mib else "",
        )
        if part
    )
    report = {
        "benchmark": "transfer",
        "utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "quick" if args.quick else "full",
        "dataset": {
            "files": len(files),
            "total_bytes": total,
            "total_mb": total / MB,
            "description": description,
            "seed": spec.seed,
            "ceiling_file_mib": round(biggest.size / MIB),
        },
        "concurrency": args.concurrency,
        "rounds": args.runs,
        "round_orders": [
            tools[r % len(tools) :] + tools[: r % len(tools)] for r in range(args.runs)
        ],
        "results": summarise(outcomes, tools, ceilings),
        "machine": machine(),
        "versions": versions(nginx_binary, python, tools),
    }
    print()
    print(render(report))
    if not args.no_save:
        out_dir = HERE / "results"
        out_dir.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out_dir / f"transfer-{stamp}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
