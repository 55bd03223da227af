"""Latency-bound: `syncd sync` against a slow API, next to the guide's plain recipe and to the
ideal this server allows (issue 17).

The simulator runs in a thread of this process on 127.0.0.1 with 1000 video licenses of 1 MiB
(all downloadable, no twins), every API answer 150 ms late and every download's first byte
80 ms late. Each round runs, in a rotating order: ``syncd sync --json --no-progress`` (a real
subprocess of this tree's syncd, default configuration but the token, base URL, database and
storage path) into an empty folder with a fresh database; ``plain_recipe.py`` (requests + 4
threads: list pages, redownload POST, streaming GET) into an empty folder; and two runs of
``plain_client.py`` (requests + 4 threads, streaming GET, no API requests) from URL lists
asked for before the rounds: the bandwidth probe, from a second simulator with no latency and
no delay (what this server moves on this machine at concurrency 4), and "URLs in hand", from a
third one whose downloads start 80 ms late but whose API is fast (a client whose look-ahead
is perfect: every URL there before its transfer slot frees).

The latency no client can hide at concurrency c: the first list page's answer and the first
redownload answer (nothing is known before them), and one download start delay per file per
slot (a transfer slot waits for its first byte; hiding that too takes more than c downloads
open at once). So, N files of B bytes in all, API latency L, download delay D:

    ideal = B / bandwidth + ceil(N / c) * D + 2 * L    (bandwidth: the probe's B / seconds)

and, measured instead of modelled, ``in-hand ideal = URLs-in-hand seconds + 2 * L``. The
target is checked against the lower (stricter) of the two.

See benchmarks/README.md.

    .venv/bin/python benchmarks/latency_bound.py [--rounds 3] [--count 1000] [--file-mib 1]
        [--api-latency-ms 150] [--download-delay-ms 80] [--keep-logs] [--no-save]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (str(HERE), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import transfer  # noqa: E402  (benchmarks/transfer.py)
from transfer import (  # noqa: E402
    MB,
    MIB,
    STREAM,
    TOKEN,
    BenchError,
    FileEntry,
    check_exit,
    clean_env,
    dataset_files,
    last_json_line,
    machine,
    run_timed,
    syncd_command,
    tail,
    verify_tree,
)

TOOLS = ("syncd", "plain", "probe", "inhand")
LABELS = {
    "syncd": "syncd",
    "plain": "plain recipe",
    "probe": "bandwidth probe",
    "inhand": "URLs in hand",
}
PROBES = ("probe", "inhand")  # plain_client.py, from URL lists asked for before the rounds
PER_PAGE = 200  # syncd's and the recipe's page size
TARGET_RATIO = 1.25  # syncd's wall time over the ideal, at most
TARGET_SPEEDUP = 2.0  # the plain recipe's wall time over syncd's, at least


def requests_by_kind(sim: Any, since: int) -> dict[str, int]:
    """The API requests from the ``since``-th on, by kind (tests/conftest.py's count)."""
    from tests.conftest import requests_by_kind as counted

    return dict(sorted(counted(sim, since).items()))


def probe_list(sim: Any, catalog: Any, files: list[FileEntry], path: Path) -> None:
    """The download URL of every file, from `sim` (no latency), as plain_client.py reads them."""
    import requests

    from syncd.simulator.downloads import published_path

    by_rel = {}
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        http.trust_env = False
        for lic in catalog.history(STREAM):
            answer = http.post(
                f"{sim.base_url}/v2/{STREAM}/licenses/{lic.id}/downloads",
                json={"size": lic.size},
                timeout=30,
            )
            answer.raise_for_status()
            by_rel[published_path(lic.file)] = answer.json()["url"]
    path.write_text("".join(f"{by_rel[f.rel]}\t{f.rel}\n" for f in files))


def run_tool(tool: str, ctx: dict[str, Any], round_no: int) -> dict[str, Any]:
    dest: Path = ctx["scratch"] / f"dest-{tool}"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir()
    os.sync()
    logs: Path = ctx["scratch"] / "logs"
    logs.mkdir(exist_ok=True)
    prefix = logs / f"r{round_no}-{tool}"
    files: list[FileEntry] = ctx["files"]
    sim = ctx["sim"]
    since = len(sim.api_requests())
    extra: dict[str, Any] = {}
    if tool == "syncd":
        env = clean_env(
            {
                "SYNCD_API__BASE_URL": sim.base_url,
                "SHUTTERSTOCK_API_TOKEN": TOKEN,
                "SYNCD_DATABASE__URL": f"sqlite:///{dest}/syncd.db",
                "SYNCD_STORAGE__PATH": f"{dest}/dam",
                # this tree's syncd, not the one the virtualenv's editable install points at
                "PYTHONPATH": str(REPO),
            }
        )
        cmd = [*ctx["syncd_cmd"], "--log-format", "json", "sync", "--json", "--no-progress"]
        timed = run_timed(cmd, timeout=ctx["timeout"], log_prefix=prefix, env=env, cwd=dest)
        check_exit(tool, timed, prefix)
        summary = last_json_line(Path(f"{prefix}.out"))
        if summary.get("downloaded") != len(files) or summary.get("failed"):
            raise BenchError(f"syncd did not fetch every file: {summary}\n{tail(f'{prefix}.err')}")
        verify_tree(dest / "dam", files)
        extra = {"syncd_duration_s": summary.get("duration_s")}
    elif tool == "plain":
        env = clean_env({"SHUTTERSTOCK_API_TOKEN": TOKEN})
        cmd = [
            ctx["python"],
            str(HERE / "plain_recipe.py"),
            sim.base_url,
            str(dest),
            "--media",
            STREAM,
            "--concurrency",
            str(ctx["concurrency"]),
        ]
        timed = run_timed(cmd, timeout=ctx["timeout"], log_prefix=prefix, env=env, cwd=dest)
        check_exit(tool, timed, prefix)
        verify_tree(dest, files)
    elif tool in PROBES:
        cmd = [
            ctx["python"],
            str(HERE / "plain_client.py"),
            str(ctx["lists"][tool]),
            str(dest),
            "--concurrency",
            str(ctx["concurrency"]),
        ]
        timed = run_timed(cmd, timeout=ctx["timeout"], log_prefix=prefix, env=clean_env(), cwd=dest)
        check_exit(tool, timed, prefix)
        verify_tree(dest, files)
    else:
        raise BenchError(f"unknown tool {tool}")
    shutil.rmtree(dest)  # not timed
    if tool not in PROBES:
        extra["api_requests"] = requests_by_kind(sim, since)
    return {
        "tool": tool,
        "round": round_no,
        "seconds": round(timed.seconds, 3),
        "cpu_s": round(timed.cpu_s, 2),
        "peak_rss_mb": round(timed.maxrss_kib * 1024 / MB, 1),
        **extra,
    }


def summarise(runs: list[dict[str, Any]], tools: list[str], ctx: dict[str, Any]) -> dict:
    total = ctx["total_bytes"]
    per_tool: dict[str, Any] = {}
    for tool in tools:
        mine = [r for r in runs if r["tool"] == tool]
        per_tool[tool] = {
            "median_s": round(statistics.median(r["seconds"] for r in mine), 3),
            "rounds_s": [r["seconds"] for r in mine],
            "median_cpu_s": round(statistics.median(r["cpu_s"] for r in mine), 2),
        }
        if tool not in PROBES:
            per_tool[tool]["api_requests"] = mine[-1]["api_requests"]
    result: dict[str, Any] = {"tools": per_tool}
    api_s = 2 * ctx["api_latency_s"]  # the first list page's answer, the first redownload's
    ideals: list[float] = []
    if "probe" in per_tool:
        bandwidth = total / per_tool["probe"]["median_s"]  # bytes per second
        per_slot = math.ceil(ctx["count"] / ctx["concurrency"])  # files one slot fetches
        delays = per_slot * ctx["download_delay_s"]
        ideal = total / bandwidth + delays + api_s
        ideals.append(ideal)
        result["bandwidth_mb_s"] = round(bandwidth / MB, 1)
        result["ideal_model_s"] = round(ideal, 3)
        result["ideal_parts_s"] = {
            "bytes_over_bandwidth": round(total / bandwidth, 3),
            "download_delays": round(delays, 3),
            "first_list_page_and_redownload": round(api_s, 3),
        }
    if "inhand" in per_tool:
        ideals.append(per_tool["inhand"]["median_s"] + api_s)
        result["ideal_in_hand_s"] = round(ideals[-1], 3)
        # the delay really applies: no round of the in-hand probe beat one delay per file per slot
        floor = math.ceil(ctx["count"] / ctx["concurrency"]) * ctx["download_delay_s"]
        result["download_delay_applied"] = min(per_tool["inhand"]["rounds_s"]) >= floor
    if ideals:
        ideal = min(ideals)
        result["ideal_s"] = round(ideal, 3)
        for tool in ("syncd", "plain"):
            if tool in per_tool:
                per_tool[tool]["ratio_to_ideal"] = round(per_tool[tool]["median_s"] / ideal, 3)
    if "syncd" in per_tool and "plain" in per_tool:
        result["syncd_speedup_over_plain"] = round(
            per_tool["plain"]["median_s"] / per_tool["syncd"]["median_s"], 2
        )
    syncd = per_tool.get("syncd", {})
    result["targets"] = {
        "syncd_within_1.25x_of_ideal": None
        if "ratio_to_ideal" not in syncd
        else syncd["ratio_to_ideal"] <= TARGET_RATIO,
        "syncd_2x_faster_than_plain": None
        if "syncd_speedup_over_plain" not in result
        else result["syncd_speedup_over_plain"] >= TARGET_SPEEDUP,
    }
    return result


def render(report: dict[str, Any]) -> str:
    p, res = report["parameters"], report["results"]
    lines = [
        f"{p['count']} x {p['file_mib']:g} MiB {STREAM}, API latency {p['api_latency_ms']} ms, "
        f"download delay {p['download_delay_ms']} ms, concurrency {p['concurrency']}, "
        f"{p['rounds']} rounds",
        "",
        f"{'tool':<16}{'median s':>10}{'x ideal':>9}  rounds s; API requests",
    ]
    for tool, row in res["tools"].items():
        ratio = f"{row['ratio_to_ideal']:.2f}" if "ratio_to_ideal" in row else "-"
        rounds = ", ".join(f"{s:.2f}" for s in row["rounds_s"])
        api = row.get("api_requests")
        api_text = "" if api is None else "; " + ", ".join(f"{k} {v}" for k, v in api.items())
        lines.append(f"{LABELS[tool]:<16}{row['median_s']:>10.2f}{ratio:>9}  {rounds}{api_text}")
    if "ideal_model_s" in res:
        parts = res["ideal_parts_s"]
        lines += [
            "",
            f"bandwidth {res['bandwidth_mb_s']} MB/s (probe median); model ideal "
            f"{res['ideal_model_s']:.2f} s = {parts['bytes_over_bandwidth']:.2f} bytes/bandwidth"
            f" + {parts['download_delays']:.2f} download delays (one per file per slot) + "
            f"{parts['first_list_page_and_redownload']:.2f} first list page and redownload",
        ]
    if "ideal_in_hand_s" in res:
        lines.append(
            f"in-hand ideal {res['ideal_in_hand_s']:.2f} s = URLs in hand + first list page and "
            "redownload"
        )
    if "ideal_s" in res:
        lines.append(f"ideal (the lower): {res['ideal_s']:.2f} s")
    if "download_delay_applied" in res:
        lines.append(
            f"download delay applied (in hand >= one per file per slot): "
            f"{res['download_delay_applied']}"
        )
    if "syncd_speedup_over_plain" in res:
        lines.append(f"syncd speed-up over the plain recipe: {res['syncd_speedup_over_plain']}x")
    targets = res["targets"]
    lines.append(
        f"targets: within {TARGET_RATIO}x of ideal: {targets['syncd_within_1.25x_of_ideal']}; "
        f"{TARGET_SPEEDUP:g}x faster than plain: {targets['syncd_2x_faster_than_plain']}"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="syncd behind a slow API, next to the plain recipe and the ideal"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--count", type=int, default=1000, help="licenses / files (1000)")
    parser.add_argument("--file-mib", type=float, default=1.0, help="size of each file (1)")
    parser.add_argument("--api-latency-ms", type=int, default=150, help="per API answer (150)")
    parser.add_argument(
        "--download-delay-ms", type=int, default=80, help="before a download's first byte (80)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="the recipe's and probe's threads (4)"
    )
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help="a subset of syncd,plain,probe,inhand"
    )
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--timeout", type=float, default=900, help="per tool per round (900 s)")
    parser.add_argument("--workdir", type=Path, help="scratch parent (default: $TMPDIR)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the scratch folder")
    parser.add_argument("--no-save", action="store_true", help="do not write results JSON")
    args = parser.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(args.tools) - set(TOOLS)
    if unknown or not args.tools:
        parser.error(f"--tools: unknown {sorted(unknown)} (choose from {', '.join(TOOLS)})")
    if args.rounds < 1 or args.count < 1 or args.file_mib <= 0 or args.concurrency < 1:
        parser.error("--rounds, --count, --file-mib and --concurrency must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, transfer._on_sigterm)
    try:
        return _run(args)
    except BenchError as exc:
        print(f"latency_bound.py: {exc}", file=sys.stderr)
        return 2
    finally:
        transfer._kill_children()


def _run(args: argparse.Namespace) -> int:
    try:
        from syncd.simulator import Catalog, RandomFaults, Simulator
    except ImportError:
        raise BenchError("syncd is not importable: run with .venv/bin/python") from None

    size = int(args.file_mib * MIB)
    catalog = Catalog.generate(
        args.seed, counts={STREAM: args.count}, sizes=[size], twin_ratio=0, not_downloadable_ratio=0
    )
    files = dataset_files(catalog)
    total = sum(f.size for f in files)
    scratch = Path(tempfile.mkdtemp(prefix="syncd-latbound-", dir=args.workdir))
    faults = RandomFaults(
        seed=args.seed, latency_ms=args.api_latency_ms, download_delay_ms=args.download_delay_ms
    )
    slow = Simulator(catalog, token=TOKEN, host="127.0.0.1", random_faults=faults).start()
    fast = Simulator(catalog, token=TOKEN, host="127.0.0.1").start()
    delayed = Simulator(
        catalog,
        token=TOKEN,
        host="127.0.0.1",
        random_faults=RandomFaults(seed=args.seed, download_delay_ms=args.download_delay_ms),
    ).start()
    servers = {"probe": fast, "inhand": delayed}
    keep = args.keep_logs
    runs: list[dict[str, Any]] = []
    ctx: dict[str, Any] = {
        "python": sys.executable,
        "syncd_cmd": syncd_command(sys.executable),
        "sim": slow,
        "files": files,
        "count": args.count,
        "total_bytes": total,
        "concurrency": args.concurrency,
        "timeout": args.timeout,
        "scratch": scratch,
        "lists": {tool: scratch / f"{tool}-urls.txt" for tool in PROBES},
        "api_latency_s": args.api_latency_ms / 1000,
        "download_delay_s": args.download_delay_ms / 1000,
    }
    try:
        print(
            f"slow simulator {slow.base_url} ({args.api_latency_ms} ms API, "
            f"{args.download_delay_ms} ms download delay), probe simulator {fast.base_url}, "
            f"in-hand simulator {delayed.base_url}; "
            f"{len(files)} files, {total / MB:.0f} MB; scratch {scratch}",
            flush=True,
        )
        for tool in PROBES:
            if tool in args.tools:
                probe_list(servers[tool], catalog, files, ctx["lists"][tool])
        for round_no in range(1, args.rounds + 1):
            shift = (round_no - 1) % len(args.tools)
            order = args.tools[shift:] + args.tools[:shift]
            for tool in order:
                if tool in PROBES:
                    ctx["sim"] = servers[tool]
                run = run_tool(tool, ctx, round_no)
                ctx["sim"] = slow
                runs.append(run)
                print(f"  round {round_no}: {LABELS[tool]:<16} {run['seconds']:7.2f} s", flush=True)
    except BaseException:
        keep = True
        raise
    finally:
        slow.stop()
        fast.stop()
        delayed.stop()
        if keep:
            print(f"scratch kept: {scratch}", flush=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    report = {
        "benchmark": "latency_bound",
        "utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["benchmarks/latency_bound.py", *sys.argv[1:]]),
        "parameters": {
            "count": args.count,
            "file_mib": args.file_mib,
            "total_bytes": total,
            "api_latency_ms": args.api_latency_ms,
            "download_delay_ms": args.download_delay_ms,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "tools": args.tools,
            "seed": args.seed,
            "syncd_configuration": "default (sync.media all five streams, sync.concurrency 4, "
            "sync.details on, updates.enabled on) but token, base URL, database, storage path",
        },
        "results": summarise(runs, args.tools, ctx),
        "runs": runs,
        "machine": machine(),
        "syncd_git": git_commit(),
    }
    print()
    print(render(report))
    if not args.no_save:
        out_dir = HERE / "results"
        out_dir.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out_dir / f"latency-bound-{stamp}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults: {path.relative_to(REPO)}")
    return 0


def git_commit() -> dict[str, Any]:
    import subprocess

    def out(*cmd: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *cmd], capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": out("rev-parse", "--short", "HEAD"),
        "dirty": bool(out("status", "--porcelain", "--untracked-files=no")),
    }


if __name__ == "__main__":
    sys.exit(main())
