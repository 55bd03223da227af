"""The one HTTP session factory: pooled connections, a User-Agent naming syncd, the operator's
proxy and CA settings."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from syncd import __version__
from syncd.config import is_loopback

USER_AGENT = f"syncd/{__version__} python-requests/{requests.__version__}"


def make_session(pool_size: int) -> requests.Session:
    """A Session with no retries of its own (the callers own retry policy) and a pool large
    enough for every worker. It does not read the environment by itself (``trust_env``), so
    that no ~/.netrc entry can replace the bearer token or reach a download host; the proxy
    and CA variables are honoured explicitly instead (``proxies_for``, ``verify``)."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.trust_env = False
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    )
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def proxies_for(url: str) -> dict[str, str]:
    """The proxies HTTPS_PROXY / HTTP_PROXY / ALL_PROXY name for this URL, unless NO_PROXY
    exempts it; never one for a loopback address."""
    if is_loopback(urlsplit(url).hostname):
        return {}
    return get_environ_proxies(url)
