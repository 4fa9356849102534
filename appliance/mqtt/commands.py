"""JSON commands on `<prefix>/command`, answered on `<prefix>/command/reply`.

The same rules, label checks and errors as the HTTP API (both go through appliance.classes).
The broker's ACLs are the authorisation: whoever may publish to the command topic may teach and delete.
Commands run one at a time in their own thread (a teach burst takes about a second), never in the
network thread; a full queue is answered "busy" rather than waited for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable

from appliance.classes import Classes, class_dict
from appliance.errors import ApplianceError
from appliance.learning.store import ClassInfo

log = logging.getLogger(__name__)

QUEUE_SIZE = 8
ACTIONS = ("teach", "rename", "delete", "clear")
EXAMPLE = '{"action": "teach", "label": "cat"}'


def _int(data: dict, key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApplianceError(f'"{key}" must be a whole number, not {json.dumps(value)}',
                             f'send e.g. "{key}": 1')
    return value


def parse(payload: bytes) -> dict:
    """The command as a JSON object with a known action, or ApplianceError saying what to send."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApplianceError(f"the command is not valid JSON ({exc})", f"send a JSON object, e.g. {EXAMPLE}"
                             ) from None
    if not isinstance(data, dict):
        raise ApplianceError("the command must be a JSON object", f"send e.g. {EXAMPLE}")
    action = data.get("action")
    if action not in ACTIONS:
        raise ApplianceError(f"unknown action {json.dumps(action)}", f"use one of: {', '.join(ACTIONS)}")
    return data


def _target(classes: Classes, data: dict, label_key: str = "label") -> ClassInfo:
    class_id = _int(data, "class_id")
    if class_id is not None:
        return classes.get(class_id)
    if label_key not in data:
        raise ApplianceError(f'the command has neither "class_id" nor "{label_key}"',
                             f"send e.g. {json.dumps({**data, 'class_id': 1})}")
    return classes.find(data[label_key])


def execute(classes: Classes, data: dict) -> ClassInfo | None:
    """Run one parsed command; -> ClassInfo (or None: a slot that was never taught)."""
    action = data["action"]
    slot = _int(data, "slot")
    if action == "teach":
        if slot is not None:
            return classes.teach_slot(slot)
        class_id = _int(data, "class_id")
        if class_id is not None:
            return classes.add_samples(class_id)
        if "label" not in data:
            raise ApplianceError('a teach command needs "label", "class_id" or "slot"',
                                 f"send e.g. {EXAMPLE}")
        return classes.teach(data["label"])
    if action == "rename":
        if "label" not in data:
            raise ApplianceError('a rename command needs the new "label"',
                                 'send e.g. {"action": "rename", "class_id": 1, "label": "dog"}')
        return classes.rename(_target(classes, data, "from").id, data["label"])
    if action == "delete":
        return classes.delete(_target(classes, data).id)
    if slot is None:  # clear
        raise ApplianceError('a clear command needs "slot"', 'send e.g. {"action": "clear", "slot": 1}')
    return classes.clear_slot(slot)


def reply_for(data: dict | None, info: ClassInfo | None = None, error: ApplianceError | None = None) -> dict:
    out: dict = {"id": (data or {}).get("id"), "action": (data or {}).get("action")}
    if error is not None:
        out.update(ok=False, error=error.problem, fix=error.fix)
    else:
        out.update(ok=True, **({"class": class_dict(info)} if info is not None else {}))
    return out


def _id_only(payload: bytes) -> dict | None:
    """The command's id and action when it is a JSON object, so even a refused command's reply names them."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return {"id": data.get("id"), "action": data.get("action")} if isinstance(data, dict) else None


class CommandRunner:
    """Takes raw command payloads from the network thread, runs them one by one, sends each reply."""

    def __init__(self, classes: Classes, send_reply: Callable[[dict], None]) -> None:
        self.classes = classes
        self.send_reply = send_reply
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="mqtt-commands", daemon=True)
        self._thread.start()

    def submit(self, payload: bytes) -> None:
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self.send_reply(reply_for(None, error=ApplianceError(
                "too many commands are waiting", "wait for the replies, then send the command again")))

    def stop(self, timeout: float = 1.0) -> None:
        with contextlib.suppress(queue.Full):  # a full queue: the daemon thread ends with the process
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            data = _id_only(payload)
            try:
                data = parse(payload)
                reply = reply_for(data, execute(self.classes, data))
            except ApplianceError as exc:
                reply = reply_for(data, error=exc)
            except Exception as exc:  # a bug must not end the command thread
                log.exception("mqtt command failed")
                reply = reply_for(data, error=ApplianceError(f"internal error: {type(exc).__name__}",
                                                             "see the appliance log and report the problem"))
            try:
                self.send_reply(reply)
            except Exception:
                log.exception("mqtt: sending a command reply failed")
