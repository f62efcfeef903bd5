"""The one client-side rate limiter every request passes through, shared by every process of this machine.

Aha! counts requests per account in a per-minute and a per-second window. Sliding windows over the send
times of the account's requests never exceed either limit in any window the server may use.

Those send times, and the pause a 429 asks for, live in one small file per API URL under the temporary
directory (named by a hash of the URL, never the key), guarded by a `filelock` lock: every tap run, Lakeflow
table and thread on this machine that reads the same account counts against one budget. The OS drops the
lock of a process that dies; a torn or foreign file is started afresh; a file that cannot be used at all
leaves this process with a limit of its own, after one warning.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import threading
import time
import typing as t
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

logger = logging.getLogger(__name__)
_T = t.TypeVar("_T")

WINDOW_MARGIN = 0.25
# Send times the shared file may keep (80 kB): a limit above this is not checked, the benchmark's scaled
# ones are. It keeps only those of the last minute that the largest limit in use needs: 2.4 kB for Aha!'s 300.
SHARED_SENDS = 10_000
LOCK_TIMEOUT = 10.0  # seconds; the lock is held for microseconds, so only a stalled peer gets near it
_SPAN = 60.0 + WINDOW_MARGIN
_MAGIC = 9.0  # format version, first value of the file
_HEADER = 5  # magic, paused_until, keep, keep_until, number of send times
_MAX_PAUSE = 3600.0  # a pause further ahead comes from a clock that went back
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # never write through a symlink someone planted in the temp dir


@dataclass
class _Log:
    """Send times (wall clock, ascending) and the end of a 429 pause: the state every limiter shares.

    `keep` is how many send times the limiters of the last minute need (the largest of their limits), so a
    limiter with a small limit never drops what one with a larger limit counts on.
    """

    sends: array[float] = field(default_factory=lambda: array("d"))
    paused_until: float = 0.0
    keep: float = 0.0
    keep_until: float = 0.0
    changed: bool = False

    def delay(self, now: float, windows: list[tuple[int, float]]) -> float:
        """Seconds until one more request fits under every window and the pause."""
        delay = self.paused_until - now
        for limit, span in windows:
            if len(self.sends) >= limit:
                delay = max(delay, self.sends[-limit] + span - now)
        return delay

    def add(self, now: float, keep: int) -> None:
        """Record one request sent now by a limiter that needs `keep` send times; forget what none needs."""
        if keep >= self.keep or now > self.keep_until:
            self.keep, self.keep_until = keep, now + _SPAN
        self.sends.append(now)
        del self.sends[: max(bisect_right(self.sends, now - _SPAN), len(self.sends) - int(self.keep))]
        self.changed = True

    def pause(self, until: float) -> None:
        """Hold every request until `until`."""
        if until > self.paused_until:
            self.paused_until = until
            self.changed = True

    def encode(self) -> bytes:
        """The file's bytes: a header of doubles, then the send times."""
        header = array("d", [_MAGIC, self.paused_until, self.keep, self.keep_until, len(self.sends)])
        return (header + self.sends).tobytes()

    @classmethod
    def decode(cls, raw: bytes, now: float) -> _Log:
        """The state in `raw`, or a fresh one when it is torn, foreign or from a clock that went back."""
        values = array("d")
        if len(raw) % values.itemsize == 0:
            values.frombytes(raw)
        if (
            len(values) < _HEADER
            or values[0] != _MAGIC
            or values[4] != len(values) - _HEADER
            or not 0 <= values[2] <= SHARED_SENDS
            or not all(map(math.isfinite, values[1:_HEADER]))
        ):
            return cls()
        sends = values[bisect_right(values, now - _SPAN, _HEADER) : bisect_right(values, now, _HEADER)]
        return cls(sends, min(values[1], now + _MAX_PAUSE), values[2], min(values[3], now + _SPAN))


def state_path(api_url: str) -> Path:
    """The shared state of one account: a file in the temporary directory named by a hash of the URL."""
    digest = hashlib.sha256(api_url.encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"tap-aha-ratelimit-{digest}"


class RateLimiter:
    """Blocks callers until a request fits under every window; a 429 pauses everyone."""

    def __init__(self, *, per_minute: int, per_second: int, api_url: str) -> None:
        """Limits of this caller over the account's shared log; nothing is opened until the first request."""
        # The margin absorbs network jitter: requests sent a window apart may arrive closer.
        self._windows = [(per_minute, 60.0 + WINDOW_MARGIN), (per_second, 1.0 + WINDOW_MARGIN)]
        self._keep = max((limit for limit in (per_minute, per_second) if limit <= SHARED_SENDS), default=0)
        self._path: Path | None = state_path(api_url)
        self._file_lock = FileLock(f"{self._path}.lock", timeout=LOCK_TIMEOUT, mode=0o600, thread_local=False)
        self._local = _Log()  # the last state seen, kept on if the shared file becomes unusable
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Wait for a free slot, then record one request as sent."""
        while True:
            delay = self._update(self._take)
            if delay <= 0:
                return
            time.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every caller for `seconds` (Aha! said 429: the whole account is over its limit)."""
        self._update(lambda log, now: log.pause(now + seconds))

    def _take(self, log: _Log, now: float) -> float:
        delay = log.delay(now, self._windows)
        if delay <= 0:
            log.add(now, self._keep)
        return delay

    def _update(self, change: t.Callable[[_Log, float], _T]) -> _T:
        """Apply `change` to the shared log under the file lock (to this process's own log if it fails)."""
        with self._lock:
            if self._path is not None:
                try:
                    with self._file_lock:
                        return self._update_file(self._path, change)
                except OSError as exc:  # filelock's Timeout is one too
                    logger.warning(
                        "Cannot share the rate limit through %s (%s): this process keeps a limit of its own.",
                        self._path,
                        exc.strerror or type(exc).__name__,
                    )
                    self._path = None
            return change(self._local, time.time())

    def _update_file(self, path: Path, change: t.Callable[[_Log, float], _T]) -> _T:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
        try:
            # Read what is there: a buffer of the largest size, allocated per request, bloats the heap.
            raw = os.read(fd, min(os.fstat(fd).st_size, (_HEADER + SHARED_SENDS + 1) * 8))
            now = time.time()  # the one clock every process shares
            log = _Log.decode(raw, now)
            result = change(log, now)
            if log.changed:
                data = log.encode()
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, data)
                os.ftruncate(fd, len(data))
                log.changed = False
            self._local = log
            return result
        finally:
            os.close(fd)
