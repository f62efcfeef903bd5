"""Bounded concurrency for a sequential SDK: fetch the children of a page of ideas ahead of time.

The SDK syncs each idea's children one request after another, so at Aha!'s latency a run would use a
fraction of its rate limit. The ideas stream submits each child request of a page here; the child streams
then take the finished results in the SDK's usual order. Every request still passes the shared rate limiter,
and nothing is written from a worker thread, so Singer output and state are exactly as without it.
"""

from __future__ import annotations

import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable

Row = dict[str, t.Any]
Rows = list[Row]


class Prefetcher:
    """A small thread pool plus the results waiting to be taken, keyed by (stream, idea id)."""

    def __init__(self, workers: int) -> None:
        """Create the pool lazily: a run without children (or one worker) never starts threads."""
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[tuple[str, str], Future[Rows]] = {}
        self._failed = threading.Event()

    @property
    def enabled(self) -> bool:
        """One worker means plain sequential requests."""
        return self._workers > 1

    def map(
        self, func: Callable[[dict[str, t.Any]], dict[str, t.Any] | None], items: Iterable[dict[str, t.Any]]
    ) -> list[dict[str, t.Any] | None]:
        """Run `func` over `items` in the pool, results in input order."""
        return list(self._executor().map(func, items))

    def submit(self, stream: str, idea_id: str, fetch: Callable[[], Rows]) -> None:
        """Start fetching one idea's records for one child stream."""
        self._pending[(stream, idea_id)] = self._executor().submit(self._guarded, fetch)

    def take(self, stream: str, idea_id: str) -> Rows | None:
        """The prefetched records (re-raising the fetch's error), or None if none was submitted."""
        future = self._pending.pop((stream, idea_id), None)
        return None if future is None else future.result()

    def discard(self) -> None:
        """Drop results nobody will take (filtered ideas, an aborted run) and cancel what has not started."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def _guarded(self, fetch: Callable[[], Rows]) -> Rows:
        """Once one fetch failed for good, later ones fail at once instead of spending requests."""
        if self._failed.is_set():
            raise RuntimeError("an earlier prefetch failed")
        try:
            return fetch()
        except BaseException:
            self._failed.set()
            raise

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="tap-aha")
        return self._pool
