"""A local fake of the Shutterstock endpoints syncd uses, deterministic from a seed."""

from syncd.simulator.catalog import STREAMS, Catalog, License
from syncd.simulator.faults import Hold, RandomFaults
from syncd.simulator.licensing import Grant, LicenseRequest
from syncd.simulator.media import MAX_DETAIL_IDS
from syncd.simulator.server import RequestRecord, Simulator
from syncd.simulator.subscriptions import Subscription

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
