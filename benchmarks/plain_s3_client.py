"""The download-to-S3 loop a customer would write, as the baseline ``syncd sync`` into S3 is
compared with: requests + a pool of threads, each file a streaming GET whose body goes straight
into ``boto3.client("s3").upload_fileobj(response.raw, bucket, key)``. boto3's own transfer
settings (multipart above 8 MiB, 8 MiB parts, up to 10 parts of one file at once) and its
default checksums are kept. No hashing of its own, no records, no redownload requests.

Usage: plain_s3_client.py URL_LIST BUCKET --endpoint-url URL [--prefix P] [--concurrency 4]

URL_LIST has one ``<url>\\t<relative path>`` per line; each file lands at ``<prefix>/<path>``.
Credentials and region come from the usual AWS_* variables. Exit status 1 when any file
failed (each failure is printed on stderr)."""

from __future__ import annotations

import argparse
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

import boto3
import requests

_local = threading.local()


def session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def copy(s3, url: str, bucket: str, key: str, timeout: float) -> None:
    with session().get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        s3.upload_fileobj(response.raw, bucket, key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url_list")
    parser.add_argument("bucket")
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    jobs = []
    with open(args.url_list, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                url, _, rel = line.rstrip("\n").partition("\t")
                key = f"{args.prefix.strip('/')}/{rel}" if args.prefix.strip("/") else rel
                jobs.append((url, key))

    s3 = boto3.client("s3", endpoint_url=args.endpoint_url)  # clients are thread-safe
    failed = 0
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = {
            pool.submit(copy, s3, url, args.bucket, key, args.timeout): url for url, key in jobs
        }
        for future in as_completed(futures):
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - report every failure, keep going
                failed += 1
                print(f"plain_s3_client: {futures[future]}: {exc!r}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
