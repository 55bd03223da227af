"""The whole sync a customer writes by following the Shutterstock guide, as the baseline syncd is
compared with when the API is slow: requests + a pool of threads. It pages
``GET /v2/{media}/licenses`` newest-first (``per_page`` 200, Bearer token) and hands each
license to a worker as its page arrives; the worker asks for a redownload URL
(``POST /v2/{media}/licenses/{id}/downloads``, body ``{"size": ...}`` for images and videos) and
streams the file with ``iter_content(1 MiB)`` into ``<name>.part``, then renames it. No hashing,
no fsync, no database, no retries.

Usage: plain_recipe.py BASE_URL DEST_DIR [--media videos] [--concurrency 4] [--timeout 60]

The token comes from ``SHUTTERSTOCK_API_TOKEN``. Each file lands at
DEST_DIR/<media>/<media id>/<size><ext of the URL>. Prints one JSON line (licenses, files,
bytes, list pages); exit status 1 when any file failed (each failure is printed on stderr)."""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

CHUNK = 1 << 20
PER_PAGE = 200
MEDIA_KEYS = {"images": "image", "videos": "video", "audio": "audio"}
_local = threading.local()


def session(token: str) -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
        _local.session.headers["Authorization"] = f"Bearer {token}"
    return _local.session


def fetch(base: str, token: str, media: str, item: dict, dest: str, timeout: float) -> int:
    asset = item[MEDIA_KEYS[media]]
    size = (asset.get("format") or {}).get("size")
    body = {"size": size} if media != "audio" and size else None
    http = session(token)
    answer = http.post(
        f"{base}/v2/{media}/licenses/{item['id']}/downloads", json=body, timeout=timeout
    )
    answer.raise_for_status()
    url = answer.json()["url"]
    ext = posixpath.splitext(urlsplit(url).path)[1]
    path = os.path.join(dest, media, asset["id"], f"{size or 'original'}{ext}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = path + ".part"
    written = 0
    with http.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        with open(part, "wb") as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                written += len(chunk)
    os.replace(part, path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("dest")
    parser.add_argument("--media", default="videos", choices=sorted(MEDIA_KEYS))
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    token = os.environ.get("SHUTTERSTOCK_API_TOKEN", "")
    base = args.base_url.rstrip("/")

    futures: dict[Future[int], str] = {}
    pages = 0
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        page = 1
        while True:
            answer = session(token).get(
                f"{base}/v2/{args.media}/licenses",
                params={"per_page": PER_PAGE, "page": page, "sort": "newest"},
                timeout=args.timeout,
            )
            answer.raise_for_status()
            pages += 1
            items = answer.json().get("data") or []
            for item in items:
                if item.get("is_downloadable") is False:
                    continue
                future = pool.submit(fetch, base, token, args.media, item, args.dest, args.timeout)
                futures[future] = item["id"]
            if len(items) < PER_PAGE:
                break
            page += 1
    failed = 0
    written = 0
    for future, license_id in futures.items():
        try:
            written += future.result()
        except Exception as exc:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"plain_recipe: {license_id}: {exc!r}", file=sys.stderr)
    summary = {"licenses": len(futures), "files": len(futures) - failed, "bytes": written}
    print(json.dumps({**summary, "failed": failed, "list_pages": pages}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
