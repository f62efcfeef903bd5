"""Progress lines a person can follow, and per-idea and per-request lines kept out of the default log."""

from __future__ import annotations

import logging
import re
import typing as t

import pytest

from tap_aha import progress
from tap_aha.progress import Progress
from tests.conftest import Config, Run, run_cli, run_tap
from tests.fake_aha import FakeAha

if t.TYPE_CHECKING:
    from pathlib import Path


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_line_counts_ideas_requests_rate_and_time_left_at_the_limits() -> None:
    now = [100.0]
    meter = Progress(per_minute=300, per_second=15, logger=logging.getLogger("test"), clock=lambda: now[0])
    meter.listed(1000)
    for _ in range(300):
        meter.request_sent()
    for _ in range(100):
        meter.idea_done()
    now[0] += 60.0
    # 3 requests an idea so far; 900 ideas left at 300/min (5/s): 540 s.
    assert meter.line() == (
        "Progress: ideas 100 of 1,000 (10%), 300 requests, 5.0 requests/s, "
        "about 9 min 0 s left at the configured limits"
    )
    now[0] += 10.0
    assert "ideas 100 of 1,000 (10%), 300 requests, 0.0 requests/s" in meter.line()  # rate since last line


def test_before_the_listing_answers_the_line_has_no_estimate() -> None:
    meter = Progress(per_minute=300, per_second=15, logger=logging.getLogger("test"))
    assert meter.line().startswith("Progress: ideas 0, 0 requests")
    assert "left" not in meter.line()


def test_default_log_has_a_line_per_page_and_nothing_per_idea(
    fake: FakeAha, config: Config, tmp_path: Path
) -> None:
    fake.seed(30)
    small = run_cli([], tmp_path, config={**config, "page_size": 10})
    fake.seed(60)  # 90 ideas: 9 pages
    some_idea = fake.idea_ids()[7]
    fake.inject("500", path_prefix=f"/ideas/{some_idea}/comments", times=1)
    big = run_cli([], tmp_path, config={**config, "page_size": 10})
    assert small.returncode == big.returncode == 0
    assert len(big.ids("ideas")) == 90
    children = ("idea_proxy_votes", "idea_comments", "idea_portal_comments")
    info = [line for line in big.stderr.splitlines() if "| INFO " in line]
    assert not [line for line in info if any(f"tap-aha.{child} " in line for child in children)]
    assert "http_request_duration" not in big.stderr
    assert '"context":{"idea_id"' not in big.stderr
    progress_lines = [line for line in big.stderr.splitlines() if "Progress: ideas" in line]
    # 90 ideas are a windowed first sync (tap_aha.first_sync): windows end on part pages, and each walk of
    # the listing the SDK makes (each window, each guess cut smaller) logs its request-count METRIC line.
    done = re.search(r"First sync done in (\d+) windows \((\d+) guesses", big.stderr)
    assert done is not None
    walks = int(done[1]) + int(done[2])
    pages = len(
        [
            line
            for line in big.stderr.splitlines()
            if '"http_request_count"' in line and '"stream":"ideas"' in line
        ]
    )
    assert 9 <= len(progress_lines) <= 9 + int(done[1])
    assert "Progress: ideas 10 of 90 (11%)" in progress_lines[0]
    assert "Progress: ideas 90 of 90 (100%)" in progress_lines[-1]
    assert "HTTP 500" in big.stderr  # warnings are unchanged

    # Three times the ideas, the same log but for a line per page and per walk, the warning, the end line
    # (and the SDK's line for an empty window, if one was); the roadmap's progress lines, one per page of
    # features completed, grow with the account too and are left out.
    def lines(run: Run) -> list[str]:
        return [
            line for line in run.stderr.splitlines() if "Progress: " not in line or "Progress: ideas" in line
        ]

    assert pages == walks  # the unfiltered page 1 the windows are planned from is read ahead: no SDK walk
    extra = len(progress_lines) - 3 + pages + 1 + 1
    assert len(lines(big)) - len(lines(small)) <= extra + 1


def test_debug_level_still_has_the_per_idea_detail(fake: FakeAha, config: Config, tmp_path: Path) -> None:
    fake.seed(5)
    run = run_cli([], tmp_path, config=config, env={"TAP_AHA_LOGLEVEL": "DEBUG"})
    assert run.returncode == 0
    assert "Beginning sync of 'idea_comments'" in run.stderr
    assert "http_request_duration" in run.stderr


def test_a_line_comes_every_interval_while_requests_wait(
    fake: FakeAha, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.2)
    fake.seed(12)
    fake.latency = 0.1
    handler = _Lines()
    logger = logging.getLogger("tap-aha.progress")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # in-process runs have no CLI logging set-up
    try:
        run_tap({**config, "parallel_requests": 1})  # one page, about 3.7 s of requests
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [line for line in handler.lines if line.startswith("Progress: ideas")]
    assert len(lines) >= 10
    assert lines[-1].startswith("Progress: ideas 12 of 12 (100%)")
