"""The fetch queue is read from the database in batches (never the whole history in memory):
a run whose queue spans many batches ends exactly as a run whose queue fits in one."""

from __future__ import annotations

import json
from pathlib import Path

from syncd import sync as sync_module
from syncd.config import load
from syncd.db import ledger
from syncd.simulator import Catalog, Simulator
from syncd.sync import SyncRun
from tests.conftest import TOKEN


def run_in(sim: Simulator, home: Path) -> dict:
    config = load(
        environ={
            "SYNCD_API__BASE_URL": sim.base_url,
            "SHUTTERSTOCK_API_TOKEN": TOKEN,
            "SYNCD_DATABASE__URL": f"sqlite:///{home / 's.db'}",
            "SYNCD_STORAGE__PATH": str(home / "dam"),
        },
        search=False,
    )
    result = SyncRun(config, media=config.sync.media).execute()
    assert result.exit_code == 1  # the hostile ids fail, the rest is fetched
    summary = result.summary.as_json()
    del summary["duration_s"]
    return summary


def sidecars(root: Path) -> dict[str, dict]:
    return {
        p.relative_to(root).as_posix(): json.loads(p.read_text())
        for p in sorted(root.rglob("metadata.json"))
    }


def test_a_queue_of_many_batches_ends_as_one_batch_does(tmp_path, monkeypatch):
    catalog = Catalog.example()  # twins across the same asset and size, unavailable ones
    for number in range(9):  # more images, then one more license of an asset and size
        catalog.add("images", size="medium")  # licensed long ago: the two are batches apart
        if number % 2:  # and licenses that fail (they stay queued: each must count once)
            catalog.add("images", media_id=f"../../x{number}", size="huge")
    catalog.add("images", media_id="59656357", size="huge")
    with Simulator(catalog, token=TOKEN) as sim:
        whole = run_in(sim, tmp_path / "whole")

        sizes: list[int] = []
        real = ledger.queued_licenses

        def spy(*args, **kwargs):
            rows = real(*args, **kwargs)
            sizes.append(len(rows))
            return rows

        monkeypatch.setattr(sync_module, "QUEUE_BATCH", 3)
        monkeypatch.setattr(ledger, "queued_licenses", spy)
        batched = run_in(sim, tmp_path / "batched")

    assert batched == {**whole, "api_requests": batched["api_requests"]}
    assert batched["api_requests"] == whole["api_requests"]
    assert whole["failed"] == 4
    assert len(sizes) > 5 and max(sizes) <= 3  # many batches, none larger than the limit
    ours, theirs = sidecars(tmp_path / "batched" / "dam"), sidecars(tmp_path / "whole" / "dam")
    assert ours == theirs and len(ours) > 10
    stored = sorted(
        p.relative_to(tmp_path / "whole" / "dam").as_posix()
        for p in (tmp_path / "whole" / "dam").rglob("*")
        if p.is_file()
    )
    assert stored == sorted(
        p.relative_to(tmp_path / "batched" / "dam").as_posix()
        for p in (tmp_path / "batched" / "dam").rglob("*")
        if p.is_file()
    )
