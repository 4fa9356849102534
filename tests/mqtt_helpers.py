"""A real Mosquitto broker for the MQTT tests: a free 127.0.0.1 port, a password file made with
mosquitto_passwd, and optionally a TLS listener on a test CA made here with openssl. Plus a small
paho subscriber that records what the broker delivers."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

USER, PASSWORD = "appliance", "s3cret-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_mosquitto() -> None:
    for tool in ("mosquitto", "mosquitto_passwd", "openssl"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.skip(f"{tool} is not installed: ./dev.sh test installs Debian's mosquitto and openssl")


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed test CA: (cert, key)."""
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", f"/CN={name}", cwd=folder)
    return cert, key


def make_server_cert(folder: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 / localhost signed by `ca`: (cert, key)."""
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=localhost", cwd=folder)
    _run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
         "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext), cwd=folder)
    return cert, key


class Broker:
    """mosquitto on 127.0.0.1: a password listener on `port` and, with tls=True, a TLS one on `tls_port`."""

    def __init__(self, folder: Path, *, tls: bool = False, persistence: bool = False) -> None:
        need_mosquitto()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.passwd = folder / "passwd"
        _run("mosquitto_passwd", "-c", "-b", str(self.passwd), USER, PASSWORD, cwd=folder)
        self.password_file = folder / "password.txt"
        self.password_file.write_text(PASSWORD + "\n")
        self.ca = make_ca(folder, "test-ca") if tls else None
        lines = ["per_listener_settings true", "log_dest stderr", "log_type all",
                 f"persistence {str(persistence).lower()}", f"persistence_location {folder}/"]
        if os.geteuid() == 0:
            lines.append("user root")  # read the files made here (else mosquitto drops to its own user)
        lines += [f"listener {self.port} 127.0.0.1", "allow_anonymous false", f"password_file {self.passwd}"]
        if tls:
            cert, key = make_server_cert(folder, self.ca)
            lines += [f"listener {self.tls_port} 127.0.0.1", "allow_anonymous false",
                      f"password_file {self.passwd}", f"cafile {self.ca[0]}", f"certfile {cert}",
                      f"keyfile {key}"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.log = folder / "mosquitto.log"
        self.start()

    def start(self) -> None:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([mosquitto, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None

    def settings(self, config: Any, **mqtt: Any) -> Any:
        """`config` with [mqtt] enabled against this broker (password listener unless overridden)."""
        base = dict(enabled=True, host="127.0.0.1", port=self.port, username=USER,
                    password_file=str(self.password_file), keepalive_s=5)
        base.update(mqtt)
        return dataclasses.replace(config, mqtt=dataclasses.replace(config.mqtt, **base))


class Watcher:
    """A paho client subscribed to `topics`, recording (topic, payload, retain) as they arrive."""

    def __init__(self, broker: Broker, *topics: str, session: str | None = None) -> None:
        """session: a client id whose subscriptions the broker keeps while it is away (clean session off)."""
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, clean_session=session is None,
                                  client_id=session or f"watcher-{free_port()}")
        self.client.reconnect_delay_set(0.2, 0.5)
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_message = self._on_message
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_connect = (lambda c, *a: c.subscribe([(t, 1) for t in topics])) if topics else (
            lambda *a: ready.set())
        self.client.connect("127.0.0.1", broker.port, 30)
        self.client.loop_start()
        assert ready.wait(10), "the watcher could not connect and subscribe"

    def _on_message(self, _c, _u, message) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self._cond.notify_all()

    def on(self, topic: str) -> list[bytes]:
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[Any]:
        return [json.loads(p) for p in self.on(topic) if p]

    def wait(self, predicate, timeout: float = 20.0) -> Any:
        """Wait until predicate(self) is truthy; its value, or AssertionError with what arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({t for t, _, _ in self.messages})
                    raise AssertionError(f"not seen within {timeout} s; topics seen: {seen}")
                self._cond.wait(min(left, 0.2))

    def publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
