"""A local fake of the Shutterstock endpoints syncd uses, deterministic from a seed.

Its names are loaded on first use: ``syncd --help`` builds the ``simulator`` command's
arguments from :mod:`syncd.simulator.cli` without paying for the server and the catalog."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.simulator.catalog import STREAMS, Catalog, License
    from syncd.simulator.faults import Hold, RandomFaults
    from syncd.simulator.licensing import Grant, LicenseRequest
    from syncd.simulator.media import MAX_DETAIL_IDS
    from syncd.simulator.server import RequestRecord, Simulator
    from syncd.simulator.subscriptions import Subscription

_WHERE = {
    "MAX_DETAIL_IDS": "syncd.simulator.media",
    "STREAMS": "syncd.simulator.catalog",
    "Catalog": "syncd.simulator.catalog",
    "License": "syncd.simulator.catalog",
    "Grant": "syncd.simulator.licensing",
    "Hold": "syncd.simulator.faults",
    "LicenseRequest": "syncd.simulator.licensing",
    "RandomFaults": "syncd.simulator.faults",
    "RequestRecord": "syncd.simulator.server",
    "Simulator": "syncd.simulator.server",
    "Subscription": "syncd.simulator.subscriptions",
}

__all__ = [
    "MAX_DETAIL_IDS",
    "STREAMS",
    "Catalog",
    "Grant",
    "Hold",
    "License",
    "LicenseRequest",
    "RandomFaults",
    "RequestRecord",
    "Simulator",
    "Subscription",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
