"""Full and incremental syncs against the fake Aha! server, checked record by record."""

from __future__ import annotations

import datetime as dt
import json
import typing as t

import pytest

from tap_aha.errors import AuthError
from tap_aha.tap import TapAha
from tests.conftest import IDEA_STREAMS, Config, run_tap
from tests.fake_aha import FakeAha
from tests.fake_formats import API_PREFIX

DETAIL_ONLY = ("product_id", "endorsements_count", "comments_count", "votes", "custom_fields", "categories")


def _expected_votes(fake: FakeAha) -> dict[str, dict[str, t.Any]]:
    return {v["id"]: v for idea_id in fake.idea_ids() for v in fake.votes(idea_id, proxy_only=True)}


def _expected_comments(fake: FakeAha) -> dict[str, tuple[str, dict[str, t.Any]]]:
    return {c["id"]: (idea_id, c) for idea_id in fake.idea_ids() for c in fake.comments(idea_id)}


def test_full_sync_emits_every_full_idea_vote_and_comment_exactly(fake: FakeAha, config: Config) -> None:
    fake.seed(120)
    run = run_tap(config)

    ideas = {r["id"]: r for r in run.records("ideas")}
    assert ideas == {i["id"]: i for i in fake.ideas()}  # the full idea, byte for byte as JSON
    assert all(key in idea for idea in ideas.values() for key in DETAIL_ONLY)

    votes = run.records("idea_proxy_votes")
    expected_votes = _expected_votes(fake)
    assert len(votes) == len(expected_votes) > 0
    for vote in votes:
        assert vote == {**expected_votes[vote["id"]], "idea_id": vote["idea_id"]}
        assert vote["idea_organization"] is not None  # proxy votes only

    comments = run.records("idea_comments")
    expected_comments = _expected_comments(fake)
    assert len(comments) == len(expected_comments) > 0
    for comment in comments:
        idea_id, original = expected_comments[comment["id"]]
        assert comment == {**original, "idea_id": idea_id}


def test_each_stream_sends_one_schema_and_keys(fake: FakeAha, config: Config) -> None:
    fake.seed(30)
    run = run_tap(config)
    for stream in ("ideas", "idea_proxy_votes", "idea_comments"):
        schemas = run.schemas(stream)
        assert len(schemas) == 1, stream
        assert schemas[0]["key_properties"] == ["id"]
        assert schemas[0]["bookmark_properties"] == ["updated_at"]


def test_list_that_ignores_fields_is_completed_from_each_ideas_detail(config: Config) -> None:
    with FakeAha(list_honours_fields=False) as fake:
        fake.seed(25)
        run = run_tap({**config, "api_url": fake.url}, streams=IDEA_STREAMS)
        assert {r["id"]: r for r in run.records("ideas")} == {i["id"]: i for i in fake.ideas()}
        assert fake.count("/ideas/") >= 25  # one detail per idea (plus children)
        listing = "/api/v1/ideas/endorsements"
        details = [r for r in fake.requests if r.path.count("/") == 4 and r.path.startswith("/api/v1/ideas/")]
        assert len([r for r in details if r.path != listing]) == 25


def test_list_asks_for_the_full_idea_with_fields_and_max_page_size(fake: FakeAha, config: Config) -> None:
    fake.seed(450)
    run_tap(config, streams=IDEA_STREAMS)
    listing = [r for r in fake.requests if r.path == "/api/v1/ideas"]
    assert [r.query["page"] for r in listing] == ["1", "2", "3"]
    assert {r.query["per_page"] for r in listing} == {"200"}
    fields = listing[0].query["fields"].split(",")
    assert fields[0] == "*"
    assert set(DETAIL_ONLY) <= set(fields)
    # No detail requests needed (the account's vote listing is /ideas/endorsements, not a detail).
    assert not any(r.path.count("/") == 4 and not r.path.endswith("/endorsements") for r in fake.requests)


def test_empty_account_reads_one_page_and_keeps_no_bookmark(fake: FakeAha, config: Config) -> None:
    run = run_tap(config, streams=IDEA_STREAMS)
    assert run.records("ideas") == []
    assert sorted(r.path for r in fake.requests) == ["/api/v1/ideas", "/api/v1/ideas/endorsements"]  # 1 each
    assert run.bookmark() is None


def test_filters_and_start_date_are_sent(fake: FakeAha, config: Config) -> None:
    fake.seed(20)
    run_tap(
        {**config, "ideas_workflow_status": "Shipped", "ideas_q": "export", "start_date": "2023-01-01"},
        streams=IDEA_STREAMS,
    )
    first = next(r for r in fake.requests if r.path == "/api/v1/ideas")
    assert first.query["workflow_status"] == "Shipped"
    assert first.query["q"] == "export"
    assert first.query["updated_since"] == "2023-01-01T00:00:00.000Z"


def test_incremental_run_reads_only_changed_ideas_and_their_children(fake: FakeAha, config: Config) -> None:
    fake.seed(200)
    first = run_tap(config)
    bookmark = first.bookmark()
    assert bookmark == max(i["updated_at"] for i in fake.ideas())

    ids = fake.idea_ids()
    updated, voted, commented = ids[3], ids[50], ids[120]
    fake.update_idea(updated, name="Renamed idea")
    vote = fake.add_vote(voted)
    comment = fake.add_comment(commented)
    new_idea = fake.add_idea(name="Brand new")
    fake.clear_requests()

    second = run_tap(config, state=first.state, streams=IDEA_STREAMS)

    assert next(r for r in fake.requests if r.path == "/api/v1/ideas").query["updated_since"] == bookmark
    ties = {i["id"] for i in fake.ideas() if i["updated_at"] == bookmark}  # the filter is inclusive
    assert second.ids("ideas") == {updated, voted, commented, new_idea["id"]} | ties
    assert {r["name"] for r in second.records("ideas") if r["id"] == updated} == {"Renamed idea"}
    assert vote["id"] in second.ids("idea_proxy_votes")
    assert {r["idea_id"] for r in second.records("idea_proxy_votes")} <= second.ids("ideas")
    assert comment["id"] in second.ids("idea_comments")
    assert {r["idea_id"] for r in second.records("idea_comments")} <= second.ids("ideas")
    children_asked = {r.path.split("/")[4] for r in fake.requests if r.path.count("/") == 5}
    assert children_asked <= second.ids("ideas")
    second_bookmark = second.bookmark()
    assert second_bookmark is not None
    assert bookmark < second_bookmark <= max(i["updated_at"] for i in fake.ideas())


def test_run_without_changes_keeps_the_bookmark(fake: FakeAha, config: Config) -> None:
    fake.seed(40)
    first = run_tap(config)
    fake.clear_requests()
    second = run_tap(config, state=first.state)
    ties = {i["id"] for i in fake.ideas() if i["updated_at"] == first.bookmark()}
    assert second.ids("ideas") == ties  # only what the inclusive filter repeats
    assert second.bookmark() == first.bookmark()
    assert len([r for r in fake.requests if r.path == "/api/v1/ideas"]) == 1


def test_bookmark_never_passes_the_run_start(fake: FakeAha, config: Config) -> None:
    fake.seed(10)
    future = fake.update_idea(fake.idea_ids()[0], name="From the future")
    later = "2099-01-01T00:00:00.000Z"
    fake.update_idea(future["id"], updated_at=later)
    before = dt.datetime.now(dt.UTC)
    run = run_tap(config)
    assert later in {r["updated_at"] for r in run.records("ideas")}
    bookmark = run.bookmark()
    assert bookmark is not None
    assert bookmark < later
    assert dt.datetime.fromisoformat(bookmark.replace("Z", "+00:00")) <= before + dt.timedelta(seconds=1)


def test_bookmark_follows_the_servers_clock_when_it_is_behind(fake: FakeAha, config: Config) -> None:
    """An Aha! clock an hour behind ours: updates made during the run must still be after the bookmark."""
    fake.seed(10)
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    fake.clock = lambda: behind
    fake.update_idea(fake.idea_ids()[0], name="Changed on Aha!'s clock")
    run = run_tap(config)
    bookmark = run.bookmark()
    assert bookmark is not None
    assert bookmark <= behind.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_state_size_does_not_grow_with_the_number_of_ideas(config: Config) -> None:
    largest, final = {}, {}
    for count in (100, 2_000):
        with FakeAha(rng_seed=count) as fake:
            fake.seed(count)
            run = run_tap({**config, "api_url": fake.url}, streams=IDEA_STREAMS)
            assert len(run.records("ideas")) == count
            largest[count] = max(len(json.dumps(state)) for state in run.states)
            final[count] = len(json.dumps(run.state))
            assert len(run.states) < max(20, count // 50)  # not one per idea; a few per first-sync window
    # 2,000 ideas are read in windows (tap_aha.first_sync): mid-run, their marker adds about 100 bytes, and
    # the delete bookmark a first run otherwise writes at its end is there already.
    assert largest[100] < largest[2_000] <= largest[100] + 200 < 1_200
    assert final[2_000] == final[100] < 500  # the bookmarks of ideas, comments, votes, deletes


@pytest.mark.parametrize("cap", [1, 7, 250])
def test_max_ideas_is_an_exact_cap_and_keeps_the_bookmark(fake: FakeAha, config: Config, cap: int) -> None:
    fake.seed(300)
    run = run_tap({**config, "max_ideas": cap})
    assert len(run.ids("ideas")) == cap
    assert run.bookmark() in {None, "1970-01-01T00:00:00.000Z"}  # the next run reads everything


def test_parallel_prefetch_writes_exactly_what_a_sequential_run_writes(config: Config) -> None:
    outputs = []
    for parallel in (1, 4):
        with FakeAha(rng_seed=3, latency=0.002) as fake:
            fake.seed(150)
            run = run_tap({**config, "api_url": fake.url, "parallel_requests": parallel, "page_size": 40})
            trace = [(m["type"], m.get("stream"), m.get("record", {}).get("id")) for m in run.messages]
            outputs.append(trace)
    assert outputs[0] == outputs[1]


def test_a_fatal_error_in_a_prefetch_stops_the_run_without_a_flood(fake: FakeAha, config: Config) -> None:
    fake.seed(200)
    victim = fake.idea_ids()[-1]  # newest: first in the listing
    fake.inject("401", path_prefix=f"/ideas/{victim}/comments", times=1)
    with pytest.raises(AuthError):
        run_tap(config)
    # The queued child requests of the page were not sent (the account-wide listings start at once, apart).
    children = sum(
        1 for r in fake.requests if r.path.count("/") > 4 and r.path.startswith(f"{API_PREFIX}/ideas/")
    )
    assert children < 20


def test_children_selected_without_ideas_warn_and_still_arrive(
    fake: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    fake.seed(20)
    catalog = TapAha(config=config).catalog_dict
    for entry in catalog["streams"]:
        top = next(m for m in entry["metadata"] if m["breadcrumb"] == [])
        top["metadata"]["selected"] = entry["tap_stream_id"] != "ideas"
    run = run_tap(config, catalog=catalog)
    assert run.records("ideas") == []
    assert run.records("idea_comments")
    assert "selected without 'ideas'" in caplog.text
