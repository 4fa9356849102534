"""MqttBridge: the appliance on a broker — wires the connection, publisher, discovery, commands and fleet.

Started by System when `[mqtt] enabled`; it only reads the System (status, events, hub, store) and
changes classes through appliance.classes, like the web API. Nothing here can stop the appliance:
every broker problem becomes the `error` in status().
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import TYPE_CHECKING

from appliance import __version__
from appliance.errors import ApplianceError
from appliance.mqtt import discovery, fleet
from appliance.mqtt.commands import CommandRunner
from appliance.mqtt.connection import Connection, read_secret
from appliance.mqtt.publisher import Publisher
from appliance.mqtt.topics import Topics, public_url

if TYPE_CHECKING:  # the System starts the bridge; the bridge only reads it and calls its classes
    from appliance.system import System

log = logging.getLogger(__name__)

class MqttBridge:
    def __init__(self, system: System) -> None:
        config = system.config
        m = self.settings = config.mqtt
        self.system = system
        self.topics = Topics.from_config(config)
        self.url_base = public_url(config, system.web_server.port if system.web_server is not None else None)
        self.device = discovery.Device(name=m.device_name or f"Appliance {self.topics.device_id}",
                                       model="Teachable camera appliance", sw_version=__version__,
                                       configuration_url=self.url_base)
        subscriptions = [self.topics.command, f"{m.fleet_prefix}/+"]
        if m.discovery:
            subscriptions += [self.topics.ha_status, discovery.class_config_filter(self.topics)]
        self.conn = Connection(m, m.client_id or f"appliance-{self.topics.device_id}",
                               will_topic=self.topics.available, subscriptions=subscriptions,
                               on_connect=self._on_connect, on_message=self._on_message,
                               buffer_size=m.buffer_events)
        self.publisher = Publisher(system, self.conn, self.topics, m)
        self.commands: CommandRunner | None = None
        self.sets: dict[str, dict] = {}          # the latest announcement seen per set name
        self.fleet_errors: dict[str, str] = {}   # set name -> why its latest announcement was not imported
        self._sensors: dict[int, str] = {}       # class id -> label of the class sensors announced
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fleet_queue: queue.Queue[dict | None] = queue.Queue(16)
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._events = self.system.events.subscribe(maxsize=200)
        self.commands = CommandRunner(self.system.classes, self._reply)
        for target, name in ((self._event_loop, "mqtt-events"), (self._fleet_loop, "mqtt-fleet")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.conn.start()

    def stop(self) -> None:
        self._stop.set()
        self._events.close()
        self._fleet_queue.put(None)
        if self.commands is not None:
            self.commands.stop(0.5)
        self.conn.stop()
        for thread in self._threads:
            thread.join(1.0)

    def status(self) -> dict:
        return self.conn.status()

    # -- publishing ----------------------------------------------------------------------------
    def _event_loop(self) -> None:
        while not self._stop.is_set():
            item = self._events.get(timeout=1.0)
            try:
                if item is None:
                    self.publisher.publish_state()
                    continue
                event, data = item
                self.publisher.handle(event, data)
                if event == "classes" and self.settings.discovery:
                    self._sync_class_sensors(data.get("classes") or [])
            except Exception:  # a bad event must not end publishing
                log.exception("mqtt: publishing an event failed")

    def _on_connect(self) -> None:
        """Connected (again): every retained message is re-published, buffered events follow."""
        classes = self.publisher.publish_classes()
        if self.settings.discovery:
            self._publish_discovery(classes)
        self.publisher.publish_state(force=True)
        self.publisher.publish_snapshot(force=True)

    def _publish_discovery(self, classes: list[dict]) -> None:
        for topic, payload in discovery.entity_configs(self.topics, self.device,
                                                       tuple(self.system.config.controls.slot_labels)):
            self.conn.publish(topic, json.dumps(payload), qos=1, retain=True)
        with self._lock:
            self._sensors = {}
        self._sync_class_sensors(classes)

    def _sync_class_sensors(self, classes: list[dict]) -> None:
        """One "<label> in view" binary sensor per class: added, renamed, removed (empty retained config)."""
        current = {int(c["id"]): c["label"] for c in classes}
        with self._lock:
            before, self._sensors = self._sensors, current
        for class_id, label in current.items():
            if before.get(class_id) != label:
                topic, payload = discovery.class_config(self.topics, self.device, class_id, label)
                self.conn.publish(topic, json.dumps(payload), qos=1, retain=True)
        for class_id in set(before) - set(current):
            self._remove_sensor(class_id)

    def _remove_sensor(self, class_id: int) -> None:
        topic, _ = discovery.class_config(self.topics, self.device, class_id, "")
        self.conn.publish(topic, b"", qos=1, retain=True)

    # -- incoming ------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.topics.command:
            if self.commands is not None:
                self.commands.submit(payload)
        elif topic == self.topics.ha_status:
            if payload.strip() == b"online":  # Home Assistant (re)started: it forgot non-retained configs
                self._on_connect()
        elif topic.startswith(self.settings.fleet_prefix + "/"):
            self._announcement(topic[len(self.settings.fleet_prefix) + 1:], payload)
        else:
            class_id = discovery.class_id_of(topic, self.topics)
            with self._lock:
                stale = class_id is not None and payload and class_id not in self._sensors
            if stale:  # left retained by an earlier run for a class deleted since
                self._remove_sensor(class_id)

    def _reply(self, reply: dict) -> None:
        self.conn.publish(self.topics.reply, json.dumps(reply), qos=1, buffer=True)

    # -- fleet ---------------------------------------------------------------------------------
    def _announcement(self, name: str, payload: bytes) -> None:
        try:
            data = fleet.parse_announcement(name, payload)
        except ApplianceError as exc:
            self.fleet_errors[name] = exc.problem
            log.warning("mqtt: %s (fix: %s)", exc.problem, exc.fix)
            return
        if data is None:
            self.sets.pop(name, None)
            return
        self.sets[name] = data
        mine = data.get("publisher") == self.topics.device_id
        if name in self.settings.fleet_subscribe and not mine:
            try:
                self._fleet_queue.put_nowait(data)
            except queue.Full:
                log.warning("mqtt: too many class-set announcements waiting; %r v%s skipped", name,
                            data["version"])

    def _fleet_loop(self) -> None:
        password = None
        while True:
            data = self._fleet_queue.get()
            if data is None or self._stop.is_set():
                return
            try:
                if self.settings.fleet_password_file and password is None:
                    password = read_secret(self.settings.fleet_password_file, "fleet_password_file")
                fleet.apply_set(self.system, data, password=password)  # the import publishes `classes`
                self.fleet_errors.pop(data["name"], None)
            except ApplianceError as exc:
                self.fleet_errors[data["name"]] = exc.problem
                log.warning("mqtt: class set %r not imported: %s (fix: %s)", data["name"], exc.problem,
                            exc.fix)
            except Exception:
                log.exception("mqtt: importing class set %r failed", data.get("name"))

    def publish_set(self, name: str) -> dict:
        """Export the classes as set `name` and announce it (retained); -> the announcement."""
        fleet.check_name(name)
        if not self.conn.connected:
            raise ApplianceError(f"cannot announce class set {name!r}: not connected to the MQTT broker "
                                 f"({self.conn.error or 'connecting'})", "check the broker, then try again")
        previous = int((self.sets.get(name) or {}).get("version", 0))
        announcement = fleet.prepare_set(self.system.store, self.system.config.data_dir, name,
                                         url_base=self.url_base, publisher=self.topics.device_id,
                                         previous_version=previous)
        self.conn.publish(self.topics.fleet_set(name), json.dumps(announcement), qos=1, retain=True)
        self.sets[name] = announcement
        return announcement
