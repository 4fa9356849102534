"""Buttons and LEDs on gpiozero's own MockFactory pins: press, bounce, hold, LEDs, presses during a burst."""

from __future__ import annotations

import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory

from appliance.config import ControlsConfig
from appliance.controls import Controls, make_pin_factory
from appliance.errors import ConflictError, DeviceError

CONFIG = ControlsConfig(pin_factory="mock", buttons=(17, 27, 22, 23), leds=(5, 6, 13, 19),
                        hold_seconds=0.3, bounce_seconds=0.05)


class Recorder:
    """on_teach / on_clear callbacks; a teach 'burst' lasts burst_s, like the real teacher's."""

    def __init__(self, burst_s: float = 0.0) -> None:
        self.burst_s = burst_s
        self.teach: list[int] = []
        self.clear: list[int] = []
        self.raise_conflict = False
        self.started = threading.Event()

    def on_teach(self, slot: int) -> None:
        self.teach.append(slot)
        self.started.set()
        if self.raise_conflict:
            raise ConflictError("a teaching burst is already running", "wait for it to finish")
        time.sleep(self.burst_s)

    def on_clear(self, slot: int) -> None:
        self.clear.append(slot)


@pytest.fixture
def factory():
    factory = MockFactory()
    yield factory
    factory.close()


@pytest.fixture
def rig(factory):
    recorder = Recorder()
    controls = Controls(CONFIG, recorder.on_teach, recorder.on_clear, pin_factory=factory)
    yield controls, recorder, factory
    controls.close()


def tap(factory, pin: int, down_s: float = 0.1) -> None:
    """A human press: down for down_s, then a pause (no finger presses twice within bounce_seconds)."""
    factory.pin(pin).drive_low()    # active low: pressed pulls the pin to ground
    time.sleep(down_s)
    factory.pin(pin).drive_high()
    time.sleep(0.08)


def led_states(factory) -> list[bool]:
    return [bool(factory.pin(p).state) for p in CONFIG.leds]


def test_press_teaches_that_slot_once(rig) -> None:
    controls, recorder, factory = rig
    tap(factory, 27)
    assert controls.wait_idle(5)
    assert recorder.teach == [2] and recorder.clear == []
    tap(factory, 23)
    assert controls.wait_idle(5)
    assert recorder.teach == [2, 4]


def test_bouncing_contact_is_one_press(rig) -> None:
    controls, recorder, factory = rig
    pin = factory.pin(17)
    pin.drive_low()
    time.sleep(0.005)
    pin.drive_high()                # chatter while the contact closes
    time.sleep(0.005)
    pin.drive_low()
    time.sleep(0.1)
    pin.drive_high()
    time.sleep(0.005)
    pin.drive_low()                 # chatter while it opens
    time.sleep(0.005)
    pin.drive_high()
    assert controls.wait_idle(5)
    time.sleep(0.1)
    assert recorder.teach == [1]


def test_hold_clears_and_does_not_teach(rig) -> None:
    controls, recorder, factory = rig
    factory.pin(22).drive_low()
    time.sleep(0.6)                 # hold_seconds is 0.3 here (3 s by default)
    assert recorder.clear == [3]
    factory.pin(22).drive_high()
    time.sleep(0.1)
    assert controls.wait_idle(5)
    assert recorder.teach == [] and recorder.clear == [3]


def test_recognised_led_only(rig) -> None:
    controls, _, factory = rig
    assert led_states(factory) == [False] * 4
    controls.set_recognised(2)
    assert led_states(factory) == [False, True, False, False]
    controls.set_recognised(4)
    assert led_states(factory) == [False, False, False, True]
    controls.set_recognised(None)
    assert led_states(factory) == [False] * 4
    controls.set_recognised(9)      # not a slot: nothing lit
    assert led_states(factory) == [False] * 4


def test_led_blinks_while_recording_then_restores(factory) -> None:
    recorder = Recorder(burst_s=1.5)
    controls = Controls(CONFIG, recorder.on_teach, recorder.on_clear, pin_factory=factory)
    try:
        controls.set_recognised(1)
        tap(factory, 27, 0.06)
        assert recorder.started.wait(5) and controls.recording == 2
        samples = []
        for _ in range(25):
            samples.append(led_states(factory))
            time.sleep(0.015)
        slot2 = {s[1] for s in samples}
        assert slot2 == {True, False}, "slot 2's LED should blink during the burst"
        assert all(not s[0] for s in samples), "other LEDs are off while recording"
        # presses during the burst are ignored, not queued
        tap(factory, 17, 0.06)
        time.sleep(0.06)
        tap(factory, 27, 0.06)
        assert controls.wait_idle(5)
        time.sleep(0.2)
        assert recorder.teach == [2] and controls.ignored_presses == 2
        assert led_states(factory) == [True, False, False, False]   # recognised slot 1 again
    finally:
        controls.close()


def test_teacher_busy_is_caught(rig) -> None:
    controls, recorder, factory = rig
    recorder.raise_conflict = True
    tap(factory, 17)
    assert controls.wait_idle(5)
    assert recorder.teach == [1] and controls.ignored_presses == 1 and controls.recording is None
    recorder.raise_conflict = False
    tap(factory, 17)
    assert controls.wait_idle(5) and recorder.teach == [1, 1]


def test_slot_labels(rig) -> None:
    controls, _, _ = rig
    assert controls.label_for(3) == "Class 3"  # which slot a label is: Classes.slot_of (test_slots.py)


def test_close_releases_pins(factory) -> None:
    recorder = Recorder()
    controls = Controls(CONFIG, recorder.on_teach, recorder.on_clear, pin_factory=factory)
    controls.set_recognised(1)
    controls.close()
    controls.close()
    again = Controls(CONFIG, recorder.on_teach, recorder.on_clear, pin_factory=factory)  # pins are free
    again.close()


def test_fewer_slots(factory) -> None:
    config = ControlsConfig(pin_factory="mock", buttons=(17, 27), leds=(5, 6), slot_labels=("Cat", "Dog"),
                            hold_seconds=0.3)
    recorder = Recorder()
    controls = Controls(config, recorder.on_teach, recorder.on_clear, pin_factory=factory)
    try:
        assert controls.slots == (1, 2) and controls.label_for(2) == "Dog"
        tap(factory, 27)
        assert controls.wait_idle(5) and recorder.teach == [2]
    finally:
        controls.close()


def test_pin_factories() -> None:
    mock, owned = make_pin_factory("mock")
    assert isinstance(mock, MockFactory) and owned
    mock.close()
    with pytest.raises(DeviceError, match="unknown GPIO pin factory"):
        make_pin_factory("wiringpi")


def test_auto_without_gpio_is_a_device_error() -> None:
    from gpiozero import Device

    if Device.pin_factory is not None and not isinstance(Device.pin_factory, MockFactory):
        pytest.skip("this machine has GPIO pins: auto-detection succeeds here")
    if Device.pin_factory is None:
        try:
            with pytest.raises(DeviceError) as err:
                make_pin_factory("auto")
        finally:
            Device.pin_factory = None
        assert 'pin_factory = "mock"' in err.value.fix
    Device.pin_factory = None
    try:
        Controls(ControlsConfig(), lambda s: None, lambda s: None)  # "auto" in the default config
    except DeviceError as exc:
        assert "no GPIO pins" in exc.problem
    else:
        pytest.skip("gpiozero found GPIO pins on this machine")
    finally:
        Device.pin_factory = None
