"""One broker connection, kept up by its own thread: a growing pause between attempts, errors in words.

Broker trouble never stops the appliance: a broker down at start or lost later is retried with a pause
that doubles up to MAX_PAUSE_S; refused credentials and TLS failures wait the longest pause (a clear
error line once, not a reconnect storm). Events published while disconnected wait in a bounded buffer
(the oldest are dropped and counted); retained messages are re-published by `on_connect` instead.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho

from appliance.errors import ApplianceError

if TYPE_CHECKING:
    from appliance.config import MqttConfig

log = logging.getLogger(__name__)

MIN_PAUSE_S = 0.5
MAX_PAUSE_S = 15.0
LOOP_S = 0.2
CONNECT_TIMEOUT_S = 5.0
PAHO_QUEUE = 1000
LOGIN_FIX = ("check [mqtt] username and the password in password_file (mosquitto_passwd sets it on the "
             "broker), and that the broker allows this user")
AUTH_FAILURES = {  # Mosquitto answers a wrong password with "not authorized" (MQTT 3.1.1 return code 5)
    134: ("the broker refused the login: bad username or password", LOGIN_FIX),
    135: ("the broker refused the login: not authorized (wrong username or password, or a user it does "
          "not allow)", LOGIN_FIX),
}


class ClosedBeforeAccepting(Exception):
    """The broker hung up before its CONNACK: often plain MQTT sent to a TLS listener."""


def read_secret(path: str, key: str) -> str:
    """The first line of a password file; an ApplianceError naming the key and the fix."""
    try:
        return Path(path).expanduser().read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        why = "is empty" if isinstance(exc, IndexError) else f"cannot be read ({exc})"
        raise ApplianceError(f"mqtt: [mqtt] {key} {path} {why}",
                             f"put the password alone on the first line of {path}, readable by the service "
                             "(chmod 600, owned by the appliance user)") from None


def make_client(settings: MqttConfig, client_id: str) -> paho.Client:
    """A paho client with the credentials and TLS of `[mqtt]` (ApplianceError for unreadable files)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True,
                         protocol=paho.MQTTv311)
    client.connect_timeout = CONNECT_TIMEOUT_S
    if settings.username:
        password = read_secret(settings.password_file, "password_file") if settings.password_file else None
        client.username_pw_set(settings.username, password)
    if settings.tls_ca:
        try:
            client.tls_set(ca_certs=None if settings.tls_ca == "system" else settings.tls_ca,
                           certfile=settings.tls_cert or None, keyfile=settings.tls_key or None)
        except (OSError, ssl.SSLError) as exc:
            raise ApplianceError(f"mqtt: the TLS files in [mqtt] cannot be used: {exc}",
                                 "check tls_ca (the CA's PEM file), tls_cert and tls_key exist, are PEM and "
                                 "readable by the service") from None
    return client


def _drop_unsent_retained(client: paho.Client) -> None:
    """Forget retained messages the last connection left unacknowledged.

    paho re-sends them after the next CONNACK, *after* on_connect has published the current state, so a
    stale retained state or class list would overwrite the new one. Events (not retained) are kept and
    re-sent: QoS 1 is at least once. paho 2.x keeps them in `_out_messages` (pinned major version).
    """
    mutex, messages = getattr(client, "_out_message_mutex", None), getattr(client, "_out_messages", None)
    if mutex is None or messages is None:
        return
    with mutex:
        for mid in [mid for mid, msg in messages.items() if msg.retain]:
            del messages[mid]


def describe_error(exc: BaseException, host: str, port: int) -> tuple[str, str, bool]:
    """(problem, fix, fatal) for a failed connection attempt."""
    where = f"{host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS: the broker's certificate at {where} was not accepted ({exc.verify_message})",
                "set [mqtt] tls_ca to the CA that signed the broker's certificate, and host to a name "
                "the certificate holds", True)
    if isinstance(exc, ssl.SSLError):
        return (f"TLS handshake with {where} failed ({exc.reason or exc})",
                "check that port is the broker's TLS listener (usually 8883) and the tls_cert / tls_key pair",
                True)
    if isinstance(exc, ClosedBeforeAccepting):
        return (f"the broker at {where} closed the connection before accepting it",
                "if that port is a TLS listener, set [mqtt] tls_ca (and check port)", False)
    if isinstance(exc, socket.gaierror):
        return (f"cannot resolve the broker host {host!r}", "check [mqtt] host", False)
    if isinstance(exc, ConnectionRefusedError):
        return (f"cannot connect to the broker at {where}: connection refused",
                "check that the broker runs and [mqtt] host / port", False)
    if isinstance(exc, TimeoutError | socket.timeout):
        return (f"no answer from the broker at {where}", "check the network and [mqtt] host / port", False)
    return (f"cannot connect to the broker at {where}: {exc}", "check [mqtt] host / port", False)


class Connection:
    def __init__(self, settings: MqttConfig, client_id: str, *, will_topic: str, subscriptions: list[str],
                 on_connect: Callable[[], None], on_message: Callable[[str, bytes], None],
                 buffer_size: int = 100) -> None:
        self.settings = settings
        self.client_id = client_id
        self.will_topic = will_topic
        self.subscriptions = list(subscriptions)
        self._on_connect_hook = on_connect
        self._on_message_hook = on_message
        self._lock = threading.Lock()
        self._buffer: deque[tuple[str, bytes, int, bool]] = deque(maxlen=max(1, buffer_size))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: paho.Client | None = None
        self._refused: tuple[str, str] | None = None
        self.connected = False
        self.error: str | None = None
        self.fix: str | None = None
        self.dropped = 0       # events dropped: buffer full while disconnected
        self.published = 0     # messages handed to the broker connection
        self.connects = 0
        self.disconnected_at: float | None = time.monotonic()
        self.last_reconnect_s: float | None = None  # from the first attempt after a loss to CONNACK

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; an unreadable password or TLS file is an error line, not a crash."""
        try:
            client = make_client(self.settings, self.client_id)
        except ApplianceError as exc:
            self._set_error(exc.problem, exc.fix)
            return
        client.will_set(self.will_topic, "offline", qos=1, retain=True)
        # paho's own queue holds QoS 1 messages until acknowledged (a burst on reconnect is many): bounded
        # well above one reconnect's worth, so only a connection that silently died can fill it
        client.max_queued_messages_set(PAHO_QUEUE)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self._client = client
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.5) -> None:
        """Publish `offline` (a clean stop sends no will), disconnect, end the thread."""
        client = self._client
        if client is not None and self.connected:
            try:
                info = client.publish(self.will_topic, "offline", qos=1, retain=True)
                info.wait_for_publish(timeout / 2)
            except (RuntimeError, ValueError, OSError):
                pass
        self._stop.set()
        if client is not None:
            with contextlib.suppress(OSError):
                client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout)
        self.connected = False

    # -- publishing --------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False,
                buffer: bool = False) -> bool:
        """Send now when connected; `buffer` keeps it for the reconnect (bounded), else it is skipped."""
        data = payload.encode() if isinstance(payload, str) else payload
        with self._lock:
            if not self.connected or self._client is None:
                if buffer:
                    if len(self._buffer) == self._buffer.maxlen:
                        self.dropped += 1
                    self._buffer.append((topic, data, qos, retain))
                return False
            client = self._client
        info = client.publish(topic, data, qos=qos, retain=retain)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            with self._lock:
                self.dropped += 1
            return False
        with self._lock:
            self.published += 1
        return info.rc in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN)

    def status(self) -> dict:
        with self._lock:
            error = None if self.connected else self.error
            return {"enabled": True, "connected": self.connected, "error": error,
                    "dropped_events": self.dropped}

    # -- the connection thread ---------------------------------------------------------------
    def _run(self) -> None:
        pause = MIN_PAUSE_S
        assert self._client is not None
        client = self._client
        while not self._stop.is_set():
            self._refused = None
            attempt_at = time.monotonic()
            _drop_unsent_retained(client)
            try:
                client.connect(self.settings.host, self.settings.port, self.settings.keepalive_s)
                while not self._stop.is_set() and self._refused is None:
                    rc = client.loop(LOOP_S)
                    if rc != paho.MQTT_ERR_SUCCESS:
                        if not self.connected and self._refused is None:
                            raise ClosedBeforeAccepting()
                        break
            except Exception as exc:  # any failure here is a line in the status, never a dead thread
                if self._lost():
                    pause = MIN_PAUSE_S  # it had worked: start the growing pause again
                problem, fix, fatal = describe_error(exc, self.settings.host, self.settings.port)
                self._set_error(problem, fix)
                self._wait(MAX_PAUSE_S if fatal else pause)
                pause = min(pause * 2, MAX_PAUSE_S)
                continue
            was_connected = self._lost()
            if self._stop.is_set():
                break
            if self._refused is not None:
                self._set_error(*self._refused)
                self._wait(MAX_PAUSE_S)
                continue
            if was_connected:
                self._set_error("disconnected from the broker: the connection was lost",
                                "the appliance reconnects by itself; check the broker if this lasts")
                pause = MIN_PAUSE_S
            elif time.monotonic() - attempt_at < 1.0:
                pause = min(pause * 2, MAX_PAUSE_S)
            self._wait(pause)
        with contextlib.suppress(Exception):
            client.loop(0.1)  # flush the DISCONNECT

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _lost(self) -> bool:
        with self._lock:
            was = self.connected
            self.connected = False
            if was:
                self.disconnected_at = time.monotonic()
        return was

    def _set_error(self, problem: str, fix: str) -> None:
        with self._lock:
            changed = problem != self.error
            self.error, self.fix = problem, fix
        if changed:
            log.warning("mqtt: %s (fix: %s)", problem, fix)

    # -- paho callbacks (in the connection thread) -------------------------------------------
    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            value = getattr(reason, "value", None)
            self._refused = AUTH_FAILURES.get(value, (f"the broker refused the connection: {reason}",
                                                      "check the broker's log and [mqtt] settings"))
            return
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        with self._lock:
            self.connected = True
            self.connects += 1
            if self.disconnected_at is not None:
                self.last_reconnect_s = time.monotonic() - self.disconnected_at
                self.disconnected_at = None
            if self.error:
                log.info("mqtt: connected to %s:%s", self.settings.host, self.settings.port)
            self.error = self.fix = None
            pending = list(self._buffer)
            self._buffer.clear()
        client.publish(self.will_topic, "online", qos=1, retain=True)
        try:
            self._on_connect_hook()
        except Exception:
            log.exception("mqtt: re-publishing after connecting failed")
        for topic, data, qos, retain in pending:
            self.publish(topic, data, qos=qos, retain=retain, buffer=True)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: Any) -> None:
        try:
            self._on_message_hook(message.topic, bytes(message.payload))
        except Exception:
            log.exception("mqtt: handling a message on %s failed", message.topic)
