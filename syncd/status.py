"""``syncd status``: is the DAM complete, and what is missing and why.

Per stream, the watermark, the last run and the last success; per media type, how many assets
have a license in each state (an asset with a stored file and a failed license of another size
counts under both), and how many are deleted; totals licensed against stored in this storage,
with bytes; the failed and unavailable licenses counted by reason; the runs going on now.
``--missing`` lists every license whose file this storage does not hold, ``--runs N`` the last
runs with their summaries. Reads only: no lease, no write, nothing created."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, inspect, select
from sqlalchemy.orm import Session

from syncd.config import MEDIA_TYPES, Config
from syncd.db import connect, ledger
from syncd.db.engine import check_url, describe, sqlite_path
from syncd.db.models import Asset, License, Run, StoredFile, StreamState
from syncd.errors import SyncdError
from syncd.sidecar import format_time
from syncd.storage import Storage, open_storage

COUNTED = ("stored", "pending", "unavailable", "failed", "deleted")
# summary keys a run line shows, in this order
RUN_COUNTS = (
    "new_licenses",
    "downloaded",
    "already_present",
    "relicensed",
    "credits_spent",
    "unavailable",
    "failed",
)
ELSEWHERE = "stored in another storage only: queued for this one"


class NothingHere(SyncdError):
    """No syncd database where the configuration points: the wrong folder or config file."""

    exit_code = 1


def collect(config: Config, missing: bool = False, runs: int = 0) -> dict[str, Any]:
    """The report ``status --json`` prints; ``missing`` and ``runs`` add those lists."""
    url = config.database.url
    check_url(url)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise NothingHere(
            f"no syncd database at {str(path.absolute())!r}: nothing was synced with this "
            "configuration; run status where `syncd sync` ran, or give its --config "
            "(or database.url)"
        )
    storage = open_storage(config.storage)  # opens nothing: only its identity is needed
    engine = connect(url, write=False)
    try:
        if not inspect(engine).has_table("licenses"):
            raise NothingHere(f"{describe(url)} holds no syncd tables: is database.url right?")
        with Session(engine) as session:
            return _report(session, describe(url), storage, missing, runs)
    finally:
        engine.dispose()


def _report(
    session: Session, database: str, storage: Storage, missing: bool, runs: int
) -> dict[str, Any]:
    here = storage.identity
    report: dict[str, Any] = {
        "database": database,
        "storage": storage.description,
        "running": [_run(run) for run in ledger.live_runs(session)],
        "streams": [
            _stream(state)
            for state in session.scalars(
                select(StreamState).order_by(StreamState.stream, StreamState.team_history)
            )
        ],
        "media": {m: dict.fromkeys(COUNTED, 0) for m in MEDIA_TYPES},
        "totals": _totals(session, here),
        "problems": [
            {"status": status, "reason": reason or "", "licenses": count}
            for status, reason, count in session.execute(
                select(License.status, License.reason, func.count())
                .where(License.status.in_((ledger.FAILED, ledger.UNAVAILABLE)))
                .group_by(License.status, License.reason)
                .order_by(License.status, func.count().desc(), License.reason)
            )
        ],
    }
    counted = session.execute(
        select(
            License.media_type, License.status, func.count(License.media_id.distinct())
        ).group_by(License.media_type, License.status)
    )
    for media_type, status, count in counted:
        report["media"].setdefault(media_type, dict.fromkeys(COUNTED, 0))[status] = count
    deleted = session.execute(
        select(Asset.media_type, func.count())
        .where(Asset.status == "deleted")
        .group_by(Asset.media_type)
    )
    for media_type, count in deleted:
        report["media"].setdefault(media_type, dict.fromkeys(COUNTED, 0))["deleted"] = count
    report["relicensing"] = _relicensing(session)
    if missing:
        report["missing"] = _missing(session, here)
    if runs:
        report["runs"] = [
            _run(run) for run in session.scalars(select(Run).order_by(Run.id.desc()).limit(runs))
        ]
    return report


def _relicensing(session: Session) -> dict[str, Any]:
    """Credits spent by relicensing per UTC day (the last 14 days with any), and the intents
    whose outcome is not known yet (they count as spent until the license history settles
    them)."""
    from syncd.db.models import RelicenseIntent
    from syncd.relicense import SPENT, UNKNOWN

    if not inspect(session.get_bind()).has_table("relicense_intents"):  # not upgraded yet
        return {"credits_by_day": {}, "unsettled": []}
    by_day = session.execute(
        select(RelicenseIntent.day, func.sum(RelicenseIntent.credits))
        .where(RelicenseIntent.state.in_(SPENT), RelicenseIntent.day.is_not(None))
        .group_by(RelicenseIntent.day)
        .order_by(RelicenseIntent.day.desc())
        .limit(14)
    )
    unknown = session.scalars(
        select(RelicenseIntent)
        .where(RelicenseIntent.state.in_((UNKNOWN, "sending")))
        .order_by(RelicenseIntent.sent_at)
    )
    return {
        "credits_by_day": {day: int(total or 0) for day, total in by_day},
        "unsettled": [
            {
                "media_type": i.media_type,
                "media_id": i.media_id,
                "size": i.size,
                "state": i.state,
                "sent_at": _iso(i.sent_at),
                "subscription_id": i.subscription_id,
            }
            for i in unknown
        ],
    }


def _held_here(here: str) -> Any:
    return exists().where(
        StoredFile.storage == here,
        StoredFile.media_type == License.media_type,
        StoredFile.media_id == License.media_id,
        StoredFile.size == License.size,
    )


def _totals(session: Session, here: str) -> dict[str, int]:
    licenses, assets = session.execute(
        select(func.count(), func.count(func.distinct(License.media_type + "/" + License.media_id)))
    ).one()
    stored = session.scalar(select(func.count()).select_from(License).where(_held_here(here)))
    stored = stored or 0
    files, size = session.execute(
        select(func.count(), func.coalesce(func.sum(StoredFile.size_bytes), 0)).where(
            StoredFile.storage == here
        )
    ).one()
    return {
        "licenses": licenses,
        "licenses_stored": stored,
        "licenses_missing": licenses - stored,
        "assets": assets,
        "files_stored": files,
        "bytes_stored": int(size),
    }


def _missing(session: Session, here: str) -> list[dict[str, Any]]:
    """Every license whose file this storage does not hold, oldest first."""
    rows = session.scalars(
        select(License)
        .where(~_held_here(here))
        .order_by(License.download_time, License.media_type, License.license_id)
    )
    return [
        {
            "license_id": row.license_id,
            "media_type": row.media_type,
            "media_id": row.media_id,
            "size": row.size,
            "status": ledger.PENDING if row.status == ledger.STORED else row.status,
            "reason": ELSEWHERE if row.status == ledger.STORED else row.reason,
            "attempts": row.attempts,
            "licensed_at": _iso(row.download_time),
            "last_tried": _iso(row.updated_at) if row.attempts else None,
        }
        for row in rows
    ]


def _stream(state: StreamState) -> dict[str, Any]:
    return {
        "stream": state.stream,
        "team_history": state.team_history,
        "watermark_license_id": state.watermark_license_id,
        "watermark_time": _iso(state.watermark_time),
        "last_run_at": _iso(state.last_run_at),
        "last_outcome": state.last_outcome,
        "last_error": state.last_error,
        "last_success_at": _iso(state.last_success_at),
    }


def _run(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "command": run.command,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "outcome": run.outcome,
        "exit_code": run.exit_code,
        "host": run.host,
        "pid": run.pid,
        "summary": run.summary,
    }


def _iso(moment: datetime | None) -> str | None:
    return format_time(moment) if moment else None


# --- human output ------------------------------------------------------------------------------


def human_size(count: int) -> str:
    """``1536`` -> ``1.5 KiB``: binary units, one decimal from KiB up."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, an ellipsis marking a cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def render(report: dict[str, Any]) -> str:
    lines = [f"database {report['database']}, storage {report['storage']}"]
    for run in report["running"]:
        lines.append(
            f"running: {run['command']} since {run['started_at']} "
            f"(pid {run['pid']} on {run['host']}, run {run['id']})"
        )
    totals = report["totals"]
    lines.append(
        f"licenses {totals['licenses']}: {totals['licenses_stored']} stored here, "
        f"{totals['licenses_missing']} missing; {totals['files_stored']} files, "
        f"{human_size(totals['bytes_stored'])}"
    )
    lines.append("")
    lines.append(
        f"{'stream':<18} {'team':<5} {'watermark':<24} {'last run':<21} {'outcome':<9} last success"
    )
    for s in report["streams"]:
        lines.append(
            f"{s['stream']:<18} {'yes' if s['team_history'] else 'no':<5} "
            f"{cut(s['watermark_license_id'] or '-', 24):<24} {s['last_run_at'] or '-':<21} "
            f"{s['last_outcome'] or '-':<9} {s['last_success_at'] or '-'}"
        )
        if s["last_error"]:
            lines.append(f"{'':<18} error: {cut(s['last_error'], 100)}")
    if not report["streams"]:
        lines.append("(no stream has run yet)")
    lines.append("")
    lines.append(f"{'media type':<18} " + " ".join(f"{c:>11}" for c in COUNTED))
    for media_type, counts in report["media"].items():
        lines.append(f"{media_type:<18} " + " ".join(f"{counts[c]:>11}" for c in COUNTED))
    if report["problems"]:
        lines.append("")
        lines.append("not stored, by reason (licenses):")
        for p in report["problems"]:
            lines.append(f"{p['licenses']:>8}  {p['status']:<11} {cut(p['reason'] or '-', 90)}")
    relicensing = report.get("relicensing") or {}
    if relicensing.get("credits_by_day") or relicensing.get("unsettled"):
        lines.append("")
        spent = ", ".join(f"{d}: {n}" for d, n in relicensing["credits_by_day"].items())
        lines.append(f"relicensing credits by day (UTC): {spent or 'none'}")
        for i in relicensing["unsettled"]:
            lines.append(
                f"  outcome unknown: {i['media_type']}/{i['media_id']} size {i['size']} "
                f"({i['state']} since {i['sent_at']}, subscription {i['subscription_id']}): "
                "settled from the license history by the next sync"
            )
    if "missing" in report:
        lines.append("")
        lines.append(render_missing(report["missing"]))
    if "runs" in report:
        lines.append("")
        lines.append(render_runs(report["runs"]))
    return "\n".join(lines)


def render_missing(missing: list[dict[str, Any]]) -> str:
    if not missing:
        return "missing: none (every license's file is stored here)"
    lines = [
        f"missing: {len(missing)} licenses",
        f"{'license':<20} {'asset':<30} {'size':<8} {'status':<11} {'tries':>5} "
        f"{'last tried':<20} reason",
    ]
    for m in missing:
        lines.append(
            f"{cut(m['license_id'], 20):<20} {cut(m['media_type'] + '/' + m['media_id'], 30):<30} "
            f"{cut(m['size'], 8):<8} {m['status']:<11} {m['attempts']:>5} "
            f"{m['last_tried'] or '-':<20} {cut(m['reason'] or '-', 80)}"
        )
    return "\n".join(lines)


def render_runs(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "runs: none yet"
    lines = [f"{'run':>5} {'command':<8} {'started':<21} {'outcome':<9} {'exit':>4}  summary"]
    for run in runs:
        summary = run["summary"] or {}
        counts = ", ".join(f"{k} {summary[k]}" for k in RUN_COUNTS if summary.get(k))
        if summary.get("bytes_downloaded"):
            counts += f"{', ' if counts else ''}{human_size(summary['bytes_downloaded'])}"
        exit_code = "-" if run["exit_code"] is None else str(run["exit_code"])
        lines.append(
            f"{run['id']:>5} {run['command']:<8} {run['started_at']:<21} {run['outcome']:<9} "
            f"{exit_code:>4}  {counts or '-'}"
        )
    return "\n".join(lines)
