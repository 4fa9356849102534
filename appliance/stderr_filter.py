"""Quiet stderr for the `appliance` command: runtime chatter only with --verbose, the CPU notice once.

TFLite's C++ runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to file
descriptor 2 each time it builds an interpreter, in this process and in the inference worker (which
inherits the descriptor), and no setting of ai-edge-litert turns it off. So the command points fd 2 at a
pipe and a thread copies it to the real stderr, dropping those lines, and letting the "no Edge TPU found:
running on the CPU" notice through once (the appliance and its worker would each say it).
"""

from __future__ import annotations

import os
import re
import sys
import threading

DROP = re.compile(rb"^INFO: (Created|Initialized|Replacing) TensorFlow Lite")
# the notice as a log line of its own (the appliance's "WARNING: ..." or the worker's "WARNING inference
# worker: ..."); a line that only mentions it, such as run's "serving: ...; WARNING: ..." line, always shows
ONCE = re.compile(rb"^WARNING(?::| [\w. ]+:) (no Edge TPU found: running on the CPU)")


def keep_line(line: bytes, seen: set[bytes]) -> bool:
    """Whether a stderr line is shown: not TFLite's INFO chatter, and the CPU notice only the first time."""
    if DROP.match(line):
        return False
    once = ONCE.match(line)
    if once:
        if once.group(1) in seen:
            return False
        seen.add(once.group(1))
    return True


class StderrFilter:
    """Filters file descriptor 2 (and so the children started meanwhile) until stop()."""

    def __init__(self) -> None:
        self._saved: int | None = None
        self._read: int | None = None
        self._thread: threading.Thread | None = None
        self._seen: set[bytes] = set()

    def start(self) -> StderrFilter:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._thread = threading.Thread(target=self._pump, name="stderr-filter", daemon=True)
        self._thread.start()
        return self

    def _pump(self) -> None:
        out, pending = self._saved, b""
        try:
            while chunk := os.read(self._read, 65536):
                *lines, pending = (pending + chunk).split(b"\n")
                shown = b"".join(line + b"\n" for line in lines if keep_line(line, self._seen))
                if pending and not (b"INFO: ".startswith(pending[:6]) or DROP.match(pending)):
                    shown, pending = shown + pending, b""  # a prompt or partial line: show it now
                if shown:
                    os.write(out, shown)
            if pending and keep_line(pending, self._seen):
                os.write(out, pending)
        except OSError:
            pass
        finally:
            os.close(self._read)
            os.close(out)

    def stop(self, timeout: float = 1.0) -> None:
        """Give fd 2 back; the copying ends when the last child holding the pipe has gone."""
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        if self._thread is not None:
            self._thread.join(timeout)
