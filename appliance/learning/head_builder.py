"""HeadBuilder: follows the store on its own thread and hands finished heads to the recognizer.

Recognition never waits for learning: on a store change the builder first applies the new samples to the
running per-class sums (milliseconds) and publishes the imprinting head, then, once the store has been
quiet for a moment, has the configured head ("auto"'s cross-validation or the trained layer) fitted in a
child process at nice 19 with a bounded share of one core (learning.fit_process), abandoning the fit as
soon as the store changes again. Each result is published whole (one reference assignment).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from appliance.errors import StoreError
from appliance.learning.class_sums import ClassSums, Taught
from appliance.learning.fit_process import Abandoned, FitProcess
from appliance.learning.heads import Head, auto_eligible

log = logging.getLogger(__name__)

POLL_S = 0.1          # how often the store's version is looked at (one indexed SELECT)
QUIET_S = 1.0         # the store must be unchanged this long before the expensive fit starts


Publish = Callable[[Taught, Head | None, bool], None]


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
        self._fitter = FitProcess()
        self._thread = threading.Thread(target=self._run, name="head-builder", daemon=True)

    def start(self) -> HeadBuilder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._fitter.close()

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
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
                    try:
                        self._fit(taught)
                    except (Abandoned, StoreError):
                        raise
                    except Exception:  # no retry loop: the next change tries again
                        log.exception("fitting the %s head failed; keeping the imprinting head", self.kind)
                    self._fitted = generation
                self._last_error = ""
            except Abandoned:
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
        store = self.sums.store
        started = time.monotonic()
        head = self._fitter.fit(X, y, self.kind, lambda: self._stop.is_set()
                                or store.peek_version() not in (None, version))
        log.info("recognition head fitted at store version %d in %.1f s: %s (%d classes, %d samples)",
                 version, time.monotonic() - started, head.reason or head.kind, len(head.class_ids), len(y))
        self.publish(taught, head, False)
