"""The expensive head fit, in a child process at nice 19: it cannot hold the camera loop's GIL.

A fit in a thread of the appliance's own process shares the interpreter lock with the inference thread;
a low-priority thread preempted while holding it stalls recognition (priority inversion), and numpy's
OpenBLAS pool runs at normal priority whatever the thread's nice value. In a child process the whole fit,
BLAS included, runs at nice 19 on one BLAS thread and at most DUTY of one core; the parent only waits on
a pipe. The child is started on the first fit and kept for the next ones; a fit the store has outdated
is abandoned inside the child at its next gradient step (a shared counter says so).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable

import numpy as np

from appliance.learning.heads import Head, fit_head

log = logging.getLogger(__name__)

DUTY = 0.5            # at most this share of one core
SLICE_S = 0.02        # work this long, then rest to keep DUTY
NICE = 19
WAIT_S = 0.05         # how often the parent looks at `cancelled` while waiting


def one_blas_thread() -> bool:
    """Make numpy's OpenBLAS run this thread's matrix products on this thread alone.

    OpenBLAS's worker threads run at normal priority and spin between calls: a fit on them would take every
    core whatever the fitting process's nice value. OpenBLAS 0.3.27+ (numpy 2's bundled build) has a
    per-thread setting for this. False where it is not found.
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


class Abandoned(Exception):
    """The fit was outdated (or the appliance is stopping) before it finished."""


def _serve(conn, epoch) -> None:
    """The child: fit heads on request until the pipe closes."""
    with contextlib.suppress(OSError):
        os.nice(NICE)
    one_blas_thread()
    while True:
        try:
            X, y, kind, job = conn.recv()
        except (EOFError, OSError):
            return
        since = [time.monotonic()]

        def pace(job: int = job, since: list[float] = since) -> None:
            if epoch.value != job:
                raise Abandoned
            worked = time.monotonic() - since[0]
            if worked >= SLICE_S:
                time.sleep(worked * (1.0 - DUTY) / DUTY)
                if epoch.value != job:
                    raise Abandoned
                since[0] = time.monotonic()

        try:
            head = fit_head(X, y, kind, pace=pace)
            fields = (head.kind, head.class_ids, head.weights, head.bias, head.scale, head.reason)
            answer = ("ok", job, fields)
        except Abandoned:
            answer = ("abandoned", job, None)
        except Exception as exc:  # reported to the parent, which logs it and keeps its head
            answer = ("error", job, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(answer)
        except OSError:  # the parent stopped listening (the appliance is stopping): nothing to report to
            return


class FitProcess:
    """fit(X, y, kind, cancelled) -> Head in the child; Abandoned when cancelled() turns true first."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._epoch = self._ctx.Value("q", 0, lock=False)
        self._proc = None
        self._conn = None
        self._job = 0

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self.close()
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_serve, args=(child, self._epoch), name="appliance-head-fit",
                                 daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent

    def fit(self, X: np.ndarray, y: np.ndarray, kind: str, cancelled: Callable[[], bool]) -> Head:
        self._ensure()
        self._job += 1
        job = self._job
        self._epoch.value = job
        self._conn.send((np.ascontiguousarray(X, np.float32), np.asarray(y, np.int64), kind, job))
        while True:
            if self._conn.poll(WAIT_S):
                status, done, payload = self._conn.recv()
                if done != job:  # the answer to an earlier, abandoned job
                    continue
                if status == "ok":
                    k, ids, weights, bias, scale, reason = payload
                    return Head(k, ids, weights, bias, scale, reason)
                if status == "abandoned":
                    raise Abandoned
                raise RuntimeError(f"the head-fitting process failed: {payload}")
            if not self._proc.is_alive():
                self.close()
                raise RuntimeError("the head-fitting process died")
            if cancelled():
                self._epoch.value = -job  # the child gives up at its next step
                raise Abandoned

    def close(self) -> None:
        """Stop the child (it holds nothing that needs saving)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self._epoch.value = 0  # no job has number 0: a running fit gives up at its next step
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
        if proc is not None:
            proc.join(timeout=0.5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=1.0)
            if proc.is_alive():  # pragma: no cover - terminate is enough for a numpy loop
                proc.kill()
