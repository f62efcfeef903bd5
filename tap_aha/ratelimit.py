"""The one client-side rate limiter every request of a run passes through, from any thread.

Aha! counts requests per account in a per-minute and a per-second window. Sliding windows over the
send times of our own requests never exceed either limit in any window the server may use.
"""

from __future__ import annotations

import threading
import time
from collections import deque

WINDOW_MARGIN = 0.25


class RateLimiter:
    """Blocks callers until a request fits under every window; a 429 pauses everyone."""

    def __init__(self, *, per_minute: int, per_second: int) -> None:
        """Keep the send times of the last `max(limits)` requests: enough to check every window."""
        # The margin absorbs network jitter: requests sent a window apart may arrive closer.
        self._windows = [(per_minute, 60.0 + WINDOW_MARGIN), (per_second, 1.0 + WINDOW_MARGIN)]
        self._sent: deque[float] = deque(maxlen=max(per_minute, per_second))
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for a free slot, then record one request as sent."""
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and self._sent[0] < now - self._windows[0][1]:
                    self._sent.popleft()  # out of every window: keep only the last minute's sends
                delay = self._delay(now)
                if delay <= 0:
                    self._sent.append(now)
                    return
            time.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every caller for `seconds` (Aha! said 429: the whole account is over its limit)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _delay(self, now: float) -> float:
        delay = self._paused_until - now
        for limit, span in self._windows:
            if len(self._sent) >= limit:
                oldest_in_window = self._sent[-limit]
                delay = max(delay, oldest_in_window + span - now)
        return delay
