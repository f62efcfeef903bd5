"""The run's account-wide listings start at once (tap_aha.listings) and change nothing the run writes."""

from __future__ import annotations

import logging
import threading
import time
import typing as t

import pytest

from tap_aha.client import ListingStream
from tap_aha.listings import Listings
from tap_aha.tap import TapAha
from tests.conftest import Config, Run, run_cli, run_tap
from tests.fake_aha import FakeAha
from tests.fake_formats import API_PREFIX
from tests.fake_http import RequestLog
from tests.lakeflow_helpers import connect, flat, read_all

if t.TYPE_CHECKING:
    from pathlib import Path

LISTINGS = {
    f"{API_PREFIX}/{path}"
    for path in (
        "audits",
        "ideas/endorsements",
        "ideas",
        "idea_organizations",
        "idea_users",
        "idea_portals",
        "products",
    )
}


def _is_category_listing(path: str) -> bool:
    return path.startswith(f"{API_PREFIX}/products/") and path.endswith("/idea_categories")


def _is_idea_child(path: str) -> bool:
    parts = path[len(API_PREFIX) :].strip("/").split("/")
    return len(parts) == 3 and parts[0] == "ideas"  # /ideas/{id}/{child}


def _changes(fake: FakeAha) -> None:
    """An edit, a vote, a comment and a delete: every listing has something in the next run's window."""
    ids = fake.idea_ids()
    fake.update_idea(ids[0], name="edited")
    fake.add_vote(ids[1], proxy=True)
    fake.add_comment(ids[2])
    fake.delete_idea(ids[3])


def test_the_listings_are_in_flight_together_and_fan_outs_start_with_their_page(config: Config) -> None:
    with FakeAha(latency=0.3) as fake:
        fake.seed(12)
        config = {**config, "api_url": fake.url}
        first = run_tap(config)
        _changes(fake)
        fake.clear_requests()
        in_flight: list[int] = []

        def count(request: RequestLog) -> None:  # at each listing's arrival: listings not answered yet
            if request.path in LISTINGS:
                in_flight.append(sum(1 for r in list(fake.requests) if r.path in LISTINGS and r.status == 0))

        fake.on_request.append(count)
        run_tap(config, state=first.state)

    assert {r.path for r in fake.requests} >= LISTINGS  # the audit log too: the run reads deletes
    assert max(in_flight) == len(LISTINGS)  # every listing's first page in flight at once
    categories = [r.time for r in fake.requests if _is_category_listing(r.path)]
    children = [r.time for r in fake.requests if _is_idea_child(r.path)]
    assert categories
    # Each workspace's categories were asked for as soon as the workspaces' page came, long before the
    # products stream (the last to sync) wrote it: while the ideas' children were still being fetched.
    assert max(categories) < max(children)


def _normalized(run: Run, started: str) -> list[dict[str, t.Any]]:
    """The messages without what depends on the moment: extraction times, bookmarks set to the run's start."""

    def clock_free(value: t.Any) -> t.Any:
        if isinstance(value, dict):
            return {k: clock_free(v) for k, v in value.items()}
        if isinstance(value, str) and value >= started:  # the run's own clock, not Aha!'s data
            return "<run time>"
        return value

    out = []
    for message in run.messages:
        kept = {k: v for k, v in message.items() if k != "time_extracted"}
        out.append(clock_free(kept) if kept["type"] == "STATE" else kept)
    return out


def test_output_is_the_sequential_runs_with_a_refused_listing_skipped_alone(
    fake: FakeAha, config: Config, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    fake.seed(60)
    fake.companions.grow(900)  # more than a page of idea users
    config = {**config, "page_size": 50}
    first = run_tap(config)
    _changes(fake)
    for user in fake.companions.idea_users()[:120]:  # three pages of changed idea users
        fake.companions.update_idea_user(user["id"], title="changed")
    fake.companions.ideas_advanced = False  # a plan without organizations: the listing is refused
    runs = {}
    read_ahead = _read_ahead_urls(monkeypatch)
    for parallel in (1, 8):
        fake.clear_requests()
        read_ahead.clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            runs[parallel] = run_tap({**config, "parallel_requests": parallel}, state=first.state)
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1
        assert "'idea_organizations'" in refusals[0]
    sequential, concurrent = runs[1], runs[8]
    assert _normalized(concurrent, started) == _normalized(sequential, started)
    assert concurrent.records("idea_organizations") == []
    assert len(concurrent.records("idea_users")) == 120  # several pages
    for stream in ("ideas", "idea_votes", "idea_portals", "products", "idea_categories", "idea_comments"):
        assert concurrent.records(stream), stream
    # The refused listing was read ahead with the others, once, and its refusal decided at its stream's turn.
    assert f"{fake.url}/idea_organizations" in read_ahead
    assert len(fake.requests_to(f"{API_PREFIX}/idea_organizations")) == 1


def test_a_listing_that_fails_for_good_fails_the_run_in_one_line_and_keeps_its_bookmark(
    fake: FakeAha, config: Config, tmp_path: Path
) -> None:
    fake.seed(20)
    first = run_tap(config)
    fake.companions.update_idea_user(fake.companions.idea_users()[0]["id"], name="changed")
    fake.inject("503", path_prefix="/idea_users", times=100)
    fake.clear_requests()
    run = run_cli([], tmp_path, config={**config, "max_retries": 1}, state=first.state)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "Gave up after" in line]
    assert len(errors) == 1
    assert "Gave up after 2 attempts: HTTP 503" in errors[0]
    assert "Traceback" not in run.stderr
    assert len(fake.requests_to(f"{API_PREFIX}/idea_users")) == 2  # read ahead, retried once, no more
    assert [m for m in run.messages if m["type"] == "RECORD" and m["stream"] == "idea_users"] == []
    for state in run.states:
        assert state["bookmarks"].get("idea_users") == first.state["bookmarks"]["idea_users"]
    assert run.records("ideas")  # the streams before it were written, as without read-ahead


def test_a_listing_that_shifts_after_its_first_page_was_read_ahead_is_walked_again(
    fake: FakeAha, config: Config
) -> None:
    fake.seed(30)
    listed_first = max(fake.ideas(), key=lambda i: (i["created_at"], i["id"]))["id"]  # newest first: page 1
    done = threading.Event()

    def delete_on_page_two(request: RequestLog) -> None:
        if request.path == f"{API_PREFIX}/ideas" and request.query.get("page") == "2" and not done.is_set():
            done.set()
            fake.delete_idea(listed_first)

    fake.on_request.append(delete_on_page_two)
    run = run_tap({**config, "page_size": 10})
    assert set(fake.idea_ids()) <= run.ids("ideas")  # nothing the shift moved onto page 1 was skipped
    first_pages = [r for r in fake.requests_to(f"{API_PREFIX}/ideas") if r.query.get("page") == "1"]
    assert len(first_pages) == 2  # the page read ahead, then the second walk's own


def _wait_for(predicate: t.Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_listing_reads_only_a_few_pages_ahead_and_stops_with_the_run(fake: FakeAha, config: Config) -> None:
    fake.seed(10)
    fake.companions.grow(400)  # 100 idea users: 50 pages of 2
    tap = TapAha(config={**config, "page_size": 2})
    users = t.cast("ListingStream", tap.streams["idea_users"])
    listings = tap.connection.listings
    (walk,) = users.walks_ahead()
    listings.start([walk])
    path = f"{API_PREFIX}/idea_users"
    _wait_for(lambda: len(fake.requests_to(path)) >= users.pages_ahead)
    time.sleep(0.3)
    assert len(fake.requests_to(path)) == users.pages_ahead  # fetched ahead, then held back
    pages = listings.take(users.name, walk.url, walk.params)
    assert pages is not None
    next(pages)
    _wait_for(lambda: len(fake.requests_to(path)) > users.pages_ahead)
    time.sleep(0.3)
    assert len(fake.requests_to(path)) == users.pages_ahead + 1  # one taken: one more fetched
    assert listings.take(users.name, walk.url, walk.params) is None  # a second walk reads for itself
    assert sum(1 for _ in pages) == 49  # the rest, in order, to the end
    assert [int(r.query["page"]) for r in fake.requests_to(path)] == list(range(1, 51))

    # A listing failing over and over stops retrying once the run stops.
    fake.inject("503", path_prefix="/idea_portals", times=1000)
    portals = t.cast("ListingStream", tap.streams["idea_portals"])
    listings.start(portals.walks_ahead())
    portals_path = f"{API_PREFIX}/idea_portals"
    _wait_for(lambda: len(fake.requests_to(portals_path)) >= 2)
    listings.stop()
    sent = len(fake.requests_to(portals_path))
    time.sleep(0.5)
    assert len(fake.requests_to(portals_path)) <= sent + 1  # at most the one already under way


def _read_ahead_urls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs the read-ahead fetched (`fetch_page` is its path; a stream's own walk never calls it)."""
    urls: list[str] = []
    fetch = ListingStream.fetch_page

    def recording(self: ListingStream, url: str, params: t.Mapping[str, t.Any]) -> t.Any:
        urls.append(url)
        return fetch(self, url, params)

    monkeypatch.setattr(ListingStream, "fetch_page", recording)
    return urls


def test_a_workspaces_refused_categories_read_ahead_skip_that_workspace_alone(
    fake: FakeAha, config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake.seed(5)
    expected = {pid: {c["id"] for c in cs} for pid, cs in fake.companions.categories().items()}
    refused = list(expected)[1]
    fake.inject("403", path_prefix=f"/products/{refused}/idea_categories", times=1000)
    read_ahead = _read_ahead_urls(monkeypatch)
    with caplog.at_level(logging.WARNING):
        run = run_tap(config, streams=("products", "idea_categories"))
    for pid in expected:  # every workspace's categories read ahead, the refused one too, and not asked again
        assert f"{fake.url}/products/{pid}/idea_categories" in read_ahead
        assert len(fake.requests_to(f"{API_PREFIX}/products/{pid}/idea_categories")) == 1
    assert run.ids("idea_categories") == set().union(
        *(ids for pid, ids in expected.items() if pid != refused)
    )
    assert run.ids("products") == set(expected)
    warnings = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 1  # decided where the stream took the page: that workspace alone
    assert refused in warnings[0]


@pytest.mark.parametrize(
    ("streams", "proxy"),
    [(("idea_votes", "ideas", "idea_proxy_votes"), None), (("ideas", "idea_proxy_votes"), "true")],
)
def test_the_runs_vote_plan_reads_its_one_vote_listing_ahead_from_the_wider_window(
    fake: FakeAha,
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
    streams: tuple[str, ...],
    proxy: str | None,
) -> None:
    fake.seed(20)
    state = run_tap(config).state
    ideas_since = "2020-01-02T03:04:05.000Z"  # earlier than the votes' own bookmark: the window widens
    state["bookmarks"]["ideas"]["replication_key_value"] = ideas_since
    fake.clear_requests()
    read_ahead = _read_ahead_urls(monkeypatch)
    run = run_tap(config, state=state, streams=streams)
    (listing,) = fake.requests_to(f"{API_PREFIX}/ideas/endorsements")  # one listing, read ahead, taken
    assert f"{fake.url}/ideas/endorsements" in read_ahead
    assert listing.query.get("updated_since") == ideas_since
    assert listing.query.get("proxy") == proxy
    assert run.records("idea_proxy_votes")
    assert not [r for r in fake.requests if _is_idea_child(r.path) and r.path.endswith("/endorsements")]


def test_lakeflow_reads_start_no_read_ahead(fake: FakeAha, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.seed(5)
    started: list[object] = []
    monkeypatch.setattr(Listings, "start", lambda self, walks: started.append(walks))
    connector = connect(fake)
    for table in ("ideas", "idea_votes", "idea_categories"):
        batches, _ = read_all(connector, table)
        assert flat(batches), table
    assert started == []  # the read-ahead is the tap sync's: no Lakeflow read leaves its workers behind
