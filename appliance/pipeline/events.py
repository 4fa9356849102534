"""EventBus: recognition / classes / status / teach events for SSE and MQTT subscribers.

Each subscriber has its own bounded buffer; when a slow subscriber's buffer is full the OLDEST
event is dropped (the newest state matters most) and counted. publish() never blocks.
"""

from __future__ import annotations

import threading
from collections import deque


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._bus = bus
        self._cond = threading.Condition()
        self._items: deque[tuple[str, dict]] = deque(maxlen=maxsize)
        self.dropped = 0
        self.closed = False

    def _put(self, item: tuple[str, dict]) -> bool:
        """Queue an event; returns False when the oldest one had to be dropped to make room."""
        with self._cond:
            if self.closed:
                return True
            full = len(self._items) == self._items.maxlen
            if full:
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()
            return not full

    def get(self, timeout: float | None = None) -> tuple[str, dict] | None:
        """The next event, or None on timeout or when closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._items or self.closed, timeout)
            if self._items:
                return self._items.popleft()
            return None

    def pending(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self.dropped = 0  # events dropped over all subscribers

    def subscribe(self, maxsize: int = 100) -> Subscription:
        sub = Subscription(self, maxsize)
        with self._lock:
            self._subs.append(sub)
        return sub

    def publish(self, event: str, data: dict) -> None:
        with self._lock:
            subs = list(self._subs)
        dropped = sum(0 if sub._put((event, data)) else 1 for sub in subs)
        if dropped:
            with self._lock:
                self.dropped += dropped

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)

    def close(self) -> None:
        """Close every subscription (on shutdown) so SSE streams end."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.close()

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
