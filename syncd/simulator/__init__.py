"""A local fake of the Shutterstock endpoints syncd uses, deterministic from a seed."""

from syncd.simulator.catalog import STREAMS, Catalog, License
from syncd.simulator.faults import RandomFaults
from syncd.simulator.media import MAX_DETAIL_IDS
from syncd.simulator.server import RequestRecord, Simulator

__all__ = [
    "MAX_DETAIL_IDS",
    "STREAMS",
    "Catalog",
    "License",
    "RandomFaults",
    "RequestRecord",
    "Simulator",
]
