"""sd_notify over a real AF_UNIX datagram socket, and a watchdog that stops when the pipeline stalls."""

import os
import socket
import threading
import time
import uuid

import pytest

from appliance import service
from appliance.pipeline.stats import Stats


class NotifySocket:
    """A real NOTIFY_SOCKET, as systemd binds it; collects the datagrams the service sends."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []

    def drain(self, seconds: float) -> list[str]:
        end = time.monotonic() + seconds
        got = []
        while time.monotonic() < end:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data))
            got.append(data)
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    sock = NotifySocket(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


def test_no_socket_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert service.notify("READY=1") is False
    assert service.watchdog_interval({}) is None


def test_ready_status_stopping_reach_the_socket(notify_socket):
    assert service.ready("cpu, 3 classes")
    assert service.status("line one\nline two")
    assert service.stopping()
    got = notify_socket.drain(0.3)
    assert got == ["READY=1\nSTATUS=cpu, 3 classes", "STATUS=line one line two",
                   "STOPPING=1\nSTATUS=stopping"]


def test_abstract_namespace_socket(monkeypatch):
    name = f"appliance-test-{uuid.uuid4().hex}"
    sock = NotifySocket("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert service.watchdog_ping()
        assert sock.drain(0.2) == ["WATCHDOG=1"]
    finally:
        sock.close()


def test_unreachable_socket_does_not_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert service.notify("READY=1") is False


def test_watchdog_interval_from_env():
    assert service.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert service.watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}) == 0.1
    assert service.watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}) is None
    assert service.watchdog_interval({"WATCHDOG_USEC": "junk"}) is None


def test_status_line_is_one_line():
    line = service.status_line({"backend": "edgetpu", "fps": {"capture": 30.0, "inference": 29.5},
                                "inference_ms": 4.2, "classes": 3, "source": "picamera",
                                "connected": False})
    assert line == ("edgetpu, 30.0 fps capture, 29.5 fps inference, 4.2 ms, 3 classes, "
                    "source picamera (no signal)")


def _advancing(stats: Stats, stop: threading.Event) -> None:
    """What the capture and inference threads report to Stats while frames flow."""
    while not stop.is_set():
        stats.frame_captured()
        stats.inference_started()
        stats.inference_finished(1.0)
        stop.wait(0.02)


def test_watchdog_pings_only_while_the_pipeline_advances(notify_socket):
    stats = Stats(source="folder:test")
    max_age = 0.3

    def healthy() -> bool:  # what System.healthy() asks: recent frames and inferences, no hung invoke
        return stats.healthy(max_age)

    stop_feeding = threading.Event()
    feeder = threading.Thread(target=_advancing, args=(stats, stop_feeding), daemon=True)
    feeder.start()
    svc = service.Service(healthy, lambda: service.status_line(stats.snapshot()),
                          env={"WATCHDOG_USEC": "100000"}, status_every=0.2)
    try:
        svc.ready()
        first = notify_socket.drain(0.6)
        assert first[0].startswith("READY=1\nSTATUS=cpu")
        assert first.count("WATCHDOG=1") >= 3
        assert any(m.startswith("STATUS=") for m in first[1:])

        stop_feeding.set()  # capture and inference stall
        feeder.join()
        notify_socket.drain(max_age + 0.3)  # pings may continue until the frames are max_age old
        stalled = notify_socket.drain(1.0)
        assert "WATCHDOG=1" not in stalled
        assert svc.watchdog.withheld >= 3

        stop_feeding.clear()  # frames flow again: pings resume
        feeder = threading.Thread(target=_advancing, args=(stats, stop_feeding), daemon=True)
        feeder.start()
        assert "WATCHDOG=1" in notify_socket.drain(0.6)
    finally:
        stop_feeding.set()
        svc.stopping()
    assert notify_socket.drain(0.2)[-1].startswith("STOPPING=1")


def test_failing_health_check_counts_as_stalled(notify_socket):
    def broken() -> bool:
        raise RuntimeError("boom")

    dog = service.Watchdog(broken, interval=0.05)
    assert dog.check_once() is False
    assert notify_socket.drain(0.1) == []
