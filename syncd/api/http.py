"""The one HTTP session factory: pooled connections, a User-Agent naming syncd."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

from syncd import __version__

USER_AGENT = f"syncd/{__version__} (+https://github.com/syncd; python-requests/{requests.__version__})"


def make_session(pool_size: int) -> requests.Session:
    """A Session with no retries of its own (the callers own retry policy) and a pool large
    enough for every worker."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
