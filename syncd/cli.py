"""How operators drive syncd: one console script, commands as in CONTRACT section 1."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import replace

from syncd import __version__, logs
from syncd.config import MEDIA_TYPES, Config, load
from syncd.errors import ConfigError, SyncdError
from syncd.logs import structlog


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="TOML file (else $SYNCD_CONFIG, else ./config/syncd.toml)",
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "console"),
        default=default,
        help="log lines on stderr (default: console on a terminal, else JSON)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="debug logging (and info lines while a progress display shows)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="warnings and errors only",
    )
    parser.add_argument(
        "--log-level",
        choices=tuple(logs.LEVELS),
        default=default,
        help="log at this level and above (overrides -v and -q; default info, warning while "
        "a progress display shows)",
    )


def _media_list(text: str) -> tuple[str, ...]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in MEDIA_TYPES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown media type {unknown[0]!r} (known: {', '.join(MEDIA_TYPES)})"
        )
    if not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(MEDIA_TYPES)}"
        )
    return tuple(name for name in MEDIA_TYPES if name in names)


def _bwlimit_arg(text: str) -> int:
    """``--bwlimit``: bytes per second (``20MB``, ``500KiB``), or 0 for ``off``."""
    from syncd.config import parse_bwlimit

    try:
        return parse_bwlimit(text) or 0
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _stats_arg(text: str) -> float:
    """``--stats``: a duration (``30s``, ``5m``), or 0 for ``off``."""
    from syncd.config import parse_duration

    if text.strip().lower() in ("off", "0"):
        return 0
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _progress_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress display on a terminal"
    )
    parser.add_argument(
        "--stats",
        type=_stats_arg,
        default=0,
        metavar="DURATION",
        help="off a terminal (or with --no-progress): log a progress event every DURATION, "
        "e.g. 30s or 5m (default off)",
    )


def _metrics_file_arg(text: str) -> str:
    from pathlib import Path

    folder = Path(text).expanduser().absolute().parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: the folder {folder} does not exist")
    return text


def _metrics_file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-file",
        type=_metrics_file_arg,
        metavar="PATH",
        help="write the run's metrics (Prometheus text format) to PATH for the node "
        "exporter's textfile collector (written to a temporary name, then renamed)",
    )


def _moment_arg(text: str):
    """``--since``/``--until``: a date (midnight UTC) or an ISO 8601 date-time."""
    from syncd.config import parse_moment

    try:
        return parse_moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count_arg(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of runs")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd", description="Keeps a DAM in step with everything licensed from Shutterstock."
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, epilog: str = COMMON_EPILOG) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help,
            description=help,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _global_options(sub, suppress=True)
        SUBCOMMANDS[name] = sub
        return sub

    sync = command(
        "sync",
        "one-shot catch-up: page every stream to its watermark, fetch everything missing, exit",
        RUN_EPILOG,
    )
    sync.add_argument(
        "--media",
        type=_media_list,
        metavar="LIST",
        help="comma-separated media types (replaces sync.media for this run)",
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="page the API and print the plan; fetch, record and move nothing",
    )
    sync.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    sync.add_argument(
        "--bwlimit",
        type=_bwlimit_arg,
        metavar="RATE",
        help="bytes per second over all transfers, e.g. 20MB or off (replaces sync.bwlimit)",
    )
    _progress_options(sync)
    _metrics_file_option(sync)

    backfill = command(
        "backfill",
        "walk the license history (or [--since, --until)) whatever the watermark says, record "
        "what was never seen, fetch what is missing",
        BACKFILL_EPILOG,
    )
    backfill.add_argument(
        "--since",
        type=_moment_arg,
        metavar="DATE",
        help="licenses downloaded on or after DATE (YYYY-MM-DD, midnight UTC, or an ISO 8601 "
        "date-time); default: the beginning of the history",
    )
    backfill.add_argument(
        "--until",
        type=_moment_arg,
        metavar="DATE",
        help="licenses downloaded before DATE; default: the moment the walk began",
    )
    backfill.add_argument(
        "--media",
        type=_media_list,
        metavar="LIST",
        help="comma-separated media types (replaces sync.media for this run)",
    )
    backfill.add_argument(
        "--dry-run",
        action="store_true",
        help="page the API and print the plan; fetch, record and move nothing",
    )
    backfill.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    backfill.add_argument(
        "--bwlimit",
        type=_bwlimit_arg,
        metavar="RATE",
        help="bytes per second over all transfers, e.g. 20MB or off (replaces sync.bwlimit)",
    )
    _progress_options(backfill)
    _metrics_file_option(backfill)

    command(  # no options of its own: the configuration says it all
        "serve",
        "the daemon: run the [jobs] on their schedules until SIGTERM or SIGINT, then exit 0",
        SERVE_EPILOG,
    )

    status = command(
        "status",
        "is the DAM complete: totals, watermarks, last runs, what is missing and why",
        STATUS_EPILOG,
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.add_argument(
        "--missing",
        action="store_true",
        help="list each license whose file this storage lacks, with its status and reason",
    )
    status.add_argument(
        "--runs", type=_count_arg, default=0, metavar="N", help="list the last N runs"
    )

    verify = command(
        "verify",
        "check every stored file (present, size, sha256) and what killed runs left; no API request",
        VERIFY_EPILOG,
    )
    verify.add_argument(
        "--repair",
        action="store_true",
        help="queue missing and corrupt files for the next sync and remove leftovers",
    )
    verify.add_argument(
        "--full", action="store_true", help="re-hash every file now (else verify.rehash_after)"
    )
    verify.add_argument("--json", action="store_true", help="print the report as one JSON line")
    _progress_options(verify)

    db = command("db", "database maintenance")
    db_actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    action(db_actions, "db upgrade", "apply the migrations up to head")

    config = command("config", "configuration")
    config_actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = action(
        config_actions,
        "config show",
        "print the effective settings and where each came from (the token redacted)",
    )
    show.add_argument("--json", action="store_true", help="print one JSON object")

    command("demo", "sync the built-in simulator into ./syncd-demo/ (no account, no network)")

    from syncd.simulator.cli import add_arguments

    add_arguments(command("simulator", "run the API simulator on its own"))
    return parser


WHERE_EPILOG = """\
configuration: --config PATH, else $SYNCD_CONFIG, else ./config/syncd.toml; every key can be
set as SYNCD_<SECTION>__<KEY>; `syncd config show` prints the settings in force.
token: SHUTTERSTOCK_API_TOKEN (or api.token), never printed.
defaults: database.url sqlite:///syncd.db, storage.path ./dam (relative paths in a
configuration file are relative to its folder)."""

COMMON_EPILOG = (
    WHERE_EPILOG
    + """

exit codes: 0 ok; 1 some licenses or a stream failed (they stay queued); 2 usage or
configuration error; 3 the API refused the token; 4 storage or database unusable; 5 the API
could not be reached; 75 another syncd run holds the lock on this storage (try again later);
130 interrupted (SIGINT); 143 terminated (SIGTERM)."""
)

RUN_EPILOG = (
    COMMON_EPILOG
    + """

also by default: sync.concurrency 4, all five media types, no bandwidth limit; on a terminal
a progress display (--no-progress), off one none (--stats DURATION logs progress events)."""
)

BACKFILL_EPILOG = (
    RUN_EPILOG
    + """

the range is [--since, --until), to the second, in UTC; a killed backfill started again with
the same range resumes where it stopped (its checkpoint is in the database); a finished one
started again walks the range anew. It never moves a catch-up watermark. About one list
request per 200 licenses of the range, plus one redownload request per file fetched."""
)

VERIFY_EPILOG = (
    WHERE_EPILOG
    + """
also by default: verify.rehash_after 30d (--full re-hashes every file now).

exit codes: 0 everything is right (or was repaired); 1 something is wrong and was not
repaired; 2 usage or configuration; 4 storage or database; 75 a sync holds the lock on this
storage; 130 interrupted (SIGINT); 143 terminated (SIGTERM)."""
    + """

--repair deletes no stored data: a corrupt file stays in place until the next sync stores its
replacement over it."""
)

SERVE_EPILOG = (
    COMMON_EPILOG.split("\n\nexit codes")[0]
    + """

jobs (the [jobs] table; a duration such as 15m, a five-field cron expression in UTC, or off):
catch_up 15m (and once at start), verify 1d (with --repair), backfill 7d; one job at a time.
/metrics and /healthz on serve.metrics_address (127.0.0.1:9469, or off).
signals: SIGTERM/SIGINT start nothing new, give files in flight serve.grace_s (10) seconds,
then exit 0; SIGHUP reads the configuration again (a bad one is refused, the old one kept).

exit codes: 0 stopped by SIGTERM or SIGINT; 2 configuration error; 3 the API refused the
token; 4 storage or database unusable."""
)

STATUS_EPILOG = (
    WHERE_EPILOG
    + """

exit codes: 0 the report was printed; 1 there is no syncd database where the
configuration points (the wrong folder or --config: the line names the path); 2 usage or
configuration; 4 the database cannot be used.

sizes are binary (KiB, MiB) in the tables and bytes in --json; status reads only and never
waits for a running sync."""
)

SUBCOMMANDS: dict[str, argparse.ArgumentParser] = {}


def action(actions, name: str, help: str) -> argparse.ArgumentParser:
    """An action of a command (``db upgrade``, ``config show``) with the global options."""
    sub = actions.add_parser(
        name.split()[-1],
        help=help,
        description=help,
        epilog=COMMON_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(sub, suppress=True)
    SUBCOMMANDS[name] = sub
    return sub


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Parses the command line; an unknown argument is reported with the usage of the command
    it was given to, not the top-level one."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        name = " ".join(
            part
            for part in (
                args.command,
                getattr(args, "db_command", None),
                getattr(args, "config_command", None),
            )
            if part
        )
        (SUBCOMMANDS.get(name) or parser).error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.verbose and args.quiet:
        (SUBCOMMANDS.get(args.command) or build_parser()).error(
            "-v/--verbose and -q/--quiet cannot be used together"
        )
    logs.configure(args.log_format, _log_level(args))
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return exc.exit_code
    except SyncdError as exc:
        print(f"syncd: {logs.redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # stdout closed early (`syncd status | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:  # a second signal, or one outside a run's clean stop
        print("syncd: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _is_database_error(exc):
            orig = getattr(exc, "orig", None)
            reason = str(orig or exc).strip().splitlines()[0]
            print(
                f"syncd: cannot use the database ({_database_where}): {logs.redact(reason)}; "
                "check database.url and that the database is up and writable",
                file=sys.stderr,
            )
            return 4
        # a bug: say so on one line, with the traceback in the log (redacted)
        structlog.get_logger("syncd").exception("syncd.crashed")
        print("syncd: internal error (see the log line above); please report it", file=sys.stderr)
        return 1


_database_where = "database.url"


def _is_database_error(exc: Exception) -> bool:
    """An SQLAlchemy error, told without importing SQLAlchemy (some 140 ms): a command that
    never loaded it (``--help``, ``config show``) cannot have raised one."""
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


def _log_level(args, live: bool = False) -> int:
    """--log-level, else -v (debug), else -q (warning), else info; info lines are hidden while
    a live progress display shows, unless -v or --log-level asks for them."""
    import logging

    if args.log_level:
        return logs.LEVELS[args.log_level]
    if args.verbose:
        return logging.DEBUG
    return logging.WARNING if args.quiet or live else logging.INFO


def _display(args, command: str):
    """The progress display of a long command, with the log level it implies."""
    from syncd.progress import LiveDisplay, display_for

    display = display_for(sys.stderr, command, no_progress=args.no_progress, stats_s=args.stats)
    if isinstance(display, LiveDisplay):
        logs.configure(args.log_format, _log_level(args, live=True))
    return display


def _load_config(args, announce: bool = True) -> Config:
    """The configuration; ``announce`` logs which file, database and storage the command uses
    (``sync`` does that itself once its own checks passed: a configuration error is one line)."""
    global _database_where
    config = load(args.config)
    from syncd.db.engine import describe

    _database_where = describe(config.database.url)
    if config.api.token:
        logs.register_secret(config.api.token.reveal())
    if announce:
        logs.announce_config(config, args.command)
    return config


@contextmanager
def _stop_on_signals(stop: threading.Event):
    """The first SIGINT or SIGTERM asks the run to stop cleanly; a second one is not gentle."""
    received: list[int] = []

    def handler(signum, _frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def cmd_sync(args) -> int:
    from syncd.summary import report_run
    from syncd.sync import SyncRun

    config = _load_config(args, announce=False)
    if args.bwlimit is not None:
        config = replace(config, sync=replace(config.sync, bwlimit=args.bwlimit or None))
    progress = _display(args, "sync")
    stop = threading.Event()
    metrics = _run_metrics(args)
    run = SyncRun(
        config,
        media=args.media or config.sync.media,
        dry_run=args.dry_run,
        progress=progress,
        stop=stop,
        on_request=None if metrics is None else metrics.record_api_request,
    )
    with _stop_on_signals(stop) as received:
        result = run.execute()
    report_run(result, args.json, dry_run=args.dry_run)
    if metrics is not None:
        _write_run_metrics(args.metrics_file, metrics, "catch_up", result)
    if result.interrupted and received and received[0] == signal.SIGTERM:
        return 143
    return result.exit_code


def cmd_backfill(args) -> int:
    from syncd.backfill import BackfillRun
    from syncd.summary import report_run

    if args.since is not None and args.until is not None and args.since >= args.until:
        SUBCOMMANDS["backfill"].error(
            f"--since {args.since.isoformat()} is not before --until {args.until.isoformat()}"
        )
    config = _load_config(args, announce=False)
    if args.bwlimit is not None:
        config = replace(config, sync=replace(config.sync, bwlimit=args.bwlimit or None))
    progress = _display(args, "backfill")
    stop = threading.Event()
    metrics = _run_metrics(args)
    run = BackfillRun(
        config,
        media=args.media or config.sync.media,
        since=args.since,
        until=args.until,
        dry_run=args.dry_run,
        progress=progress,
        stop=stop,
        on_request=None if metrics is None else metrics.record_api_request,
    )
    with _stop_on_signals(stop) as received:
        result = run.execute()
    report_run(result, args.json, dry_run=args.dry_run)
    if metrics is not None:
        _write_run_metrics(args.metrics_file, metrics, "backfill", result)
    if result.interrupted and received and received[0] == signal.SIGTERM:
        return 143
    return result.exit_code


def _run_metrics(args):
    if not getattr(args, "metrics_file", None) or getattr(args, "dry_run", False):
        return None
    from syncd.metrics import Metrics

    return Metrics()


def _write_run_metrics(path: str, metrics, job: str, result) -> None:
    """``--metrics-file``: the run's counters and its job's outcome, for the textfile
    collector. A file that cannot be written is one error line; the run's exit code stands."""
    metrics.record_run(result.summary.as_json(), result.by_media)
    if not result.interrupted and result.exit_code != 75:
        outcome = "success" if result.exit_code == 0 else "failure"
        metrics.record_job(job, outcome, result.summary.duration_s)
    try:
        metrics.write_textfile(path)
    except OSError as exc:
        print(
            f"syncd: cannot write the metrics file {path}: {exc.strerror or exc}",
            file=sys.stderr,
        )


def cmd_serve(args) -> int:
    from syncd.serve import Daemon

    config = _load_config(args, announce=False)
    return Daemon(config, reload=lambda: _load_config(args, announce=False)).run()


def cmd_status(args) -> int:
    from syncd.status import collect, render, render_missing, render_runs

    config = _load_config(args)
    report = collect(config, missing=args.missing, runs=args.runs)
    if args.json:
        print(json.dumps(report))
    elif args.missing or args.runs:  # only the lists asked for
        parts = [render_missing(report["missing"])] if args.missing else []
        print("\n\n".join(parts + ([render_runs(report["runs"])] if args.runs else [])))
    else:
        print(render(report))
    return 0


def cmd_db(args) -> int:
    from syncd.db import connect, upgrade

    config = _load_config(args)
    engine = connect(config.database.url)
    upgrade(engine)
    engine.dispose()
    print("database schema is at the newest revision")
    return 0


def cmd_config(args) -> int:
    from syncd.config import settings

    config = _load_config(args)
    rows = settings(config)
    if args.json:
        print(
            json.dumps(
                {
                    "config": config.source,
                    "settings": {k: {"value": v, "from": o} for k, v, o in rows},
                }
            )
        )
    else:
        print(f"# configuration file: {config.source}")
        width = max(len(key) for key, _, _ in rows)
        for key, value, origin in rows:
            print(f"{key:<{width}}  {json.dumps(value)}  ({origin})")
    return 0


def cmd_demo(args) -> int:
    from syncd.demo import run_demo

    return run_demo(args)


def cmd_simulator(args) -> int:
    from syncd.simulator.cli import run

    return run(args)


def cmd_verify(args) -> int:
    from syncd.verify import Verify, render

    config = _load_config(args, announce=False)
    stop = threading.Event()
    job = Verify(
        config, repair=args.repair, full=args.full, progress=_display(args, "verify"), stop=stop
    )
    with _stop_on_signals(stop) as received:
        report = job.execute()
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print(render(report, args.repair))
    if job.interrupted:
        return 143 if received and received[0] == signal.SIGTERM else 130
    return 1 if report.wrong else 0


COMMANDS = {
    "sync": cmd_sync,
    "backfill": cmd_backfill,
    "serve": cmd_serve,
    "verify": cmd_verify,
    "status": cmd_status,
    "db": cmd_db,
    "demo": cmd_demo,
    "simulator": cmd_simulator,
    "config": cmd_config,
}
