"""notify.py: sd_notify datagrams to a real AF_UNIX socket (a path and an abstract name)."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from syncd import notify


@pytest.fixture
def listener(tmp_path, monkeypatch):
    """A datagram socket bound in tmp_path, named in NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    if len(str(path)) >= 108:
        pytest.fail(f"socket path too long for AF_UNIX: {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


@pytest.fixture
def abstract_listener(monkeypatch):
    name = f"syncd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    return False


def test_ready_sends_one_ready_datagram(listener):
    assert notify.ready() is True
    assert received(listener) == "READY=1"
    assert nothing_waiting(listener)


def test_ready_with_status_sends_both_in_one_datagram(listener):
    assert notify.ready("migrations done")
    assert received(listener) == "READY=1\nSTATUS=migrations done"
    assert nothing_waiting(listener)


def test_each_message_is_its_own_datagram(listener):
    notify.status("catch_up running")
    notify.watchdog()
    notify.stopping()
    notify.extend_timeout(15_000_000)
    assert [received(listener) for _ in range(4)] == [
        "STATUS=catch_up running",
        "WATCHDOG=1",
        "STOPPING=1",
        "EXTEND_TIMEOUT_USEC=15000000",
    ]


def test_status_with_newlines_stays_one_line(listener):
    notify.status("line one\nREADY=1\n")
    assert received(listener) == "STATUS=line one READY=1"


def test_abstract_socket_name_with_at_sign_is_reached(abstract_listener):
    assert notify.watchdog() is True
    assert received(abstract_listener) == "WATCHDOG=1"


def test_everything_is_a_no_op_without_notify_socket(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert notify.ready() is False
    assert notify.status("x") is False
    assert notify.watchdog() is False
    assert notify.stopping() is False
    assert notify.extend_timeout(1) is False
    assert notify.watchdog_interval() is None


def test_a_socket_nobody_listens_on_is_dropped_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify.ready() is False


def test_extend_timeout_refuses_a_non_positive_time(listener):
    with pytest.raises(ValueError, match="positive"):
        notify.extend_timeout(0)


def test_watchdog_interval_is_half_of_watchdog_usec(listener, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert notify.watchdog_interval() == 15.0


def test_watchdog_interval_when_watchdog_pid_is_ours(listener, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify.watchdog_interval() == 2.0


def test_watchdog_interval_is_none_when_watchdog_pid_is_another_process(listener, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert notify.watchdog_interval() is None


@pytest.mark.parametrize("usec", ["", "0", "-5", "soon"])
def test_watchdog_interval_is_none_without_a_usable_watchdog_usec(listener, monkeypatch, usec):
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert notify.watchdog_interval() is None
