"""The download loop the Shutterstock guide tells customers to write, as the baseline syncd is
compared with: requests + a pool of threads, each file streamed with ``iter_content(1 MiB)``
into ``<name>.part`` and renamed. No hashing, no fsync, no records, no redownload requests.

Usage: plain_client.py URL_LIST DEST_DIR [--concurrency 4] [--timeout 60]

URL_LIST has one ``<url>\\t<relative path>`` per line; each file lands at DEST_DIR/<path>.
Exit status 1 when any file failed (each failure is printed on stderr)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

import requests

CHUNK = 1 << 20
_local = threading.local()


def session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def download(url: str, path: str, timeout: float) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    part = path + ".part"
    written = 0
    with session().get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        with open(part, "wb") as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                written += len(chunk)
    os.replace(part, path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url_list")
    parser.add_argument("dest")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    jobs = []
    with open(args.url_list, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                url, _, rel = line.rstrip("\n").partition("\t")
                jobs.append((url, os.path.join(args.dest, rel)))

    failed = 0
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = {pool.submit(download, url, path, args.timeout): url for url, path in jobs}
        for future in as_completed(futures):
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - report every failure, keep going
                failed += 1
                print(f"plain_client: {futures[future]}: {exc!r}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
