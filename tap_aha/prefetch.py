"""Bounded concurrency for a sequential SDK: fetch the children of ideas a little ahead of time.

The SDK syncs each idea's children one request after another, so at Aha!'s latency a run would use a
fraction of its rate limit. The ideas stream plans each child request of a page here; a few of them run
ahead in worker threads and the child streams take the results in the SDK's usual order. Every request still
passes the shared rate limiter and nothing is written from a worker, so Singer output and state are exactly
as without it. Workers are daemon threads that exit when idle: an abandoned run neither waits for them nor
keeps sending more than a window of requests.
"""

from __future__ import annotations

import functools
import queue
import threading
import typing as t
from collections import deque
from concurrent.futures import Future

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable

Row = dict[str, t.Any]
Rows = list[Row]
Key = tuple[str, str]
_Job = tuple["Future[t.Any]", "Callable[[], t.Any]", int]
IDLE_SECONDS = 2.0
_worker = threading.local()


class Abandoned(Exception):
    """Raised in a worker whose fetch was discarded, so it stops retrying for nobody."""


class Prefetcher:
    """Worker threads plus the planned and running fetches, keyed by (stream, idea id)."""

    def __init__(self, workers: int) -> None:
        """Run at most `workers` fetches at once and at most twice that many ahead of the consumer."""
        self._workers = workers
        self._window = 2 * workers
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._alive = 0
        self._lock = threading.Lock()
        self._planned: deque[tuple[Key, Callable[[], Rows]]] = deque()
        self._running: dict[Key, Future[Rows]] = {}
        self._failed = threading.Event()
        self._generation = 0

    @property
    def enabled(self) -> bool:
        """One worker means plain sequential requests in the caller's thread."""
        return self._workers > 1

    def map(self, func: Callable[[Row], Row | None], items: Iterable[Row]) -> list[Row | None]:
        """Run `func` over `items` concurrently, results in input order."""
        if not self.enabled:
            return [func(item) for item in items]
        futures = [self._start(functools.partial(func, item)) for item in items]
        return [future.result() for future in futures]

    def plan(self, key: Key, fetch: Callable[[], Rows]) -> None:
        """Queue one idea's fetch for one child stream; it starts once the window has room."""
        self._planned.append((key, fetch))
        self._top_up()

    def take(self, key: Key) -> Rows | None:
        """The fetched records (re-raising the fetch's error), or None if nothing was planned for `key`."""
        future = self._running.pop(key, None)
        if future is None:
            fetch = self._unplan(key)
            return None if fetch is None else fetch()
        self._top_up()
        return future.result()

    def discard(self) -> None:
        """Forget fetches nobody will take (filtered ideas, an aborted run); cancel those not started.

        Fetches under way finish their current request, then stop instead of retrying (`abandoned`).
        """
        self._generation += 1
        self._failed.clear()
        self._planned.clear()
        for future in self._running.values():
            future.cancel()
        self._running.clear()

    def abandoned(self) -> bool:
        """True in a worker whose fetch was discarded: its retries would serve nobody."""
        generation = getattr(_worker, "generation", None)
        return generation is not None and generation != self._generation

    def _unplan(self, key: Key) -> Callable[[], Rows] | None:
        for index, (planned_key, fetch) in enumerate(self._planned):
            if planned_key == key:
                del self._planned[index]
                return fetch
        return None

    def _top_up(self) -> None:
        while self._planned and len(self._running) < self._window:
            key, fetch = self._planned.popleft()
            self._running[key] = self._start(fetch)

    def _start(self, fetch: Callable[[], t.Any]) -> Future[t.Any]:
        future: Future[t.Any] = Future()
        self._jobs.put((future, fetch, self._generation))
        with self._lock:
            if self._alive < self._workers:
                self._alive += 1
                threading.Thread(target=self._work, name="tap-aha-prefetch", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            try:
                future, fetch, generation = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():  # a job put just now would otherwise wait for a worker
                        self._alive -= 1
                        return
                continue
            if future.set_running_or_notify_cancel():
                _worker.generation = generation
                self._run(future, fetch, generation)
                _worker.generation = None

    def _run(self, future: Future[t.Any], fetch: Callable[[], t.Any], generation: int) -> None:
        """Once one fetch failed for good, later ones fail at once instead of spending requests."""
        if self._failed.is_set():
            future.set_exception(RuntimeError("an earlier prefetch failed"))
            return
        try:
            future.set_result(fetch())
        except Abandoned as exc:
            future.set_exception(exc)
        except BaseException as exc:  # handed to the consumer through the future
            if generation == self._generation:  # a discarded fetch's failure concerns nobody
                self._failed.set()
            future.set_exception(exc)
