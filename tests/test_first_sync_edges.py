"""A windowed first sync (tap_aha.first_sync) against what the real Aha! may do that tests/test_resume.py
does not cover: a bulk import in one millisecond, `created_since` / `created_before` ignored or read with the
other inclusivity, list items whose `created_at` is missing or odd, odd resume markers, `start_date`."""

from __future__ import annotations

import typing as t

import pytest

from tap_aha.first_sync import MARKER
from tests.conftest import Run, fake_config, run_tap
from tests.fake_aha import MISSING, FakeAha, RequestLog, fmt_ts, parse_ts

PAGE_SIZE = 5  # a window holds at most 10 ideas; more than 20 ideas are windowed
LISTING = "/api/v1/ideas"


def _config(fake: FakeAha, **extra: t.Any) -> dict[str, t.Any]:
    return fake_config(fake, page_size=PAGE_SIZE, **extra)


def _listing(fake: FakeAha) -> list[dict[str, str]]:
    return [r.query for r in fake.requests if r.path == LISTING]


def _guard(fake: FakeAha, most: int) -> None:
    """A run that keeps listing (a window loop) fails after `most` listing requests instead of hanging."""

    def refuse(request: RequestLog) -> None:
        if request.path == LISTING and len(_listing(fake)) == most:
            fake.inject("401", times=10_000)

    fake.on_request.append(refuse)


def _run(fake: FakeAha, state: dict[str, t.Any] | None = None, **extra: t.Any) -> Run:
    return run_tap(_config(fake, **extra), state=state, streams=("ideas",))


def _windowed(run: Run) -> list[str]:
    markers = [s["bookmarks"].get("ideas", {}).get(MARKER) for s in run.states]
    return [found["done_before"] for found in markers if found]


@pytest.mark.parametrize("where", ["oldest", "all"])
def test_a_bulk_import_in_one_millisecond_is_read_in_pages_and_ends(fake: FakeAha, where: str) -> None:
    """Windows cannot be cut below 1 ms: 3 pages created in one, at the start of the account or all of it."""
    fake.seed(30)
    ids = fake.idea_ids()
    moment = fake.ideas()[0]["created_at"]
    for idea_id in ids[: 3 * PAGE_SIZE] if where == "oldest" else ids:
        fake.update_idea(idea_id, created_at=moment)
    _guard(fake, 60)
    run = _run(fake)
    assert len(run.records("ideas")) == len(run.ids("ideas")) == 30
    assert len(_listing(fake)) < 40


def test_a_bulk_on_a_window_boundary_costs_one_detail_request_an_idea() -> None:
    """Compact list items cost a GET each: ideas the next window lists again are dropped before it."""
    with FakeAha(list_honours_fields=False) as fake:
        fake.seed(40)
        moment = fake.ideas()[12]["created_at"]
        for idea_id in fake.idea_ids()[13:28]:
            fake.update_idea(idea_id, created_at=moment)
        run = _run(fake)
        assert len(run.records("ideas")) == 40
        details = [r.path for r in fake.requests if r.path.startswith(f"{LISTING}/")]
        assert sorted(details) == sorted(f"{LISTING}/{idea_id}" for idea_id in fake.idea_ids())


@pytest.mark.parametrize("created_filters", ["ignored", "refused"])
def test_an_aha_that_ignores_or_refuses_the_created_filters_falls_back_to_one_unwindowed_read(
    caplog: pytest.LogCaptureFixture, created_filters: str
) -> None:
    """Every window lists everything, or is answered HTTP 400: one warning, then one unwindowed read."""
    with FakeAha(created_filters=created_filters) as fake:
        fake.seed(40)
        _guard(fake, 60)
        run = _run(fake)
        assert run.ids("ideas") == set(fake.idea_ids())
        warnings = [r for r in caplog.records if "Windowed ideas listing" in r.getMessage()]
        assert len(warnings) == 1
        pages = -(-40 // PAGE_SIZE)
        assert len(_listing(fake)) <= 2 + pages  # page 1, the first window's page 1, then the listing
        assert MARKER not in run.state["bookmarks"]["ideas"]
        assert run.bookmark() is not None


@pytest.mark.parametrize("created_filters", ["ignored", "refused"])
def test_a_resumed_run_against_an_aha_that_ignores_the_filters_reads_only_what_is_not_done(
    caplog: pytest.LogCaptureFixture, created_filters: str
) -> None:
    with FakeAha(created_filters=created_filters) as fake:
        fake.seed(40)
        by_created = sorted(fake.ideas(), key=lambda idea: idea["created_at"])
        started, done_before = fmt_ts(parse_ts(by_created[-1]["created_at"])), by_created[25]["created_at"]
        state = {"bookmarks": {"ideas": {MARKER: {"started_at": started, "done_before": done_before}}}}
        _guard(fake, 60)
        run = _run(fake, state)
        assert run.ids("ideas") == {idea["id"] for idea in by_created[25:]}
        assert sum("Windowed ideas listing" in r.getMessage() for r in caplog.records) == 1
        assert run.bookmark() == started


@pytest.mark.parametrize("created_filters", ["before_inclusive", "whole_seconds"])
def test_bounds_read_another_way_lose_no_idea_and_write_none_twice(created_filters: str) -> None:
    """`created_since` exclusive and `created_before` inclusive, or both cut to the second, with ideas bunched
    in one millisecond or spread over one second: each idea written once."""
    with FakeAha(created_filters=created_filters) as fake:
        fake.seed(40)
        moment = fake.ideas()[12]["created_at"]
        for n, idea_id in enumerate(fake.idea_ids()[13:25]):
            spread = f"{moment[:20]}{n * 80:03d}Z" if created_filters == "whole_seconds" else moment
            fake.update_idea(idea_id, created_at=spread)
        run = _run(fake)
        assert len(run.records("ideas")) == len(run.ids("ideas")) == 40
        assert len(set(_windowed(run))) >= 2


def test_list_items_with_a_missing_null_or_odd_created_at_are_written() -> None:
    """Windows are cut on Aha!'s own `created_at`: what a list item shows neither crashes nor drops."""
    with FakeAha() as fake:
        fake.seed(40)
        ideas = fake.ideas()
        odd = {
            ideas[3]["id"]: MISSING,
            ideas[9]["id"]: None,
            ideas[15]["id"]: ideas[15]["created_at"][:19] + "Z",  # no milliseconds
            ideas[21]["id"]: fmt_ts(parse_ts(ideas[21]["created_at"])).replace("Z", "+00:00"),
            ideas[27]["id"]: "2023-01-01 00:30:00 UTC",  # Rails' to_s, not ISO-8601
            ideas[39]["id"]: MISSING,  # the newest: on the first page
        }
        fake.listed_created_at.update(odd)
        run = _run(fake)
        assert len(run.records("ideas")) == len(run.ids("ideas")) == 40
        assert len(set(_windowed(run))) >= 2
        shown = {r["id"]: r.get("created_at", MISSING) for r in run.records("ideas")}
        assert {key: shown[key] for key in odd} == odd


def _resume_marker(run: Run, nth: int) -> dict[str, t.Any]:
    """The state after the run's `nth` window, as a run killed then would leave it."""
    states = [s for s in run.states if MARKER in s["bookmarks"].get("ideas", {})]
    return states[nth - 1]


def test_a_first_sync_from_start_date_is_windowed_and_ends_at_its_start(fake: FakeAha) -> None:
    """No bookmark, `start_date`: every window lists the ideas updated since it; the bookmark is S."""
    fake.seed(60)
    by_updated = sorted(fake.ideas(), key=lambda idea: idea["updated_at"])
    start_date = by_updated[10]["updated_at"]
    wanted = {idea["id"] for idea in by_updated if idea["updated_at"] >= start_date}
    first = _run(fake, start_date=start_date)
    listing = _listing(fake)
    assert any("created_before" in query for query in listing)
    assert all(query["updated_since"] == start_date for query in listing)
    assert first.ids("ideas") == wanted
    killed = _resume_marker(first, 2)
    started_at = killed["bookmarks"]["ideas"][MARKER]["started_at"]
    assert first.bookmark() == started_at > start_date
    fake.clear_requests()
    resumed = _run(fake, killed, start_date=start_date)
    assert all(query["updated_since"] == start_date for query in _listing(fake))
    done_before = killed["bookmarks"]["ideas"][MARKER]["done_before"]
    rest = {idea["id"] for idea in fake.ideas() if idea["created_at"] >= done_before}
    assert resumed.ids("ideas") == wanted & rest
    assert resumed.bookmark() == started_at


@pytest.mark.parametrize("odd", ["done_before_after_started_at", "future_done_before", "later_bookmark"])
def test_an_inconsistent_marker_is_resumed_safely(fake: FakeAha, odd: str) -> None:
    """A marker no run of this tap leaves as it is: trusted as far as it is safe, and the run ends at S.

    `done_before` after `started_at` happens (a window's end is the newest idea seen, created during the run);
    one in the future lists nothing before it; a bookmark later than S moves back to S: the next run re-reads
    the ideas changed since S, never fewer.
    """
    fake.seed(40)
    by_created = sorted(fake.ideas(), key=lambda idea: idea["created_at"])
    started_at, done_before = by_created[20]["created_at"], by_created[30]["created_at"]
    ideas: dict[str, t.Any] = {}
    if odd == "future_done_before":
        done_before = "2999-01-01T00:00:00.000Z"
    elif odd == "later_bookmark":
        started_at, done_before = by_created[0]["created_at"], by_created[30]["created_at"]
        ideas = {"replication_key": "updated_at", "replication_key_value": by_created[10]["created_at"]}
    ideas[MARKER] = {"started_at": started_at, "done_before": done_before}
    state = {"bookmarks": {"ideas": ideas}}
    _guard(fake, 30)
    run = _run(fake, state)
    since = str(ideas.get("replication_key_value", ""))
    expected = {i["id"] for i in by_created if i["created_at"] >= done_before and i["updated_at"] >= since}
    assert run.ids("ideas") == expected
    assert run.bookmark() == started_at
    assert MARKER not in run.state["bookmarks"]["ideas"]


@pytest.mark.parametrize(("order", "most"), [("id", 30), ("updated_asc", 120)])
def test_a_listing_in_another_order_is_windowed_at_a_bounded_cost(order: str, most: int) -> None:
    """The window sizes assume the newest first; oldest first (ids ascending) costs about one request more a
    page, not one a guess (274 listing requests for these 12 pages before), and no order makes a loop."""
    with FakeAha(order=order) as fake:
        fake.seed(60)
        _guard(fake, 400)
        run = _run(fake)
        assert len(run.records("ideas")) == len(run.ids("ideas")) == 60
        assert len(_listing(fake)) <= most
