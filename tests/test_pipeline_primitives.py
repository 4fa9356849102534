"""Unit tests for the pipeline's small parts: slot, stats, hub, events."""

import threading
import time

from appliance.pipeline.events import EventBus
from appliance.pipeline.hub import FrameHub
from appliance.pipeline.slot import LatestSlot
from appliance.pipeline.stats import Stats


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- slot ---------------------------------------------------------------------------------------
def test_slot_keeps_only_newest_and_counts_drops():
    slot = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.dropped == 4
    assert slot.take(timeout=0) == (5, 4)
    assert slot.take(timeout=0) is None  # nothing new
    slot.put(9)
    assert slot.take(timeout=0) == (6, 9)
    assert slot.dropped == 4


def test_slot_take_wakes_on_put_and_close():
    slot = LatestSlot()
    got = []
    t = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    t.start()
    time.sleep(0.05)
    slot.put("frame")
    t.join(2)
    assert got == [(1, "frame")]
    t = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    t.start()
    slot.close()
    t.join(2)
    assert not t.is_alive() and got[-1] is None


# -- stats --------------------------------------------------------------------------------------
def test_stats_rates_counts_and_snapshot_keys():
    clock = FakeClock()
    stats = Stats(mode="detect", source="demo", backend="cpu", backend_warning="no TPU", clock=clock)
    for _ in range(21):
        stats.frame_captured()
        clock.now += 0.05  # 20 fps
    for _ in range(11):
        stats.inference_started()
        clock.now += 0.1
        stats.inference_finished(100.0)
    stats.frames_dropped(3)
    stats.set_connection(True, 2)
    snap = stats.snapshot()
    assert snap["fps"]["inference"] == 10.0
    assert snap["frames_captured"] == 21 and snap["inferences"] == 11
    assert snap["dropped_frames"] == 3 and snap["reconnects"] == 2 and snap["connected"] is True
    assert snap["backend"] == "cpu" and snap["backend_warning"] == "no TPU" and snap["mode"] == "detect"
    assert snap["inference_ms"] == 100.0 and snap["last_inference_age_s"] == 0.0
    for key in ("uptime_s", "source", "last_frame_age_s"):
        assert key in snap


def test_stats_capture_fps_window():
    clock = FakeClock()
    stats = Stats(clock=clock)
    for _ in range(41):
        stats.frame_captured()
        clock.now += 0.04  # 25 fps
    clock.now -= 0.04
    assert abs(stats.snapshot()["fps"]["capture"] - 25.0) < 0.5
    clock.now += 10  # nothing for a while: the rate falls to zero
    assert stats.snapshot()["fps"]["capture"] == 0.0


def test_stats_healthy_detects_stale_frames_and_hung_invoke():
    clock = FakeClock()
    stats = Stats(clock=clock)
    stats.set_connection(True, 0)
    assert stats.healthy(10)  # just started
    clock.now += 11
    assert not stats.healthy(10)  # nothing ever arrived
    stats.frame_captured()
    stats.inference_started()
    stats.inference_finished(5)
    assert stats.healthy(10)
    stats.inference_started()  # an invoke starts and hangs while frames keep coming
    for _ in range(8):
        clock.now += 1.5
        stats.frame_captured()
    assert stats.stalled_for() == 12.0
    assert not stats.healthy(10)
    stats.inference_finished(12000)
    assert stats.healthy(10)
    clock.now += 11
    assert not stats.healthy(10)  # no frames and no inferences


def test_stats_disconnected_camera_is_healthy_while_the_loop_shows_no_signal():
    clock = FakeClock()
    stats = Stats(clock=clock)
    stats.set_connection(True, 0)
    stats.frame_captured()
    stats.inference_finished(5)
    stats.set_connection(False, 1)
    for _ in range(10):
        clock.now += 2
        stats.tick()
    assert stats.healthy(10)  # 20 s without camera frames or inferences, but the loop is alive
    clock.now += 11
    assert not stats.healthy(10)


def test_stats_stage_means():
    stats = Stats()
    stats.add_stage("invoke", 10)
    stats.add_stage("invoke", 20)
    stats.add_stage("encode", 3)
    assert stats.stages_ms() == {"invoke": 15.0, "encode": 3.0}
    stats.reset_stages()
    assert stats.stages_ms() == {}


# -- hub ----------------------------------------------------------------------------------------
def test_hub_one_publish_wakes_every_viewer():
    hub = FrameHub()
    seq0, _ = hub.latest()
    results = []
    ready = threading.Barrier(21)

    def viewer():
        ready.wait()
        results.append(hub.wait_next(seq0, timeout=5))

    threads = [threading.Thread(target=viewer) for _ in range(20)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(0.05)
    hub.publish(b"jpeg-1")
    for t in threads:
        t.join(2)
    assert len(results) == 20 and all(r == (1, b"jpeg-1") for r in results)


def test_hub_publish_never_waits_for_a_viewer_that_does_not_read():
    hub = FrameHub()
    seq, _ = hub.latest()  # a viewer took a seq and went silent
    start = time.monotonic()
    for i in range(1000):
        hub.publish(b"x%d" % i)
    assert time.monotonic() - start < 1.0
    assert hub.wait_next(seq, timeout=0) == (1000, b"x999")
    assert hub.wait_next(1000, timeout=0.01) == (1000, b"x999")  # timeout returns the latest


def test_hub_close_wakes_viewers():
    hub = FrameHub()
    done = []
    t = threading.Thread(target=lambda: done.append(hub.wait_next(0, timeout=10)))
    t.start()
    time.sleep(0.05)
    hub.close()
    t.join(2)
    assert done == [(0, None)] and hub.closed


# -- events -------------------------------------------------------------------------------------
def test_events_delivered_in_order_to_each_subscriber():
    bus = EventBus()
    a, b = bus.subscribe(), bus.subscribe()
    bus.publish("teach", {"state": "started"})
    bus.publish("classes", {"classes": []})
    for sub in (a, b):
        assert sub.get(timeout=1) == ("teach", {"state": "started"})
        assert sub.get(timeout=1) == ("classes", {"classes": []})
        assert sub.get(timeout=0.01) is None


def test_events_slow_subscriber_is_bounded_and_drops_are_counted():
    bus = EventBus()
    slow = bus.subscribe(maxsize=5)
    fast = bus.subscribe(maxsize=1000)
    for i in range(50):
        bus.publish("status", {"i": i})
        assert fast.get(timeout=1) == ("status", {"i": i})
    assert slow.pending() == 5 and slow.dropped == 45 and bus.dropped == 45
    assert slow.get(timeout=0)[1] == {"i": 45}  # the oldest were dropped, the newest kept


def test_events_close_unsubscribes_and_wakes():
    bus = EventBus()
    sub = bus.subscribe()
    got = []
    t = threading.Thread(target=lambda: got.append(sub.get(timeout=10)))
    t.start()
    time.sleep(0.05)
    sub.close()
    t.join(2)
    assert got == [None] and bus.subscriber_count() == 0
    bus.publish("status", {})  # no subscribers: fine
