"""systemd's notify protocol (sd_notify(3)) with the standard library alone.

Each message is one datagram to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path, or an
abstract name written with a leading ``@``). Without ``NOTIFY_SOCKET`` every call does nothing
and returns False, so ``serve`` speaks the protocol the same way under systemd and outside it.
A message that cannot be sent is logged and dropped: systemd's own view of the service (a
start timeout, the watchdog) is what then acts, never an exception in the daemon.
"""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger("syncd.notify")


def _address() -> str | None:
    name = os.environ.get("NOTIFY_SOCKET", "")
    if not name:
        return None
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    log.warning("notify.unsupported_socket", socket=name)
    return None


def notify(*assignments: str) -> bool:
    """Send ``KEY=value`` lines as one datagram; True when it was sent."""
    address = _address()
    if address is None:
        return False
    message = "\n".join(assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as exc:
        log.warning("notify.failed", message=assignments[0], error=str(exc))
        return False
    return True


def ready(status_text: str | None = None) -> bool:
    """Start-up is done (``READY=1``), with a status line when given."""
    if status_text is None:
        return notify("READY=1")
    return notify("READY=1", _status_line(status_text))


def status(text: str) -> bool:
    """A one-line status that ``systemctl status`` shows."""
    return notify(_status_line(text))


def watchdog() -> bool:
    """Tell the watchdog the service is alive (``WATCHDOG=1``)."""
    return notify("WATCHDOG=1")


def stopping() -> bool:
    """Shutting down (``STOPPING=1``)."""
    return notify("STOPPING=1")


def extend_timeout(usec: int) -> bool:
    """Ask for ``usec`` more microseconds before the start or stop timeout fires."""
    if usec <= 0:
        raise ValueError(f"extend_timeout needs a positive number of microseconds, not {usec}")
    return notify(f"EXTEND_TIMEOUT_USEC={int(usec)}")


def watchdog_interval() -> float | None:
    """Seconds between ``watchdog()`` calls: half of ``$WATCHDOG_USEC``, when the watchdog is on
    for this process (``$WATCHDOG_PID`` unset or ours) and there is a socket to ping; else
    None."""
    if _address() is None:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


def _status_line(text: str) -> str:
    # A newline would start a new assignment: the status is one line.
    return "STATUS=" + " ".join(text.split())
