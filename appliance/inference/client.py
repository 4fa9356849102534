"""The appliance's side of one inference worker process: start it, hand it frames, read its results.

Any thread may submit; replies are matched to requests by number, and whichever waiting thread holds
the pipe reads for all of them. A worker that dies or does not answer in time raises WorkerError,
and stays dead: the supervisor starts a new one.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
import weakref

import numpy as np

from appliance.errors import DeviceError, ModelError
from appliance.inference import child
from appliance.inference.protocol import (
    SLOTS_PER_MODEL,
    ModelInfo,
    ModelSpec,
    create_slot_file,
    map_file,
    slot_layout,
    slot_views,
)
from appliance.vision import preprocess
from appliance.vision.model import Ran

log = logging.getLogger(__name__)

RESTART_FIX = ("the appliance restarts its inference worker by itself; if this repeats, run "
               "`appliance doctor` (it names the runtime and the fix)")


_LIVE: weakref.WeakSet = weakref.WeakSet()  # every WorkerClient not yet closed


def _kill_workers_at_exit() -> None:
    """A program that exits without closing its workers: kill them. (multiprocessing's own exit handler
    would send SIGTERM, which a worker leaves to the appliance, and then wait for it forever; this one is
    registered after it, at the first worker's start, so it runs first.)"""
    for client in list(_LIVE):
        with contextlib.suppress(Exception):
            if client.process.is_alive():
                client.process.kill()
                client.process.join(2.0)


class WorkerError(DeviceError):
    """The inference worker crashed, hung or is being restarted: try again shortly (HTTP 503)."""

    status = 503


def exit_reason(exitcode: int | None) -> str:
    """How a worker process ended, in words that follow "the inference worker": "was killed by SIGSEGV
    (segmentation fault)"."""
    if exitcode is None:
        return "is still running"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"was killed by signal {-exitcode}"
        words = {signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "abort()",
                 signal.SIGBUS: "bus error", signal.SIGILL: "illegal instruction"}.get(sig, "")
        return f"was killed by {sig.name}" + (f" ({words})" if words else "")
    return f"exited with status {exitcode}"


class _Slots:
    """Free slots per model; a slot is busy from submit until its outputs are copied out."""

    def __init__(self, count: int) -> None:
        self._free = list(range(count))
        self._cond = threading.Condition()

    def take(self, timeout: float) -> int | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._free, timeout):
                return None
            return self._free.pop()

    def give(self, slot: int) -> None:
        with self._cond:
            self._free.append(slot)
            self._cond.notify()


class _SlotInput:
    """What preprocess.set_input writes into: a slot's input view, with the model's input facts."""

    def __init__(self, info: ModelInfo, view: np.ndarray) -> None:
        self.input_size = tuple(info.input_size)
        self.input_detail = info.input_detail
        self._view = view

    def input_view(self) -> np.ndarray:
        return self._view


class Ticket:
    """One submitted inference: `wait` gives its Ran (outputs copied out) or raises WorkerError."""

    def __init__(self, client: WorkerClient, index: int, slot: int, request: int, scale, preprocess_ms,
                 timeout: float) -> None:
        self.client, self.index, self.slot, self.request = client, index, slot, request
        self.scale, self.preprocess_ms, self.timeout = scale, preprocess_ms, timeout

    def wait(self) -> Ran:
        return self.client.collect(self)


class WorkerClient:
    def __init__(self, specs: list[ModelSpec], *, start_timeout_s: float, result_timeout_s: float,
                 first_result_timeout_s: float) -> None:
        self.specs = list(specs)
        self.result_timeout_s = result_timeout_s
        self.first_result_timeout_s = first_result_timeout_s
        self.models: list[ModelInfo] = []
        self.died: str | None = None        # why it is no longer usable, after "the inference worker"
        self._answered: set[int] = set()    # models that have given one result (the first may be slow)
        self._requests = itertools.count(1)
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._reading = False
        self._results: dict[int, tuple] = {}
        self._slots: list[_Slots] = []
        self._views: list[list] = []
        self._buffers: list = []
        ctx = multiprocessing.get_context("spawn")
        self._conn, theirs = ctx.Pipe()
        self.process = ctx.Process(target=child.main, args=(theirs, self.specs, logging.getLogger().level),
                                   name="appliance-inference", daemon=True)
        self.process.start()
        if not _LIVE:
            atexit.unregister(_kill_workers_at_exit)
            atexit.register(_kill_workers_at_exit)  # after multiprocessing's: run before it
        _LIVE.add(self)
        theirs.close()
        try:
            self._handshake(start_timeout_s)
        except BaseException:
            self.close()
            raise

    # -- start ---------------------------------------------------------------------------------
    def _receive(self, timeout: float, doing: str) -> tuple:
        if not self._conn.poll(timeout):
            self._kill(f"gave no answer within {timeout:.0f} s while {doing} (hung)")
            raise WorkerError(f"the inference worker {self.died}", RESTART_FIX)
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            self.process.join(2.0)
            self.died = f"{exit_reason(self.process.exitcode)} while {doing}"
            raise WorkerError(f"the inference worker {self.died}", RESTART_FIX) from None

    def _handshake(self, timeout: float) -> None:
        message = self._receive(timeout, "loading the models")
        if message[0] == "error":
            _, kind, problem, fix = message
            self.died = f"could not load the models: {problem}"
            raise (ModelError if kind == "ModelError" else DeviceError)(problem, fix or RESTART_FIX)
        self.models = message[1]
        paths = []
        for info in self.models:
            size, _ = slot_layout(info)
            files = [create_slot_file(size) for _ in range(SLOTS_PER_MODEL)]
            paths.append(files)
        try:
            with self._send_lock:
                self._conn.send(("attach", paths))
            self._receive(timeout, "attaching shared memory")
            for info, files in zip(self.models, paths, strict=True):
                buffers = [map_file(p) for p in files]
                self._buffers.extend(buffers)
                self._views.append([slot_views(b, info) for b in buffers])
                self._slots.append(_Slots(SLOTS_PER_MODEL))
        finally:
            for files in paths:  # both sides have them mapped (or never will): nothing to leak
                for path in files:
                    with contextlib.suppress(OSError):
                        os.unlink(path)

    # -- running -------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        if self.died is None and not self.process.is_alive():
            self.process.join(0.1)
            self.died = exit_reason(self.process.exitcode)
        return self.died is None

    def _check(self) -> None:
        if not self.alive:
            raise WorkerError(f"the inference worker {self.died}", RESTART_FIX)

    def submit(self, index: int, rgb: np.ndarray, *, letterbox: bool = False) -> Ticket:
        """Take a free slot of model `index`, write `rgb` into its input (preprocessed here, straight into
        the shared memory) and send the request; `Ticket.wait()` gives the outputs."""
        self._check()
        timeout = self._timeout(index)
        slot = self._slots[index].take(timeout)
        if slot is None:
            self._kill(f"freed no input slot within {timeout:.0f} s (hung)")
            self._check()
        try:
            t0 = time.perf_counter()
            target = _SlotInput(self.models[index], self._views[index][slot][0][0])
            scale = preprocess.set_input(target, rgb, letterbox=letterbox)
            preprocess_ms = (time.perf_counter() - t0) * 1e3
            request = next(self._requests)
            with self._send_lock:
                self._conn.send(("run", request, index, slot))
        except (OSError, ValueError) as exc:  # the pipe broke: the worker is gone
            self._slots[index].give(slot)
            self._check()
            raise WorkerError(f"the inference worker cannot be reached ({exc})", RESTART_FIX) from exc
        except BaseException:
            self._slots[index].give(slot)
            raise
        return Ticket(self, index, slot, request, scale, preprocess_ms, timeout)

    def _timeout(self, index: int) -> float:
        return self.result_timeout_s if index in self._answered else self.first_result_timeout_s

    def collect(self, ticket: Ticket) -> Ran:
        try:
            message = self._await(ticket.request, ticket.timeout)
            if message[0] == "fail":
                raise DeviceError(message[2], message[3] or RESTART_FIX)
            outputs = [np.array(v) for v in self._views[ticket.index][ticket.slot][1]]
            self._answered.add(ticket.index)
            return Ran(outputs, ticket.scale, ticket.preprocess_ms, float(message[2]))
        finally:
            self._slots[ticket.index].give(ticket.slot)

    def _await(self, request: int, timeout: float) -> tuple:
        deadline = time.monotonic() + timeout
        with self._cond:
            while request not in self._results:
                self._check()
                left = deadline - time.monotonic()
                if left <= 0:
                    self._kill(f"gave no result within {timeout:.1f} s (hung)")
                    self._check()
                if self._reading:
                    self._cond.wait(min(left, 0.5))
                    continue
                self._reading = True
                self._cond.release()
                try:
                    message = self._conn.recv() if self._conn.poll(min(left, 0.5)) else None
                except (EOFError, OSError):
                    message = None
                    self.process.join(2.0)
                    if self.died is None:
                        self.died = exit_reason(self.process.exitcode)
                finally:
                    self._cond.acquire()
                    self._reading = False
                    self._cond.notify_all()
                if message is not None:
                    self._results[message[1]] = message
            return self._results.pop(request)

    # -- stop ----------------------------------------------------------------------------------
    def _kill(self, why: str) -> None:
        if self.died is None:
            self.died = why
        log.warning("inference worker: %s; stopping it", why)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2.0)
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Ask the worker to stop, kill it if it does not within a second, and unmap the slots."""
        if self.process.is_alive():
            try:
                with self._send_lock:
                    self._conn.send(("stop",))
            except (OSError, ValueError):
                pass
            self.process.join(1.0)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(1.0)
        if self.died is None:
            self.died = "was stopped"
        self._conn.close()  # the slots are unmapped when the last view of them is gone
