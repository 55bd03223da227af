"""`syncd simulator`: the simulator on its own, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING

from syncd.config import is_loopback

if TYPE_CHECKING:
    from syncd.simulator.catalog import Catalog
    from syncd.simulator.faults import RandomFaults

DEFAULT_HOST = "127.0.0.1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        help=f"address to listen on (default {DEFAULT_HOST}); "
        "any other than loopback lets other machines use it",
    )
    parser.add_argument(
        "--port", type=_count, default=8080, help="port; 0 picks a free one (default 8080)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="generate the licenses from this seed (default: the built-in example of 12 licenses)",
    )
    parser.add_argument(
        "--licenses", type=_count, metavar="N", help="with --seed: licenses per stream (default 50)"
    )
    parser.add_argument(
        "--file-size",
        type=_count,
        metavar="BYTES",
        help="with --seed: the size of every file (default 20 KB to 1 MB)",
    )
    parser.add_argument(
        "--token", default="demo-token", help="the bearer token to accept (default demo-token)"
    )
    parser.add_argument(
        "--url-ttl",
        type=float,
        default=8 * 3600,
        metavar="SECONDS",
        help="how long download URLs stay valid (default 8 hours)",
    )
    parser.add_argument(
        "--download-base", metavar="URL", help="base of the download URLs (default: this simulator)"
    )
    parser.add_argument(
        "--files-dir",
        metavar="DIR",
        help="with --download-base: write every "
        "file into DIR as <stream>/<id>/<size><ext> and hand out URLs into "
        "--download-base, for a web server that serves DIR",
    )
    faults = parser.add_argument_group("faults, at random from --seed")
    faults.add_argument(
        "--fail-rate",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="fraction of API requests answered 500",
    )
    faults.add_argument(
        "--rate-limit-rate",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="fraction of API requests answered 429 with Retry-After: 1",
    )
    faults.add_argument(
        "--reset-rate",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="fraction of downloads reset half-way through the body",
    )
    faults.add_argument(
        "--latency-ms", type=_count, default=0, metavar="N", help="delay added to every API request"
    )
    faults.add_argument(
        "--download-delay-ms",
        type=_count,
        default=0,
        metavar="N",
        help="delay before the first byte of every download",
    )


def run(args: argparse.Namespace) -> int:
    from syncd.simulator.server import Simulator

    problem = _problem(args)
    if problem:
        print(f"syncd simulator: {problem}", file=sys.stderr)
        return 2
    if args.host and not is_loopback(args.host):
        print(
            f"syncd simulator: warning: listening on {args.host}, not loopback: anyone who "
            "can reach it can use it",
            file=sys.stderr,
        )
    simulator = Simulator(
        _catalog(args),
        token=args.token,
        host=args.host or DEFAULT_HOST,
        port=args.port,
        url_ttl_s=args.url_ttl,
        download_base=args.download_base,
        files_dir=args.files_dir,
        random_faults=_random_faults(args),
    )
    with _until_signalled() as stopped:
        try:
            simulator.start()
        except OSError as error:
            print(
                f"syncd simulator: cannot listen on {args.host or DEFAULT_HOST}:{args.port}: "
                f"{error.strerror or error}",
                file=sys.stderr,
            )
            return 1
        try:
            print(f"simulator listening on {simulator.base_url} (token: {args.token})", flush=True)
            stopped.wait()
        finally:
            simulator.stop()
    return 0


def _problem(args: argparse.Namespace) -> str | None:
    if args.seed is None and (args.licenses is not None or args.file_size is not None):
        return "--licenses and --file-size need --seed"
    if args.files_dir and not args.download_base:
        return "--files-dir needs --download-base, the URL a web server serves it at"
    return None


def _catalog(args: argparse.Namespace) -> Catalog:
    from syncd.simulator.catalog import STREAMS, Catalog

    if args.seed is None:
        return Catalog.example()
    per_stream = 50 if args.licenses is None else args.licenses
    sizes = None if args.file_size is None else [args.file_size]
    return Catalog.generate(
        args.seed, counts={stream: per_stream for stream in STREAMS}, sizes=sizes
    )


def _random_faults(args: argparse.Namespace) -> RandomFaults | None:
    from syncd.simulator.faults import RandomFaults

    rates = (
        args.fail_rate,
        args.rate_limit_rate,
        args.reset_rate,
        args.latency_ms,
        args.download_delay_ms,
    )
    if not any(rates):
        return None
    return RandomFaults(args.seed or 0, *rates)


class _until_signalled:
    """An event set by SIGINT or SIGTERM, the previous handlers restored on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> threading.Event:
        self._event = threading.Event()
        self._previous = {
            sig: signal.signal(sig, lambda *_: self._event.set()) for sig in self.SIGNALS
        }
        return self._event

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {value}")
    return value
