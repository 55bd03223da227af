"""structlog set-up: JSON lines off a terminal, console lines on one; the token never appears."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_secrets: list[str] = []


def register_secret(value: str) -> None:
    """Every later log line, error line and stored reason has this value replaced by ``***``,
    wherever it appears (a toy token of a few letters garbles the text: it is still hidden)."""
    if value and value not in _secrets:
        _secrets.append(value)


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if not _secrets:
        return event_dict
    return {
        key: redact(value)
        if isinstance(value, str)
        else (
            redact(repr(value)) if not isinstance(value, (int, float, bool, type(None))) else value
        )
        for key, value in event_dict.items()
    }


def configure(log_format: str | None = None, verbose: bool = False, stream=None) -> None:
    stream = stream or sys.stderr
    if log_format is None:
        log_format = "console" if stream.isatty() else "json"
    renderer = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if verbose else logging.INFO
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def announce_config(config, command: str) -> None:
    """Logs which configuration file, database and storage a command uses (never the token)."""
    from syncd.db.engine import describe
    from syncd.storage import describe_storage

    structlog.get_logger("syncd").info(
        "config.loaded",
        command=command,
        config=config.source,
        database=describe(config.database.url),
        storage=describe_storage(config.storage),
    )
