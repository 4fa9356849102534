"""HeadBuilder: follows the store on its own low-priority thread and hands finished heads to the recognizer.

Recognition never waits for learning: on a store change the builder first applies the new samples to the
running per-class sums (milliseconds) and publishes the imprinting head, then, once the store has been
quiet for a moment, fits the configured head ("auto"'s cross-validation or the trained layer) with a
bounded share of the CPU (it sleeps as long as it worked past a duty cycle, and runs at nice 19), abandoning
the fit as soon as the store changes again. Its matrix products run on its own thread only (not on
OpenBLAS's pool). Each result is published whole (one reference assignment).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable

from appliance.errors import StoreError
from appliance.learning.class_sums import ClassSums, Taught
from appliance.learning.heads import Head, auto_eligible, fit_head

log = logging.getLogger(__name__)

POLL_S = 0.1          # how often the store's version is looked at (one indexed SELECT)
QUIET_S = 1.0         # the store must be unchanged this long before the expensive fit starts
DUTY = 0.5            # at most this share of one core for the expensive fit
SLICE_S = 0.02        # work this long, then sleep to keep DUTY
NICE = 19


Publish = Callable[[Taught, Head | None, bool], None]


def one_blas_thread() -> bool:
    """Make numpy's OpenBLAS run this thread's matrix products on this thread alone.

    OpenBLAS's worker threads were started by the main thread at normal priority and spin between calls;
    a fit on them would take every core from recognition whatever this thread's nice value. OpenBLAS
    0.3.27+ (numpy 2's bundled build) has a per-thread setting for this. False where it is not found.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        return False
    for path in sorted(paths):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(path).openblas_set_num_threads_local(ctypes.c_int(1))
            return True
    return False


class Outdated(Exception):
    """The store changed while a head was being fitted: the fit is abandoned."""


class HeadBuilder:
    """Publishes through `publish(taught, head, keep_head)`; `stop()` ends the thread within POLL_S."""

    def __init__(self, sums: ClassSums, kind: str, publish: Publish) -> None:
        self.sums = sums
        self.kind = kind
        self.publish = publish
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._fitted = 0    # the sample generation whose configured head is published (or not needed)
        self._last_error = ""
        self.builds = 0
        self._thread = threading.Thread(target=self._run, name="head-builder", daemon=True)

    def start(self) -> HeadBuilder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def poke(self) -> None:
        """Look at the store now rather than at the next poll (e.g. right after a teach)."""
        self._wake.set()

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # per-thread nice on Linux; best effort elsewhere
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        if not one_blas_thread():
            log.debug("OpenBLAS per-thread setting not found: head fits may use every core")
        changed_at = time.monotonic()
        generation = 0       # bumps whenever the samples change (a rename does not)
        published = None     # the store version last published
        while not self._stop.is_set():
            try:
                taught, changed = self.sums.update()
                if changed or self.builds == 0:
                    generation += 1
                    self.publish(taught, taught.imprint_head(self._interim_reason(taught)), False)
                    self.builds += 1
                    changed_at = time.monotonic()
                elif taught.version != published:
                    self.publish(taught, None, True)   # labels only: keep the head, take the new names
                published = taught.version
                if self._fitted != generation and time.monotonic() - changed_at >= QUIET_S:
                    self._fit(taught)
                    self._fitted = generation
                self._last_error = ""
            except Outdated:
                continue
            except StoreError as exc:  # e.g. locked by another process: keep the head, retry later
                if str(exc) != self._last_error:
                    log.warning("keeping the current recognition head: %s", exc)
                    self._last_error = str(exc)
            except Exception:  # never let the builder die: the camera keeps the head it has
                log.exception("building the recognition head failed; keeping the current one")
                self._stop.wait(1.0)
            self._wake.wait(POLL_S)
            self._wake.clear()

    def _interim_reason(self, taught: Taught) -> str:
        if self.kind == "imprint":
            return ""
        return f"imprint while the {self.kind} head is being fitted ({len(taught.samples)} classes)"

    def _fit(self, taught: Taught) -> None:
        """The configured head for `taught`, published unless the store moved on meanwhile."""
        version = taught.version
        if self.kind == "imprint":
            return
        X, y = taught.training_data()
        if self.kind == "auto" and not auto_eligible(y):  # auto's answer is imprinting: say why
            self.publish(taught, taught.imprint_head(
                "imprint: fewer than 2 classes, or a class with fewer than 2 samples"), False)
            return
        started = time.monotonic()
        head = fit_head(X, y, self.kind, pace=self._pacer(version))
        log.info("recognition head fitted at store version %d in %.1f s: %s (%d classes, %d samples)",
                 version, time.monotonic() - started, head.reason or head.kind, len(head.class_ids), len(y))
        self.publish(taught, head, False)

    def _pacer(self, version: int) -> Callable[[], None]:
        """Between two gradient steps: give up if the store moved on, and rest to keep the duty cycle
        (resting in POLL_S naps, each followed by a look at the store, so a new class waits at most one
        step of a fit that is being abandoned)."""
        since = [time.monotonic()]
        store = self.sums.store

        def outdated() -> bool:
            return self._stop.is_set() or store.peek_version() not in (None, version)

        def pace() -> None:
            if outdated():
                raise Outdated
            worked = time.monotonic() - since[0]
            if worked < SLICE_S:
                return
            until = time.monotonic() + worked * (1.0 - DUTY) / DUTY
            while (left := until - time.monotonic()) > 0:
                self._stop.wait(min(left, POLL_S))
                if outdated():
                    raise Outdated
            since[0] = time.monotonic()

        return pace
