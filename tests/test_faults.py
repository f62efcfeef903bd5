"""Rate limits, server faults, broken bodies and auth errors: retried, or stopped with a clear line."""

from __future__ import annotations

import itertools
import time

import pytest

from tap_aha.client import AhaStream
from tap_aha.errors import AhaAPIError, AuthError
from tests.conftest import Config, run_tap
from tests.fake_aha import FakeAha


def _complete(run_ideas: set[str], fake: FakeAha) -> bool:
    return run_ideas == set(fake.idea_ids())


def test_429_with_retry_after_waits_that_long_and_loses_nothing(fake: FakeAha, config: Config) -> None:
    fake.seed(30)
    fake.inject("429", path_prefix="/ideas/endorsements", times=2, retry_after=0.6)  # one listing, twice
    started = time.monotonic()
    run = run_tap(config)
    assert time.monotonic() - started >= 1.2
    assert _complete(run.ids("ideas"), fake)
    served = [r for r in fake.requests if r.fault == "429"]
    assert len(served) == 2


def test_429_without_retry_after_backs_off_exponentially(
    fake: FakeAha, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AhaStream, "rate_limit_backoff_seconds", 0.1)  # gaps well above scheduling noise
    fake.seed(30)
    fake.inject("429", path_prefix="/ideas/endorsements", times=3)  # one listing, three times in a row
    run = run_tap(config)
    assert _complete(run.ids("ideas"), fake)
    first_four = fake.requests_to("/api/v1/ideas/endorsements")[:4]
    gaps = [b.time - a.time for a, b in itertools.pairwise(first_four)]
    assert 0.1 <= gaps[0] < gaps[1] < gaps[2]  # 0.1-0.125, 0.2-0.25, 0.4-0.5 s


def test_a_429_storm_is_waited_out_however_many_answers_it_takes(fake: FakeAha, config: Config) -> None:
    fake.seed(10)
    fake.inject("429", path_prefix="/ideas", times=40, retry_after=0.01)  # four times the old count budget
    run = run_tap({**config, "max_retries": 2})
    assert _complete(run.ids("ideas"), fake)
    assert len([r for r in fake.requests if r.fault == "429"]) == 40


def test_429s_past_the_wait_budget_stop_the_run_with_one_line(fake: FakeAha, config: Config) -> None:
    fake.seed(10)
    fake.inject("429", path_prefix="/ideas/endorsements", times=1000, retry_after=0.3)
    started = time.monotonic()
    with pytest.raises(AhaAPIError) as caught:
        run_tap({**config, "max_rate_limit_wait": 1.5})
    waited = time.monotonic() - started
    message = str(caught.value)
    assert message.startswith("Gave up after 1 s of HTTP 429 for GET /api/v1/ideas/endorsements")
    assert "max_rate_limit_wait is 1.5 s" in message
    assert "\n" not in message
    assert 1.0 <= waited < 5
    assert len([r for r in fake.requests if r.fault == "429"]) in {5, 6}  # waits of 0.3 s add up to 1.5 s


@pytest.mark.parametrize("fault", ["500", "502", "503", "truncated", "invalid_json", "reset", "empty_200"])
def test_transient_faults_are_retried_on_every_endpoint(fake: FakeAha, config: Config, fault: str) -> None:
    fake.seed(40)
    some_idea = fake.idea_ids()[5]
    fake.inject(fault, path_prefix="/ideas", times=1)
    fake.inject(fault, path_prefix=f"/ideas/{some_idea}/comments", times=2)
    run = run_tap(config)
    assert _complete(run.ids("ideas"), fake)
    assert {c["id"] for c in fake.comments(some_idea)} <= run.ids("idea_comments")
    assert len([r for r in fake.requests if r.fault == fault]) == 3


def test_timeouts_are_retried(fake: FakeAha, config: Config) -> None:
    fake.seed(5)
    fake.inject("slow", path_prefix="/ideas", times=1)
    run = run_tap({**config, "request_timeout": 0.5})
    assert _complete(run.ids("ideas"), fake)


def test_persistent_failure_stops_the_run_without_advancing_the_bookmark(
    fake: FakeAha, config: Config
) -> None:
    fake.seed(20)
    first = run_tap(config)
    fake.update_idea(fake.idea_ids()[0], name="changed")
    target = fake.idea_ids()[0]
    fake.inject("503", path_prefix=f"/ideas/{target}/comments", times=50)
    with pytest.raises(AhaAPIError, match=r"Gave up after 3 attempts: HTTP 503"):
        run_tap({**config, "max_retries": 2}, state=first.state)


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("401", "rejected the API key"),
        # A 403 on the vote listing (it syncs first) may be the plan's: it is skipped, then the ideas stop.
        ("403", "refused access"),
    ],
)
def test_auth_errors_stop_at_once(fake: FakeAha, config: Config, fault: str, words: str) -> None:
    fake.seed(5)
    fake.inject(fault, times=100)
    with pytest.raises(AuthError, match=words) as caught:
        run_tap(config)
    # Only account-wide listings, started together (until the first answer stopped the run), each once.
    paths = [r.path for r in fake.requests]
    assert "/api/v1/ideas/endorsements" in paths
    assert len(paths) == len(set(paths))
    assert not any(path.count("/") > 4 for path in paths)  # no idea's child
    assert fake.api_key not in str(caught.value)


def test_children_of_an_idea_deleted_mid_run_are_skipped(fake: FakeAha, config: Config) -> None:
    fake.seed(30)
    victim = next(i["id"] for i in fake.ideas() if i["endorsements_count"])

    def delete_after_listing(request: object) -> None:  # at its first child request
        if getattr(request, "path", "").startswith(f"/api/v1/ideas/{victim}/") and victim in fake.idea_ids():
            fake.delete_idea(victim)

    fake.on_request.append(delete_after_listing)
    run = run_tap(config)
    statuses = {r.status for r in fake.requests if f"/ideas/{victim}/" in r.path}
    assert statuses == {404}
    assert victim in run.ids("ideas")  # it was listed before it was deleted
    assert run.ids("ideas") == set(fake.idea_ids()) | {victim}


def test_the_client_side_limit_keeps_the_run_under_the_servers_limit(config: Config) -> None:
    # The server allows one more a second than the tap sends: room for scheduling jitter on a busy machine.
    with FakeAha(rate_limit_per_second=9, rate_limit_per_minute=10_000) as fake:
        fake.seed(6, comment_share=1.0)  # with the account-wide listings about 50 requests: 6 seconds' worth
        run = run_tap({**config, "api_url": fake.url, "requests_per_second": 8})
        assert _complete(run.ids("ideas"), fake)
        assert not [r for r in fake.requests if r.status == 429]
        assert fake.count() > 16


def test_a_404_for_the_children_of_an_idea_that_exists_stops_the_run(fake: FakeAha, config: Config) -> None:
    fake.seed(10)
    idea_id = fake.idea_ids()[0]
    fake.inject("404", path_prefix=f"/ideas/{idea_id}/comments", times=1)
    with pytest.raises(AhaAPIError, match=f"404 for the idea_comments of idea {idea_id}, which exists"):
        run_tap(config)
