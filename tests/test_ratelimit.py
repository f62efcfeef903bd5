"""The rate limiter shared by every process of this machine that reads one account (tap_aha/ratelimit.py).

Limiters of one API URL share their windows and 429 pauses through a state file; a torn file, a crashed
holder of the lock or an unusable file never stops a run. Four real `tap-aha` processes with the default
limits stay under Aha!'s 300 a minute and 20 a second together, at the rate-limit floor.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.floor import floor_seconds
from tap_aha.ratelimit import LOCK_TIMEOUT, RateLimiter, state_path
from tests.conftest import REPO, TAP, Run, parse_messages
from tests.fake_aha import FakeAha

URL = "https://limits.example.aha.io/api/v1"


def timed(limiter: RateLimiter) -> float:
    started = time.monotonic()
    limiter.acquire()
    return time.monotonic() - started


def test_limiters_of_one_account_share_the_windows() -> None:
    url = f"{URL}/share"
    first = RateLimiter(per_minute=1000, per_second=3, api_url=url)
    for _ in range(3):
        assert timed(first) < 0.5
    other_account = RateLimiter(per_minute=1000, per_second=3, api_url=f"{URL}/other")
    assert timed(other_account) < 0.5
    second = RateLimiter(per_minute=1000, per_second=3, api_url=url)  # another table, same account
    assert timed(second) > 0.9  # the account's per-second window was full: wait for it (1.25 s)


def test_a_429_pause_holds_every_limiter_of_the_account() -> None:
    url = f"{URL}/pause"
    RateLimiter(per_minute=1000, per_second=100, api_url=url).pause(0.6)
    assert timed(RateLimiter(per_minute=1000, per_second=100, api_url=url)) > 0.5
    assert timed(RateLimiter(per_minute=1000, per_second=100, api_url=f"{URL}/unpaused")) < 0.3


@pytest.mark.parametrize("content", [b"", b"\x00" * 13, b"garbage!" * 5, (b"\xff" * 8) * 4])
def test_a_torn_or_foreign_state_file_is_started_afresh(content: bytes) -> None:
    url = f"{URL}/torn/{content[:4].hex()}/{len(content)}"
    state_path(url).write_bytes(content)
    limiter = RateLimiter(per_minute=1000, per_second=2, api_url=url)
    assert timed(limiter) < 0.3
    assert state_path(url).stat().st_size == 6 * 8  # a header of five doubles and one send time, whole
    assert timed(limiter) < 0.3
    assert timed(limiter) > 0.9  # and it limits again


def test_the_file_keeps_what_the_largest_limit_in_use_needs() -> None:
    url = f"{URL}/keep"
    limited = RateLimiter(per_minute=1000, per_second=1000, api_url=url)
    for _ in range(10):
        limited.acquire()
    unlimited = RateLimiter(per_minute=10**6, per_second=10**6, api_url=url)  # checks nothing itself
    unlimited.acquire()
    assert state_path(url).stat().st_size == (5 + 11) * 8  # it keeps every send the other one counts
    alone = RateLimiter(per_minute=10**6, per_second=10**6, api_url=f"{URL}/alone")
    for _ in range(100):
        alone.acquire()
    assert state_path(f"{URL}/alone").stat().st_size == 5 * 8  # nobody counts: the file stays a header


def test_a_process_that_dies_holding_the_lock_does_not_block_the_others() -> None:
    url = f"{URL}/crash"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
            "print('locked', flush=True); time.sleep(600)",
            f"{state_path(url)}.lock",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert timed(RateLimiter(per_minute=1000, per_second=10, api_url=url)) < LOCK_TIMEOUT / 2


def test_an_unusable_state_file_leaves_a_limit_of_its_own(caplog: pytest.LogCaptureFixture) -> None:
    url = f"{URL}/unusable"
    state_path(url).mkdir()  # not a file: every open fails
    limiter = RateLimiter(per_minute=1000, per_second=2, api_url=url)
    with caplog.at_level(logging.WARNING):
        assert timed(limiter) < 0.3
        assert timed(limiter) < 0.3
        assert timed(limiter) > 0.9
    warnings = [r.getMessage() for r in caplog.records if "Cannot share the rate limit" in r.getMessage()]
    assert len(warnings) == 1
    assert "keeps a limit of its own" in warnings[0]


def test_the_state_file_is_named_by_a_hash_of_the_url(fake: FakeAha) -> None:
    path = state_path(fake.url)
    assert path.parent == Path(os.environ["TMPDIR"])
    assert fake.url not in path.name
    assert path != state_path(fake.url + "/other")


def test_four_tap_processes_share_the_accounts_limit(tmp_path: Path) -> None:
    """Four `tap-aha` runs at once, default limits, against a fake that enforces Aha!'s 300/min and 20/s."""
    with FakeAha(rate_limit_per_minute=300, rate_limit_per_second=20) as fake:
        fake.seed(25)  # about 380 requests: the per-minute window is crossed, a 66 s floor
        time.sleep(0.01)
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"api_key": fake.api_key, "api_url": fake.url}))  # default limits
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                [*TAP, "--config", str(config)],
                stdout=(tmp_path / f"out{i}.jsonl").open("w"),
                stderr=(tmp_path / f"err{i}.log").open("w"),
                cwd=REPO,
                env={k: v for k, v in os.environ.items() if not k.startswith("TAP_AHA_")},
            )
            for i in range(4)
        ]
        codes = [proc.wait(300) for proc in procs]
        wall = time.monotonic() - started
        statuses = [r.status for r in fake.requests]
        peak_minute, peak_second = fake.peak_rates()
        runs = [Run(parse_messages((tmp_path / f"out{i}.jsonl").read_text())) for i in range(4)]
        expected = {
            "ideas": set(fake.idea_ids()),
            "idea_proxy_votes": {v["id"] for i in fake.idea_ids() for v in fake.votes(i)},
            "idea_comments": {c["id"] for i in fake.idea_ids() for c in fake.comments(i)},
            "idea_portal_comments": {
                c["id"] for i in fake.idea_ids() for c in fake.portal_comments(i, include_spam=False)
            },
        }
    assert codes == [0] * 4, (tmp_path / "err0.log").read_text()[-2000:]
    # Unshared, four runs at 300/min each would see most requests refused. Shared, a refusal can come only
    # from a request that left its process more than the limiter's 0.25 s margin after its slot (a process
    # starved of CPU on a loaded machine): a handful at most, each retried (every run is complete, below).
    assert statuses.count(429) <= len(statuses) // 100, statuses.count(429)
    assert set(statuses) <= {200, 429}
    assert peak_minute <= 300
    assert peak_second <= 20
    assert len(statuses) > 300  # the run crosses the per-minute window
    for run in runs:
        for stream, ids in expected.items():
            assert run.ids(stream) == ids, stream
    floor = floor_seconds(len(statuses), 300, 15, 0.0)
    print(  # the figures the issue asks for: pytest -s shows them
        f"four processes: {len(statuses)} requests in {wall:.1f} s (floor {floor:.1f} s, "
        f"{wall / floor:.2f}x); peak {peak_minute}/min, {peak_second}/s"
    )
    assert wall <= floor * 1.15
