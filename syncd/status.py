"""``syncd status``: per stream, the watermark and the last run; per media type, how many assets
have a license in each state (an asset with a stored file and a failed license of another size
counts under both), and how many are deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from syncd.config import MEDIA_TYPES, Config
from syncd.db import connect
from syncd.db.engine import check_url, sqlite_path
from syncd.db.models import Asset, License, StreamState
from syncd.sidecar import format_time

COUNTED = ("stored", "pending", "unavailable", "failed", "deleted")


def collect(config: Config) -> dict:
    report: dict[str, Any] = {
        "streams": [],
        "media": {m: dict.fromkeys(COUNTED, 0) for m in MEDIA_TYPES},
    }
    check_url(config.database.url)
    path = sqlite_path(config.database.url)
    if path is not None and not path.exists():
        return report
    engine = connect(config.database.url)
    try:
        if not inspect(engine).has_table("licenses"):
            return report
        with Session(engine) as session:
            for state in session.scalars(select(StreamState).order_by(StreamState.stream)):
                report["streams"].append(
                    {
                        "stream": state.stream,
                        "team_history": state.team_history,
                        "watermark_license_id": state.watermark_license_id,
                        "watermark_time": _iso(state.watermark_time),
                        "last_run_at": _iso(state.last_run_at),
                        "last_outcome": state.last_outcome,
                        "last_error": state.last_error,
                    }
                )
            rows = session.execute(
                select(
                    License.media_type, License.status, func.count(License.media_id.distinct())
                ).group_by(License.media_type, License.status)
            )
            for media_type, status, count in rows:
                report["media"].setdefault(media_type, dict.fromkeys(COUNTED, 0))[status] = count
            deleted = session.execute(
                select(Asset.media_type, func.count())
                .where(Asset.status == "deleted")
                .group_by(Asset.media_type)
            )
            for media_type, count in deleted:
                report["media"][media_type]["deleted"] = count
    finally:
        engine.dispose()
    return report


def _iso(moment) -> str | None:
    return format_time(moment) if moment else None


def render(report: dict) -> str:
    lines = [f"{'stream':<18} {'team':<5} {'watermark':<24} {'last run':<21} outcome"]
    for s in report["streams"]:
        mark = f"{s['watermark_license_id'] or '-'}"[:24]
        lines.append(
            f"{s['stream']:<18} {'yes' if s['team_history'] else 'no':<5} {mark:<24} "
            f"{s['last_run_at'] or '-':<21} {s['last_outcome'] or '-'}"
        )
    if not report["streams"]:
        lines.append("(no stream has run yet)")
    lines.append("")
    lines.append(f"{'media type':<18} " + " ".join(f"{c:>11}" for c in COUNTED))
    for media_type, counts in report["media"].items():
        lines.append(f"{media_type:<18} " + " ".join(f"{counts[c]:>11}" for c in COUNTED))
    return "\n".join(lines)
