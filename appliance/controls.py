"""Buttons and LEDs per class slot (gpiozero), like Coral's teachable machine.

Press a slot's button: teach that slot (on release, so that a hold is not also a press). Hold it for
`hold_seconds`: clear that slot. Each slot's LED is lit while its class is recognised and blinks while a
teaching burst records. Presses during a burst are ignored, not queued: the burst runs in its own thread
and gpiozero's callback thread is never blocked.

Debouncing: gpiozero asks the pin driver for `bounce_seconds` (lgpio does it in hardware), and Controls
also ignores any edge within `bounce_seconds` of the previous accepted one, so behaviour is the same on
drivers without it (MockFactory, for tests and --demo).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import warnings
from collections.abc import Callable

from appliance.config import ControlsConfig
from appliance.errors import ApplianceError, ConflictError, DeviceError
from appliance.slots import slot_label

log = logging.getLogger(__name__)

FACTORIES = {
    "mock": "gpiozero.pins.mock:MockFactory",
    "lgpio": "gpiozero.pins.lgpio:LGPIOFactory",
    "rpigpio": "gpiozero.pins.rpigpio:RPiGPIOFactory",
    "pigpio": "gpiozero.pins.pigpio:PiGPIOFactory",
    "native": "gpiozero.pins.native:NativeFactory",
}
NO_GPIO_FIX = ("on a Raspberry Pi install the GPIO library (Pi 5: sudo apt install python3-lgpio, with "
               "the venv created using --system-site-packages); elsewhere set [controls] "
               'pin_factory = "mock" or enabled = false (appliance run --demo uses mock pins)')
BLINK_S = 0.15  # on and off time of a recording LED


def make_pin_factory(name: str):
    """A gpiozero pin factory by config name; "auto" is gpiozero's own detection (lgpio on a Pi 5).

    Returns (factory, owned): `owned` is False for the process-wide auto factory, which we must not close.
    """
    from gpiozero import Device

    if name == "auto":
        with warnings.catch_warnings(record=True) as fallbacks:
            warnings.simplefilter("always")
            try:
                Device.ensure_pin_factory()
            except Exception as exc:
                tried = "; ".join(str(w.message) for w in fallbacks) or str(exc)
                raise DeviceError(f"no GPIO pins found for the buttons and LEDs ({tried})",
                                  NO_GPIO_FIX) from exc
        return Device.pin_factory, False
    if name not in FACTORIES:
        raise DeviceError(f'unknown GPIO pin factory "{name}"',
                          f"use one of: auto, {', '.join(FACTORIES)}")
    module_name, class_name = FACTORIES[name].split(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)(), True
    except Exception as exc:
        raise DeviceError(f'the GPIO pin factory "{name}" cannot be used: {exc}', NO_GPIO_FIX) from exc


class Controls:
    """Buttons (teach / hold-to-clear) and LEDs for class slots 1..N (N = len(config.buttons), at most 4)."""

    def __init__(self, config: ControlsConfig, on_teach: Callable[[int], object],
                 on_clear: Callable[[int], object], pin_factory=None) -> None:
        from gpiozero import LED, Button

        self.config = config
        self.on_teach = on_teach
        self.on_clear = on_clear
        self.slots = tuple(range(1, len(config.buttons) + 1))
        self.ignored_presses = 0      # presses dropped because a burst was running
        self.teach_errors = 0
        if pin_factory is None:
            self.factory, self._owns_factory = make_pin_factory(config.pin_factory)
        else:
            self.factory, self._owns_factory = pin_factory, False
        self._lock = threading.RLock()
        self._recording: int | None = None
        self._recognised: int | None = None
        self._held = dict.fromkeys(self.slots, False)
        self._last_edge = dict.fromkeys(self.slots, -1e9)
        self._pressed = dict.fromkeys(self.slots, False)
        self._burst: threading.Thread | None = None
        self.buttons: dict[int, Button] = {}
        self.leds: dict[int, LED] = {}
        bounce = config.bounce_seconds or None
        try:
            for slot, (button_pin, led_pin) in zip(self.slots, zip(config.buttons, config.leds, strict=True),
                                                   strict=True):
                button = Button(button_pin, pull_up=True, bounce_time=bounce, hold_time=config.hold_seconds,
                                pin_factory=self.factory)
                button.when_pressed = lambda _dev=None, s=slot: self._pressed_edge(s)
                button.when_released = lambda _dev=None, s=slot: self._released_edge(s)
                button.when_held = lambda _dev=None, s=slot: self._held_edge(s)
                self.buttons[slot] = button
                self.leds[slot] = LED(led_pin, pin_factory=self.factory)
        except Exception as exc:
            self.close()
            if isinstance(exc, ApplianceError):
                raise
            raise DeviceError(f"the GPIO pins for the buttons and LEDs cannot be set up: {exc}",
                              "check [controls] buttons and leds are free BCM pins (no other program "
                              "or overlay uses them)") from exc

    # -- slots and labels ----------------------------------------------------------------------

    def label_for(self, slot: int) -> str:
        """The class label a slot teaches (config slot_labels)."""
        return slot_label(self.config.slot_labels, slot)

    @property
    def recording(self) -> int | None:
        """The slot whose LED blinks for a running burst, or None."""
        return self._recording

    # -- button edges (gpiozero's callback thread) ---------------------------------------------

    def _debounced(self, slot: int) -> bool:
        """True when this edge is chatter: within bounce_seconds of the last accepted edge."""
        now = time.monotonic()
        if now - self._last_edge[slot] < self.config.bounce_seconds:
            return True
        self._last_edge[slot] = now
        return False

    def _pressed_edge(self, slot: int) -> None:
        if self._debounced(slot):
            return
        self._pressed[slot] = True
        self._held[slot] = False

    def _held_edge(self, slot: int) -> None:
        if not self._pressed[slot]:
            return
        self._held[slot] = True
        if self._recording is not None:
            self.ignored_presses += 1
            log.info("button %d held during a teaching burst: ignored", slot)
            return
        log.info("button %d held: clearing slot %d (%s)", slot, slot, self.label_for(slot))
        try:
            self.on_clear(slot)
        except ApplianceError as exc:
            log.warning("clearing slot %d failed: %s", slot, exc)
        except Exception:
            log.exception("clearing slot %d failed", slot)

    def _released_edge(self, slot: int) -> None:
        if self._debounced(slot) or not self._pressed[slot]:
            return
        self._pressed[slot] = False
        if self._held[slot]:          # that was a hold (clear), not a press
            self._held[slot] = False
            return
        self.press(slot)

    def press(self, slot: int) -> bool:
        """Teach `slot` in a background burst; False (ignored) when a burst is already running."""
        with self._lock:
            if self._recording is not None:
                self.ignored_presses += 1
                log.info("button %d pressed during a teaching burst: ignored", slot)
                return False
            self.set_recording(slot)
            self._burst = threading.Thread(target=self._teach, args=(slot,), name=f"teach-slot-{slot}",
                                           daemon=True)
            self._burst.start()
            return True

    def _teach(self, slot: int) -> None:
        log.info("button %d pressed: teaching slot %d (%s)", slot, slot, self.label_for(slot))
        try:
            self.on_teach(slot)
        except ConflictError as exc:  # the teacher is busy (e.g. a burst started from the page)
            self.ignored_presses += 1
            log.info("teaching slot %d ignored: %s", slot, exc.problem)
        except ApplianceError as exc:
            self.teach_errors += 1
            log.warning("teaching slot %d failed: %s", slot, exc)
        except Exception:
            self.teach_errors += 1
            log.exception("teaching slot %d failed", slot)
        finally:
            self.set_recording(None)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for a running burst to finish (tests, shutdown); True when idle."""
        burst = self._burst
        if burst is not None:
            burst.join(timeout)
        return self._recording is None

    # -- LEDs ----------------------------------------------------------------------------------

    def set_recognised(self, slot: int | None) -> None:
        """Light this slot's LED only (None: all off). Cheap when nothing changes: call it per result."""
        with self._lock:
            if slot is not None and slot not in self.leds:
                slot = None
            if slot == self._recognised:
                return
            self._recognised = slot
            if self._recording is None:
                self._show_recognised()

    def set_recording(self, slot: int | None) -> None:
        """Blink this slot's LED while a burst records (also for bursts from the web page); None restores."""
        with self._lock:
            self._recording = slot if slot in self.leds else None
            if self._recording is None:
                self._show_recognised()
                return
            for other, led in self.leds.items():
                if other != slot:
                    led.off()
            self.leds[slot].blink(on_time=BLINK_S, off_time=BLINK_S, background=True)

    def _show_recognised(self) -> None:
        for slot, led in self.leds.items():
            if slot == self._recognised:
                led.on()
            else:
                led.off()

    def close(self) -> None:
        """Release the pins (LEDs off); safe to call twice."""
        for device in [*self.buttons.values(), *self.leds.values()]:
            try:
                device.close()
            except Exception as exc:
                log.debug("closing %r failed: %s", device, exc)
        self.buttons, self.leds = {}, {}
        if self._owns_factory:
            try:
                self.factory.close()
            except Exception as exc:
                log.debug("closing the pin factory failed: %s", exc)
            self._owns_factory = False
