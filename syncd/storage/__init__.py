"""Pluggable storage: one small interface (base.py), one module per backend."""

from __future__ import annotations

from syncd.config import StorageConfig
from syncd.errors import ConfigError
from syncd.storage.base import ObjectWriter, Storage

__all__ = ["ObjectWriter", "Storage", "open_storage"]


def open_storage(config: StorageConfig) -> Storage:
    if config.backend == "filesystem":
        from syncd.storage.filesystem import FilesystemStorage

        return FilesystemStorage(config.path)
    raise ConfigError("storage.backend", f"{config.backend!r} is not available in this release")
