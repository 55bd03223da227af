"""structlog set-up: JSON lines off a terminal, console lines on one; the token never appears."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any


def _import_structlog_without_rich() -> Any:
    """structlog imports rich (about 50 ms, a third of syncd's own start-up) only to offer
    rich tracebacks, which syncd does not use: exceptions are rendered by
    ``format_exc_info`` (JSON) or ``plain_traceback`` (console). rich is hidden while structlog
    loads, unless it is loaded already; the progress display imports it when it draws."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        import structlog

        return structlog
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog
    finally:
        del sys.modules["rich"]
    return structlog


structlog = _import_structlog_without_rich()

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


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time: while a live progress display shows,
    rich has put a proxy there that prints each line above the display."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(log_format: str | None = None, level: int = logging.INFO, stream=None) -> None:
    stream = stream or _CurrentStderr()
    if log_format is None:
        log_format = "console" if stream.isatty() else "json"
    renderer = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
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
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def announce_config(config, command: str) -> str:
    """Logs which configuration file, database and storage a command uses (never the token),
    and returns the same as one line for a progress display (which hides info lines)."""
    from syncd.db.engine import describe
    from syncd.storage import describe_storage

    where = {
        "config": config.source,
        "database": describe(config.database.url),
        "storage": describe_storage(config.storage),
    }
    structlog.get_logger("syncd").info("config.loaded", command=command, **where)
    return "  ".join(f"{key} {value}" for key, value in where.items())
