"""Bounded concurrency for a sequential SDK: fetch the children of ideas ahead of time.

The SDK syncs each idea's children one request after another, so at Aha!'s latency a run would use a
fraction of its rate limit. The ideas stream plans each child request here; up to a window of them run ahead
in worker threads and the child streams take the results in the SDK's usual order. Every request still
passes the shared rate limiter and nothing is written from a worker, so Singer output and state are exactly
as without it. Workers are daemon threads that exit when idle: an abandoned run neither waits for them nor
keeps sending more than a window of requests.

A request that waits (a back-off, a slow answer) holds only its own idea: the window goes on filling behind
it, and `run_ahead` lists the next page of ideas while the current one is still being written, so the
workers always have a page of ideas to fetch for. The run's account-wide listings use a pool of their own
(tap_aha.listings), with the same invariants.

Invariants (tests/test_threads.py and tests/test_prefetch.py check them):

1. Workers and the listing thread only fetch: no Singer message and no SDK state write happens in them
   (`tap_aha.sdk` raises `StateWriteFromWorker` if one tries; a lowered bookmark is noted in the listing
   thread and written by the sync's thread).
2. Every fetch sends its requests through the same `request_decorator`: the shared rate limiter and retries.
3. At most `workers` requests are in flight from workers (a back-off gives its slot up), and at most the
   look-ahead window of planned fetches runs ahead of the one the consumer takes.
4. `take` hands a planned fetch's result (or its error) to the consumer in the consumer's order, and runs an
   unplanned one in the consumer's own thread.
5. Once a fetch failed for good, the later fetches of that generation fail with its error without a
   request; `discard` starts a new generation, so the next sync or Lakeflow read starts clean.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
import typing as t
from collections import deque
from concurrent.futures import Future

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

Row = dict[str, t.Any]
Rows = list[Row]
Key = t.Hashable  # the children's (stream, idea id); a listing's (listing, page number)
R = t.TypeVar("R")  # what a fetch gives: an idea's rows, a listing's page
_Job = tuple["Future[t.Any]", "Callable[[], t.Any]", int]
IDLE_SECONDS = 2.0
_worker = threading.local()
T = t.TypeVar("T")


class Abandoned(Exception):
    """Raised in a worker whose fetch was discarded, so it stops retrying for nobody."""


class Prefetcher(t.Generic[R]):
    """Worker threads plus the planned and running fetches, keyed by (stream, idea id) or (listing, page)."""

    def __init__(self, workers: int) -> None:
        """Run at most `workers` fetches at once and at most twice that many ahead of the consumer."""
        self._workers = workers
        self._window = 2 * workers
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._alive = 0
        self._sleeping = 0  # workers waiting out a retry's back-off, which hold no slot meanwhile
        self._slots = _Slots(workers)  # requests in flight from workers
        self._lock = threading.Lock()
        # Guards the planned and running fetches: one thread plans them, another takes them.
        self._plans = threading.RLock()
        self._planned: deque[tuple[Key, Callable[[], R]]] = deque()
        self._running: dict[Key, Future[R]] = {}
        self._failed = threading.Event()
        self._first_error: BaseException | None = None
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

    def look_ahead(self, fetches: int) -> None:
        """Let up to `fetches` fetches run ahead of the one the consumer waits for (at least 2 per worker)."""
        with self._plans:
            self._window = max(2 * self._workers, fetches)
            self._top_up()

    def plan(self, key: Key, fetch: Callable[[], R]) -> None:
        """Queue one idea's fetch for one child stream; it starts once the window has room."""
        with self._plans:
            self._planned.append((key, fetch))
            self._top_up()

    def take(self, key: Key) -> R | None:
        """The fetched records (re-raising the fetch's error), or None if nothing was planned for `key`."""
        with self._plans:
            future = self._running.pop(key, None)
            fetch = self._unplan(key) if future is None else None
            self._top_up()
        if future is not None:
            return future.result()
        return None if fetch is None else fetch()

    def discard(self) -> None:
        """Forget fetches nobody will take (filtered ideas, an aborted run); cancel those not started.

        Fetches under way finish their current request, then stop instead of retrying (`abandoned()`).
        """
        with self._plans:
            self._generation += 1
            self._failed.clear()
            self._first_error = None
            self._planned.clear()
            for future in self._running.values():
                future.cancel()
            self._running.clear()

    def drop(self, key: Key) -> None:
        """Forget one planned or running fetch nobody will take; its result, if it comes, is dropped."""
        with self._plans:
            future = self._running.pop(key, None)
            if future is None:
                self._unplan(key)
            else:
                future.cancel()
            self._top_up()

    def _unplan(self, key: Key) -> Callable[[], R] | None:
        for index, (planned_key, fetch) in enumerate(self._planned):
            if planned_key == key:
                del self._planned[index]
                return fetch
        return None

    def _top_up(self) -> None:
        while self._planned and len(self._running) < self._window:
            key, fetch = self._planned.popleft()
            self._running[key] = self._start(fetch)

    def _backoff(self, seconds: float) -> None:
        """`backoff` in one of this pool's workers."""
        with self._lock:
            self._sleeping += 1
            self._spawn()
        self._slots.release()
        try:
            time.sleep(seconds)
        finally:
            self._slots.acquire(first=True)
            with self._lock:
                self._sleeping -= 1

    def _start(self, fetch: Callable[[], t.Any]) -> Future[t.Any]:
        future: Future[t.Any] = Future()
        self._jobs.put((future, fetch, self._generation))
        with self._lock:
            self._spawn()
        return future

    def _spawn(self) -> None:
        """A worker more, unless `workers` of them are already awake (call with the lock held)."""
        if self._alive < self._workers + self._sleeping:
            self._alive += 1
            threading.Thread(target=self._work, name="tap-aha-prefetch", daemon=True).start()

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
                _worker.pool, _worker.generation = self, generation
                self._slots.acquire()
                try:
                    self._run(future, fetch, generation)
                finally:
                    self._slots.release()
                _worker.pool = None

    def _run(self, future: Future[t.Any], fetch: Callable[[], t.Any], generation: int) -> None:
        """Once one fetch failed for good, later ones fail at once instead of spending requests."""
        if self._failed.is_set():  # the first failure's own error, so the user reads its cause
            future.set_exception(self._first_error or RuntimeError("an earlier prefetch failed"))
            return
        try:
            future.set_result(fetch())
        except Abandoned as exc:
            future.set_exception(exc)
        except BaseException as exc:  # handed to the consumer through the future
            if generation == self._generation:  # a discarded fetch's failure concerns nobody
                self._first_error = self._first_error or exc
                self._failed.set()
            future.set_exception(exc)


def abandoned() -> bool:
    """True in a worker whose fetch its pool discarded: its retries would serve nobody."""
    pool: Prefetcher[t.Any] | None = getattr(_worker, "pool", None)
    return pool is not None and _worker.generation != pool._generation


def backoff(seconds: float) -> None:
    """Wait out a retry's back-off; a worker gives up its pool's slot meanwhile, so the others fetch on.

    Without this, a few requests backing off at once would idle the whole pool: at 5% failures and
    2-second back-offs most workers would be asleep. Outside a worker it is a plain sleep.
    """
    pool: Prefetcher[t.Any] | None = getattr(_worker, "pool", None)
    if pool is None:
        time.sleep(seconds)
    else:
        pool._backoff(seconds)


class _Slots:
    """A counting semaphore served in order of arrival; `first` callers go before the rest.

    A retry back from its back-off is `first`: everyone downstream may be waiting for it. A plain
    semaphore wakes an arbitrary waiter: with many queued fetches, the one the SDK waits for could
    wait for seconds behind later ones.
    """

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: deque[threading.Event] = deque()
        self._lock = threading.Lock()

    def acquire(self, *, first: bool = False) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Event()
            if first:
                self._waiting.appendleft(turn)
            else:
                self._waiting.append(turn)
        turn.wait()  # the releasing thread hands its slot over

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1


def run_ahead(
    items: Generator[T, None, None], prepare: Callable[[T], None], *, ahead: int = 1
) -> Generator[T, None, None]:
    """`items`, made in a thread ahead of the consumer, each `prepare`d as soon as it is made.

    The ideas stream lists its next pages (and plans their children) while the current page is still
    being written. At most `ahead` items wait for the consumer, and one more is being made. Errors reach
    the consumer in order; a consumer that stops early stops the producer after the item it is making.
    """
    handoff: queue.Queue[tuple[bool, t.Any]] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def offer(entry: tuple[bool, t.Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():  # the consumer is gone: plan no more fetches for nobody
                    break
                prepare(item)
                if not offer((True, item)):
                    break
            else:
                offer((False, None))
        except BaseException as exc:  # handed to the consumer, raised there
            offer((False, exc))
        finally:
            if stop.is_set():
                items.close()

    threading.Thread(target=produce, name="tap-aha-listing", daemon=True).start()
    try:
        while True:
            more, value = handoff.get()
            if not more:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
