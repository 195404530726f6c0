"""sd_notify helper against a real unix datagram socket, as systemd would hold it."""

from __future__ import annotations

import socket

import pytest

from firmware_config.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_ready_watchdog_status_arrive_as_datagrams(listener):
    path, sock = listener
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "30000000"})
    assert n.enabled and n.watchdog_interval() == 15.0
    assert n.ready("connected to broker")
    assert sock.recv(4096) == b"READY=1\nSTATUS=connected to broker"
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert n.status("2 readers\nok")
    assert sock.recv(4096) == b"STATUS=2 readers ok"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_socket_address():
    name = f"instore-test-{id(object())}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_no_socket_is_a_noop():
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False
    assert n.watchdog_interval() is None


def test_vanished_socket_does_not_raise(tmp_path):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.enabled
    assert n.ready() is False
