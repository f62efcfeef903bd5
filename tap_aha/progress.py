"""Progress a person can follow, and a log quiet enough to read.

A first sync runs for tens of minutes. The SDK logs several lines per idea (each child sync's "Beginning
sync", its bookmark, its METRIC points, and a METRIC point per request): megabytes that say nothing about how
far along the run is. Here those per-idea and per-request lines go to DEBUG, and one progress line says, at
least every `INTERVAL_SECONDS` and at the end of each listing page, how many ideas are done of those listed,
how many requests were sent, at what rate, and how long the rest should take at the configured limits.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as t

from singer_sdk.metrics import Metric, Point, Tag, get_metrics_logger

if t.TYPE_CHECKING:
    from collections.abc import Callable

INTERVAL_SECONDS = 30.0
SDK_LOGGER = "singer_sdk"  # the SDK's own logger (singer_sdk.helpers._state warns through it)
UNSORTED_WARNING = "Stream is assumed to be unsorted"
# What one idea costs until the run has finished one: its comments, portal comments and maybe votes.
_REQUESTS_PER_IDEA_GUESS = 3.0


class Progress:
    """Counters of one run, shared by every stream and prefetch thread, and the line that reports them."""

    def __init__(
        self,
        *,
        per_minute: int,
        per_second: int,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Report to `logger`; the ETA assumes the sustained rate the limits allow."""
        self._rate_limit = min(per_minute / 60.0, float(per_second))
        self._log = logger
        self._interval = INTERVAL_SECONDS
        self._clock = clock
        self._lock = threading.Lock()
        self._requests = 0
        self._listed: int | None = None
        self._done = 0
        self._last_line = clock()
        self._requests_at_last_line = 0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def request_sent(self) -> None:
        """Count one request (any stream, any thread, retries included)."""
        with self._lock:
            self._requests += 1

    @property
    def requests(self) -> int:
        """The requests sent so far (retries included)."""
        with self._lock:
            return self._requests

    def listed(self, total: int) -> None:
        """The ideas the listing says the window holds (`total_records`)."""
        with self._lock:
            self._listed = max(total, self._done)

    def idea_done(self) -> None:
        """One idea and its children written."""
        with self._lock:
            self._done += 1

    def listing(self, stream: str, done: int, listed: int | None) -> None:
        """Log one line for a listing read apart from the ideas (say the features, a GET per stub)."""
        with self._lock:
            requests = self._requests
        of = "" if listed is None else f" of {listed:,}"
        self._log.info("Progress: %s %s%s, %s requests in all", stream, f"{done:,}", of, f"{requests:,}")

    def start(self) -> None:
        """Report at least every INTERVAL_SECONDS until `stop`, also while every request waits."""
        self._stop.clear()
        self._last_line = self._clock()
        self._ticker = threading.Thread(target=self._tick, name="tap-aha-progress", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        """End the periodic lines; the caller reports the last one."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None

    def report(self) -> None:
        """Log one progress line now."""
        self._log.info("%s", self.line())

    def line(self) -> str:
        """`Progress: ideas 400 of 1,000 (40%), 942 requests, 5.0 requests/s, about 2 min 0 s left ...`."""
        with self._lock:
            now = self._clock()
            requests, done, listed = self._requests, self._done, self._listed
            span = now - self._last_line
            rate = (requests - self._requests_at_last_line) / span if span > 0 else 0.0
            self._last_line, self._requests_at_last_line = now, requests
        if listed is None:
            ideas = f"ideas {done:,}"
        else:
            share = 100.0 * done / listed if listed else 100.0
            ideas = f"ideas {done:,} of {listed:,} ({share:.0f}%)"
        text = f"Progress: {ideas}, {requests:,} requests, {rate:.1f} requests/s"
        if listed is not None:
            per_idea = requests / done if done else _REQUESTS_PER_IDEA_GUESS
            left = max(0, listed - done) * per_idea / self._rate_limit
            text += f", about {_duration(left)} left at the configured limits"
        return text

    def _tick(self) -> None:
        while True:
            with self._lock:
                due = self._last_line + self._interval
            if self._stop.wait(max(0.0, due - self._clock())):
                return
            with self._lock:
                late = self._clock() - self._last_line >= self._interval
            if late:
                self.report()


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:  # noqa: PLR2004
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:  # noqa: PLR2004
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class _InfoAtDebug(logging.Filter):
    """Pass INFO records only when the logger is at DEBUG: for loggers whose every INFO line is per idea."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.INFO or logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class _DetailAtDebug(logging.Filter):
    """Pass per-request and per-idea METRIC points only when the metrics logger is at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        point = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if not isinstance(point, Point):
            return True
        detail = point.metric == Metric.HTTP_REQUEST_DURATION or bool(point.tags.get(Tag.CONTEXT))
        return not detail or get_metrics_logger().isEnabledFor(logging.DEBUG)


class _UnsortedAtDebug(logging.Filter):
    """Pass the SDK's "Stream is assumed to be unsorted" warning only when its logger is at DEBUG.

    It says progress is not resumable, once per stream and per idea's child stream. Here a first sync is (its
    windows, docs/interrupted-first-syncs.md), and any other run's bookmark moves at its end by design.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        unsorted = str(record.msg).startswith(UNSORTED_WARNING)
        return not unsorted or logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def quiet_detail(per_idea_logger: logging.Logger) -> None:
    """Keep per-request and per-idea lines out of INFO output (idempotent).

    That is the SDK's per-request and per-context METRIC points, its warning that an unsorted stream is not
    resumable, and `per_idea_logger`'s INFO lines (a child stream's "Beginning sync", bookmark and pagination
    lines, once per idea).
    """
    for logger, kind in (
        (get_metrics_logger(), _DetailAtDebug),
        (logging.getLogger(SDK_LOGGER), _UnsortedAtDebug),
        (per_idea_logger, _InfoAtDebug),
    ):
        if not any(isinstance(existing, kind) for existing in logger.filters):
            logger.addFilter(kind())
