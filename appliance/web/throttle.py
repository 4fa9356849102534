"""Password guessing is throttled per client address, and all guessing together gets a fixed CPU share.

Per address: the first few wrong passwords cost nothing extra; after that each one locks the address out
for twice as long as the last (1 s, 2 s, 4 s ... up to 5 minutes), and a try during a lock-out is answered
429 with Retry-After before any password is checked. One address's failures never lock out another.
Globally: each scrypt check is charged its CPU time against a budget that refills at a fixed share of one
core, so guesses from many addresses at once cannot take more than that from recognition (when it is
spent, unverified tries get 429 for a second). Addresses that have failed draw on one budget and
addresses with a clean record on another, so guessing from one address never stops a right password
from another. A valid session cookie or an already verified bearer token never reaches the throttle.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.errors import ApplianceError

FREE_FAILURES = 3
FIRST_LOCK_S = 1.0
MAX_LOCK_S = 300.0
CPU_SHARE = 0.1        # of one core, for the checks of addresses that have failed before
CLEAN_CPU_SHARE = 0.05  # of one core, for the checks of addresses with a clean record (first tries)
CPU_BURST_S = 0.2      # checks that may run back to back after a quiet spell (a few scrypt checks)
FIRST_ESTIMATE_S = 0.05  # what one check is assumed to cost until one has been measured
FORGET_S = 3600.0      # an address's failures are forgotten after this long without one
MAX_ADDRESSES = 10000


class TooManyAttemptsError(ApplianceError):
    """Too many wrong passwords (HTTP 429, with Retry-After)."""

    status = 429

    def __init__(self, problem: str, fix: str, retry_after: float) -> None:
        super().__init__(problem, fix)
        self.retry_after = max(1, math.ceil(retry_after))


class _Budget:
    """CPU seconds for password checks, refilling at `share` of one core up to `burst`."""

    def __init__(self, share: float, burst: float, now: float) -> None:
        self.share, self.burst = share, burst
        self.left = burst
        self._refilled = now

    def take(self, cost: float, now: float) -> bool:
        """Reserve `cost`; False when not enough is left (then Retry-After is `wait(cost)`)."""
        self.left = min(self.burst, self.left + (now - self._refilled) * self.share)
        self._refilled = now
        if self.left < cost:
            return False
        self.left -= cost
        return True

    def wait(self, cost: float) -> float:
        return (cost - self.left) / self.share


@dataclass
class _Address:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic, cpu_share: float = CPU_SHARE,
                 cpu_burst_s: float = CPU_BURST_S, clean_cpu_share: float = CLEAN_CPU_SHARE) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._addresses: dict[str, _Address] = {}
        self._failing = _Budget(cpu_share, cpu_burst_s, clock())
        self._clean = _Budget(clean_cpu_share, cpu_burst_s, clock())
        self._estimate = FIRST_ESTIMATE_S   # CPU seconds one check costs (running average)
        self.refused = 0

    def attempt(self, address: str, verify: Callable[[], bool]) -> bool:
        """Run `verify` (a password check) for `address` unless throttled; TooManyAttemptsError if so."""
        budget, reserved = self._admit(address)
        started = time.thread_time()
        try:
            ok = verify()
        finally:
            spent = time.thread_time() - started
            with self._lock:  # the reservation made at admission becomes the measured cost
                budget.left += reserved - spent
                self._estimate = 0.8 * self._estimate + 0.2 * spent
        (self.succeeded if ok else self.failed)(address)
        return ok

    def _admit(self, address: str) -> tuple[_Budget, float]:
        """The CPU seconds reserved for this check; raises when the address or the budget says no.

        The cost is reserved up front, so checks admitted at the same moment on several server threads
        cannot together overrun the budget."""
        now = self._clock()
        with self._lock:
            entry = self._addresses.get(address)
            if entry is not None and entry.locked_until > now:
                self.refused += 1
                raise TooManyAttemptsError(
                    f"too many wrong passwords from {address}: {entry.failures} in a row",
                    "wait the seconds in Retry-After, then try the right password "
                    "(set a new one with `appliance passwd` if it is lost)", entry.locked_until - now)
            budget = self._failing if entry is not None and entry.failures else self._clean
            if not budget.take(self._estimate, now):
                self.refused += 1
                raise TooManyAttemptsError(
                    "too many password attempts on this appliance right now",
                    "wait a second and retry; a logged-in page and an already accepted bearer token "
                    "are not affected", budget.wait(self._estimate))
            return budget, self._estimate

    def failed(self, address: str) -> None:
        now = self._clock()
        with self._lock:
            entry = self._addresses.get(address)
            if entry is None or now - entry.last > FORGET_S:
                self._prune(now)
                entry = self._addresses[address] = _Address()
            entry.failures += 1
            entry.last = now
            extra = entry.failures - FREE_FAILURES
            if extra > 0:
                entry.locked_until = now + min(MAX_LOCK_S, FIRST_LOCK_S * 2 ** (extra - 1))

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._addresses.pop(address, None)

    def _prune(self, now: float) -> None:
        if len(self._addresses) < MAX_ADDRESSES:
            return
        for address, entry in list(self._addresses.items()):
            if now - entry.last > FORGET_S and entry.locked_until <= now:
                del self._addresses[address]
        while len(self._addresses) >= MAX_ADDRESSES:  # under a spray of addresses: forget the oldest
            del self._addresses[min(self._addresses, key=lambda a: self._addresses[a].last)]
