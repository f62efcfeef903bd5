"""Proxy votes from the account-wide vote listing (`GET /ideas/endorsements`), not one request per idea."""

from __future__ import annotations

import logging
import math
import typing as t

import pytest

from tests.conftest import IDEA_STREAMS, Config, Run, run_tap
from tests.fake_aha import FakeAha
from tests.fake_http import RequestLog
from tests.lakeflow_helpers import connect, flat, read_all

LISTING = "/api/v1/ideas/endorsements"
STREAM = "idea_proxy_votes"


def per_idea_vote_requests(fake: FakeAha) -> list[RequestLog]:
    return [r for r in fake.requests if r.path.endswith("/endorsements") and r.path != LISTING]


def proxy_votes(fake: FakeAha) -> dict[str, dict[str, t.Any]]:
    return {v["id"]: {**v, "idea_id": iid} for iid in fake.idea_ids() for v in fake.votes(iid)}


def records_trace(run: Run) -> list[tuple[str, str]]:
    """The RECORD messages in order (the SDK writes an idea's children right before the idea)."""
    return [(m["stream"], m["record"]["id"]) for m in run.messages if m["type"] == "RECORD"]


def test_full_run_reads_one_listing_and_writes_what_the_per_idea_path_writes(config: Config) -> None:
    traces = []
    for refused in (None, 403):
        with FakeAha(rng_seed=7) as fake:
            fake.seed(600)  # more than 200 proxy votes: a listing of several pages
            fake.account_votes_refused = refused
            run = run_tap({**config, "api_url": fake.url}, streams=IDEA_STREAMS)
            traces.append(records_trace(run))
            assert {r["id"]: r for r in run.records(STREAM)} == proxy_votes(fake)
            if refused is None:
                pages = fake.requests_to(LISTING)
                assert len(proxy_votes(fake)) > 200
                assert len(pages) == math.ceil(len(proxy_votes(fake)) / 200)
                assert all(r.query["proxy"] == "true" and r.query["per_page"] == "200" for r in pages)
                assert all("updated_since" not in r.query for r in pages)  # a first run: every vote
                assert per_idea_vote_requests(fake) == []
    assert traces[0] == traces[1]  # records, their order and their ideas as with one request per idea


def test_incremental_run_lists_only_the_new_votes(fake: FakeAha, config: Config) -> None:
    fake.seed(200)
    first = run_tap(config, streams=IDEA_STREAMS)
    ids = fake.idea_ids()
    new = [fake.add_vote(ids[10])["id"], fake.add_vote(ids[20])["id"]]
    fake.update_idea(ids[30], name="Renamed")
    fake.clear_requests()
    second = run_tap(config, state=first.state, streams=IDEA_STREAMS)

    pages = fake.requests_to(LISTING)
    assert len(pages) == 1
    assert pages[0].query["updated_since"] == first.bookmark()
    assert per_idea_vote_requests(fake) == []
    assert set(new) <= second.ids(STREAM)
    assert {r["idea_id"] for r in second.records(STREAM)} <= second.ids("ideas")
    window = len(second.ids("ideas"))
    # 1 ideas page + 1 vote page + comments and portal comments per idea + 1 /audits page
    assert fake.count() == 1 + 1 + 2 * window + 1


def test_a_vote_edited_without_bumping_its_idea_is_emitted(fake: FakeAha, config: Config) -> None:
    fake.seed(60)
    first = run_tap(config, streams=IDEA_STREAMS)
    vote = next(iter(proxy_votes(fake).values()))
    edited = fake.edit_vote(vote["id"], weight=9)
    second = run_tap(config, state=first.state, streams=IDEA_STREAMS)

    assert vote["idea_id"] not in second.ids("ideas")  # its idea did not change
    assert [r for r in second.records(STREAM) if r["id"] == vote["id"]] == [
        {**edited, "idea_id": vote["idea_id"]}
    ]
    assert records_trace(second)[-1] == (STREAM, vote["id"])  # after the last idea
    assert len(second.schemas(STREAM)) == 1
    assert second.bookmark(STREAM) == edited["updated_at"]


def test_a_vote_of_an_unlisted_idea_is_left_out_when_ideas_are_filtered(
    fake: FakeAha, config: Config
) -> None:
    fake.seed(60)
    first = run_tap(config, streams=IDEA_STREAMS)
    vote = next(iter(proxy_votes(fake).values()))
    fake.edit_vote(vote["id"], weight=9)
    second = run_tap({**config, "ideas_q": "no idea is called this"}, state=first.state, streams=IDEA_STREAMS)
    assert second.records(STREAM) == []  # the filters may leave its idea out: not sent


def test_a_server_that_ignores_proxy_still_yields_only_proxy_votes(fake: FakeAha, config: Config) -> None:
    fake.seed(150)
    fake.account_votes_honour_proxy = False
    run = run_tap(config, streams=IDEA_STREAMS)
    every = [v for iid in fake.idea_ids() for v in fake.votes(iid, proxy_only=False)]
    assert len(every) > len(proxy_votes(fake))  # the listing sent portal votes too
    assert {r["id"]: r for r in run.records(STREAM)} == proxy_votes(fake)


@pytest.mark.parametrize("status", [403, 404])
def test_a_refused_listing_falls_back_to_one_request_per_idea_with_one_warning(
    fake: FakeAha, config: Config, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    fake.seed(80)
    fake.account_votes_refused = status
    with caplog.at_level(logging.WARNING):
        run = run_tap(config, streams=IDEA_STREAMS)
    warnings = [r.getMessage() for r in caplog.records if "account-wide vote listing" in r.getMessage()]
    assert len(warnings) == 1
    assert "one request per changed idea" in warnings[0]
    assert len(fake.requests_to(LISTING)) == 1
    voted = {i["id"] for i in fake.ideas() if i["endorsements_count"]}
    assert {r.path.split("/")[4] for r in per_idea_vote_requests(fake)} == voted
    assert {r["id"]: r for r in run.records(STREAM)} == proxy_votes(fake)


def test_idea_votes_and_proxy_votes_share_one_listing(fake: FakeAha, config: Config) -> None:
    fake.seed(300)
    streams = (*IDEA_STREAMS, "idea_votes")
    every = {v["id"]: v for iid in fake.idea_ids() for v in fake.votes(iid, proxy_only=False)}
    first = run_tap(config, streams=streams)
    pages = fake.requests_to(LISTING)
    assert len(pages) == math.ceil(len(every) / 200)
    assert all("proxy" not in r.query for r in pages)  # every vote: idea_votes needs them all
    assert {r["id"]: r for r in first.records("idea_votes")} == every
    assert {r["id"]: r for r in first.records(STREAM)} == proxy_votes(fake)
    assert per_idea_vote_requests(fake) == []

    # idea_votes without a bookmark of its own, ideas with one: the listing covers the wider window, each
    # stream gets its own.
    state = {"bookmarks": {k: v for k, v in first.state["bookmarks"].items() if k != "idea_votes"}}
    new = fake.add_vote(fake.idea_ids()[5])
    fake.clear_requests()
    second = run_tap(config, state=state, streams=streams)
    assert len(fake.requests_to(LISTING)) == math.ceil(len(every) / 200)
    assert all("updated_since" not in r.query for r in fake.requests_to(LISTING))
    assert len(second.records("idea_votes")) == len(every) + 1
    assert second.ids(STREAM) == {new["id"]} | {
        v["id"] for v in proxy_votes(fake).values() if v["updated_at"] >= str(first.bookmark())
    }


def test_with_idea_votes_refused_too_proxy_votes_fall_back_with_a_warning_each(
    fake: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    fake.seed(80)
    fake.account_votes_refused = 403
    with caplog.at_level(logging.WARNING):
        run = run_tap(config, streams=(*IDEA_STREAMS, "idea_votes"))
    assert caplog.text.count("Skipping 'idea_votes'") == 1
    assert caplog.text.count("account-wide vote listing") == 1
    assert len(fake.requests_to(LISTING)) == 1  # not asked again for the proxy votes
    assert run.records("idea_votes") == []
    assert {r["id"]: r for r in run.records(STREAM)} == proxy_votes(fake)


def test_lakeflow_reads_proxy_votes_from_the_listing_in_the_ideas_order(fake: FakeAha) -> None:
    fake.seed(250)
    batches, _ = read_all(connect(fake), STREAM, table_options={"max_records_per_batch": "30"})
    assert len(batches) > 3
    assert {r["id"] for r in flat(batches)} == set(proxy_votes(fake))
    assert len(fake.requests_to(LISTING)) == math.ceil(len(proxy_votes(fake)) / 200)  # once for the pass
    assert per_idea_vote_requests(fake) == []

    fake.account_votes_refused = 403
    fallback, _ = read_all(connect(fake), STREAM, table_options={"max_records_per_batch": "30"})
    assert fallback == batches  # the same records in the same batches, from one request per idea
