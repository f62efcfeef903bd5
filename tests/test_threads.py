"""Threads: SDK state is written by the sync's thread only; the prefetcher's invariants (tap_aha.prefetch)."""

from __future__ import annotations

import datetime as dt
import threading
import time
import typing as t

import pytest

from tap_aha.prefetch import Prefetcher
from tap_aha.sdk import SdkStream, StateWriteFromWorker
from tap_aha.tap import TapAha
from tests.conftest import Config, run_tap
from tests.fake_aha import FakeAha


def test_a_state_write_from_a_worker_thread_raises(config: Config) -> None:
    stream = TapAha(config=config).streams["ideas"]
    assert isinstance(stream, SdkStream)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            stream.write_signpost("2024-01-01T00:00:00.000Z")
        except StateWriteFromWorker as exc:
            errors.append(exc)

    worker = threading.Thread(target=write, name="tap-aha-prefetch")
    worker.start()
    worker.join()
    assert len(errors) == 1
    stream.write_signpost("2024-01-01T00:00:00.000Z")  # the sync's thread may


def test_a_bookmark_lowered_to_ahas_clock_is_written_by_the_syncs_thread(
    fake: FakeAha, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.seed(30)
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    fake.clock = lambda: behind
    writers: list[str] = []
    write = SdkStream.write_signpost

    def recording(self: SdkStream, value: str, context: t.Any = None) -> None:
        writers.append(threading.current_thread().name)
        write(self, value, context)

    monkeypatch.setattr(SdkStream, "write_signpost", recording)
    run = run_tap({**config, "page_size": 10}, streams=("ideas", "idea_comments"))  # listed in a thread
    assert writers
    assert set(writers) == {threading.main_thread().name}
    bookmark = run.bookmark("ideas")
    assert bookmark is not None
    assert bookmark <= behind.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_at_most_workers_fetches_are_in_flight() -> None:
    prefetcher: Prefetcher[dict[str, t.Any]] = Prefetcher(3)
    lock = threading.Lock()
    running = peak = 0

    def fetch(item: dict[str, t.Any]) -> dict[str, t.Any]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return item

    items = [{"id": str(n)} for n in range(20)]
    assert prefetcher.map(fetch, items) == items  # in input order
    assert peak == 3


def test_discard_starts_a_clean_generation_after_a_failure() -> None:
    prefetcher: Prefetcher[dict[str, t.Any]] = Prefetcher(2)
    calls: list[str] = []

    def fetch(item: dict[str, t.Any]) -> dict[str, t.Any]:
        calls.append(item["id"])
        if item["id"] == "bad":
            raise RuntimeError("for good")
        return item

    with pytest.raises(RuntimeError, match="for good"):
        prefetcher.map(fetch, [{"id": "bad"}])
    with pytest.raises(RuntimeError, match="for good"):  # the same generation: its error, no call
        prefetcher.map(fetch, [{"id": "later"}])
    assert "later" not in calls
    prefetcher.discard()
    assert prefetcher.map(fetch, [{"id": "next"}]) == [{"id": "next"}]
