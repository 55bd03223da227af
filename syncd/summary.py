"""The run summary (CONTRACT section 2) and how a run ends."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Summary:
    licenses_seen: int = 0
    new_licenses: int = 0
    downloaded: int = 0
    already_present: int = 0
    relicensed: int = 0
    credits_spent: int = 0
    credits_planned: int = 0
    planned: int = 0
    unavailable: int = 0
    failed: int = 0
    bytes_downloaded: int = 0
    api_requests: int = 0
    duration_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    """A summary, plus what went wrong at the level of streams or the whole run."""

    summary: Summary = field(default_factory=Summary)
    stream_errors: dict[str, str] = field(default_factory=dict)  # stream -> why it failed
    refused: dict[str, str] = field(default_factory=dict)  # stream -> the 403
    fatal: Exception | None = None  # 401, storage, ...
    interrupted: bool = False
    planned: list[str] = field(default_factory=list)  # --dry-run: what it would do
    # the summary's license counts per media type, for the metrics (CONTRACT section 6)
    by_media: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def count(self, media_type: str, key: str, amount: int = 1) -> None:
        """Adds ``amount`` to the summary's ``key`` and to that media type's share of it."""
        setattr(self.summary, key, getattr(self.summary, key) + amount)
        self.by_media[media_type][key] += amount

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.fatal is not None:
            return getattr(self.fatal, "exit_code", 1)
        if self.refused:
            return 3
        if self.stream_errors or self.summary.failed:
            return 1
        return 0

    @property
    def outcome(self) -> str:
        return {
            0: "ok",
            1: "failed",
            2: "usage",
            3: "refused",
            4: "storage",
            5: "unreachable",
            75: "busy",
            130: "interrupted",
        }.get(self.exit_code, "failed")


def report_run(result: RunResult, as_json: bool, dry_run: bool = False) -> None:
    """What a run prints: the plan (dry run) and the summary on stdout, what went wrong on
    stderr, one line each."""
    import json
    import sys

    from syncd import logs

    for line in result.planned:
        print(line)
    for stream, error in result.refused.items():
        print(f"syncd: stream {stream} refused by the API: {logs.redact(error)}", file=sys.stderr)
    for stream, error in result.stream_errors.items():
        print(f"syncd: stream {stream} failed: {logs.redact(error)}", file=sys.stderr)
    if result.fatal is not None:
        print(f"syncd: {logs.redact(str(result.fatal))}", file=sys.stderr)
    if result.interrupted:
        print("syncd: interrupted; what finished is kept", file=sys.stderr)
    summary = result.summary
    if dry_run:
        print(
            f"plan: {summary.planned} to fetch, {summary.already_present} already present, "
            f"{summary.unavailable} unavailable, {summary.failed} would fail, "
            f"{summary.credits_planned} credits; dry run: nothing was fetched, recorded or moved"
        )
    if as_json:
        print(json.dumps(summary.as_json()), flush=True)
    else:
        for key, value in summary.as_json().items():
            print(f"{key:>18}: {value}")
