"""Pluggable storage: one small interface (base.py), one module per backend."""

from __future__ import annotations

from syncd.config import StorageConfig
from syncd.errors import ConfigError
from syncd.storage.base import ObjectWriter, Storage

__all__ = ["ObjectWriter", "Storage", "describe_storage", "open_storage"]


def describe_storage(config: StorageConfig) -> str:
    """Where files go, for log lines and errors, without opening anything."""
    if config.backend == "s3":
        where = f"s3://{config.bucket}/{config.prefix}".rstrip("/")
        return f"{where} at {config.endpoint_url}" if config.endpoint_url else where
    from pathlib import Path

    return f"folder {str(Path(config.path).absolute())!r}"


def open_storage(config: StorageConfig, concurrency: int = 4) -> Storage:
    """The backend ``config`` names; opening sends no request (``check_writable`` does)."""
    if config.backend == "filesystem":
        from syncd.storage.filesystem import FilesystemStorage

        return FilesystemStorage(config.path)
    if config.backend == "s3":
        from syncd.storage.s3 import S3Storage

        return S3Storage(config, concurrency)
    raise ConfigError("storage.backend", f"{config.backend!r} is not available in this release")
