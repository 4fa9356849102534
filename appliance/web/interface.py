"""What the web layer needs of the running appliance: appliance.system.System is the one that gives it.

The routes see only this, so a reader knows what the page can reach and a test can tell what to build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # types only: the web layer never imports the System that serves it
    from appliance.classes import Classes
    from appliance.config import Config
    from appliance.mqtt.bridge import MqttBridge
    from appliance.pipeline.events import EventBus
    from appliance.pipeline.hub import FrameHub
    from appliance.pipeline.result import Result


@runtime_checkable
class Appliance(Protocol):
    config: Config
    classes: Classes          # every change to the taught classes goes through it
    events: EventBus          # what SSE relays
    hub: FrameHub             # the latest annotated JPEG, for the stream and the snapshot
    mqtt: MqttBridge | None   # None when [mqtt] is off

    def status(self) -> dict: ...

    def latest_result(self) -> Result | None: ...

    def healthy(self, max_age_s: float | None = None) -> bool: ...

    def retry_accelerator(self) -> str: ...
