"""The account-wide companion streams: votes, organizations, idea users, portals, workspaces, categories."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import time
import typing as t
from pathlib import Path

import pytest

from tap_aha.client import ListingStream
from tap_aha.companions import AccountStream
from tap_aha.errors import AuthError, StateError
from tap_aha.inputs import read_state
from tap_aha.lakeflow import LakeflowConnect
from tap_aha.tap import STREAM_NAMES
from tests.conftest import Config, run_cli, run_tap
from tests.fake_aha import FakeAha
from tests.fake_formats import parse_ts
from tests.fake_http import RequestLog
from tests.lakeflow_helpers import connect, flat, read_all

COMPANIONS = ("idea_votes", "idea_organizations", "idea_users", "idea_portals", "products", "idea_categories")
PATHS = {
    "idea_votes": "/api/v1/ideas/endorsements",
    "idea_organizations": "/api/v1/idea_organizations",
    "idea_users": "/api/v1/idea_users",
    "idea_portals": "/api/v1/idea_portals",
    "products": "/api/v1/products",
}


def every_vote(fake: FakeAha) -> dict[str, dict[str, t.Any]]:
    return {v["id"]: v for iid in fake.idea_ids() for v in fake.votes(iid, proxy_only=False)}


def test_full_run_emits_every_companion_record_as_aha_has_it(fake: FakeAha, config: Config) -> None:
    fake.seed(120)
    run = run_tap(config, streams=COMPANIONS)
    companions = fake.companions

    assert {r["id"]: r for r in run.records("idea_votes")} == every_vote(fake)
    assert {r["idea_id"] for r in run.records("idea_votes")} <= set(fake.idea_ids())
    assert {r["id"]: r for r in run.records("idea_organizations")} == {
        o["id"]: o for o in companions.organizations()
    }
    users = {u["id"]: u for u in companions.idea_users()}
    assert {r["id"]: r for r in run.records("idea_users")} == users
    assert {r["id"]: r for r in run.records("idea_portals")} == {p["id"]: p for p in companions.portals()}
    assert {r["id"]: r for r in run.records("products")} == {p["id"]: p for p in companions.products()}
    categories = {
        c["id"]: {**c, "product_id": pid} for pid, cats in companions.categories().items() for c in cats
    }
    assert {r["id"]: r for r in run.records("idea_categories")} == categories

    # Linked: votes name organizations and idea users that are listed; ideas their workspace and categories.
    organizations = {r["id"] for r in run.records("idea_organizations")}
    voters = {v["idea_organization"]["id"] for v in run.records("idea_votes") if v.get("idea_organization")}
    assert voters
    assert voters <= organizations
    portal_voters = {
        v["endorsed_by_idea_user"]["id"] for v in run.records("idea_votes") if "endorsed_by_idea_user" in v
    }
    assert portal_voters
    assert portal_voters <= set(users)
    assert {i["product_id"] for i in fake.ideas()} <= run.ids("products")
    assert {c["id"] for i in fake.ideas() for c in i["categories"]} <= set(categories)
    assert any(isinstance(c["parent_id"], int) for c in categories.values())  # the tree nests, ids drift
    assert any(isinstance(c["parent_id"], str) for c in categories.values())

    # Types as documented: ids strings, revenue a decimal string, a vote's value too.
    assert all(isinstance(r["id"], str) for s in COMPANIONS for r in run.records(s))
    revenues = [r["revenue"] for r in run.records("idea_organizations")]
    assert any(isinstance(v, str) for v in revenues)
    assert all(v is None or (isinstance(v, str) and float(v) >= 0) for v in revenues)
    for stream in COMPANIONS:
        schemas = run.schemas(stream)
        assert len(schemas) == 1, stream
        assert schemas[0]["key_properties"] == ["id"]


def test_organizations_are_asked_for_the_full_record(fake: FakeAha, config: Config) -> None:
    fake.seed(20)
    run = run_tap(config, streams=["idea_organizations"])
    (request,) = fake.requests_to(PATHS["idea_organizations"])
    fields = request.query["fields"].split(",")
    assert fields[0] == "*"
    assert {"updated_at", "revenue", "email_domains", "endorsements_count", "custom_fields"} <= set(fields)
    assert all("revenue" in r and "updated_at" in r for r in run.records("idea_organizations"))
    counted = {o["id"]: o["endorsements_count"] for o in fake.companions.organizations()}
    assert sum(counted.values()) == sum(1 for v in every_vote(fake).values() if v.get("idea_organization"))


def test_a_listing_costs_one_request_per_page_of_200(config: Config) -> None:
    with FakeAha(rng_seed=5) as fake:
        fake.seed(1_000)
        run_tap({**config, "api_url": fake.url}, streams=COMPANIONS)
        votes = len(every_vote(fake))
        sizes = {
            "idea_votes": votes,
            "idea_organizations": len(fake.companions.organizations()),
            "idea_users": len(fake.companions.idea_users()),
            "idea_portals": len(fake.companions.portals()),
            "products": len(fake.companions.products()),
        }
        for stream, size in sizes.items():
            assert len(fake.requests_to(PATHS[stream])) == max(1, math.ceil(size / 200)), stream
        assert sizes["idea_users"] > 200  # more than one page
        categories = [r for r in fake.requests if r.path.endswith("/idea_categories")]
        assert len(categories) == len(fake.companions.products())  # one per workspace, none per idea
        assert len(fake.requests) == sum(max(1, math.ceil(size / 200)) for size in sizes.values()) + len(
            categories
        )


def test_incremental_run_reads_only_what_changed(fake: FakeAha, config: Config) -> None:
    fake.seed(150)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    first = run_tap(config, streams=COMPANIONS)
    bookmarks = first.state["bookmarks"]
    assert bookmarks["idea_votes"]["replication_key_value"] == max(
        v["updated_at"] for v in every_vote(fake).values()
    )
    organizations = fake.companions.organizations()
    assert bookmarks["idea_organizations"]["replication_key_value"] == max(
        o["updated_at"] for o in organizations
    )
    users_mark = bookmarks["idea_users"]
    assert users_mark["replication_key"] == "updated_since"
    assert before <= parse_ts(users_mark["replication_key_value"]) <= dt.datetime.now(dt.UTC)
    assert len(json.dumps(first.state)) < 1_000

    ids = fake.idea_ids()
    vote = fake.add_vote(ids[4], proxy=False)
    proxy = fake.add_vote(ids[9])
    customer = fake.companions.update_organization(organizations[2]["id"], revenue="77000.0")
    user = fake.companions.update_idea_user(fake.companions.idea_users()[3]["id"], title="VP Product")
    newcomer = fake.companions.add_idea_user(title="Buyer")
    category = fake.companions.add_category(fake.companions.products()[1]["id"], "Reporting v2")
    fake.clear_requests()
    second = run_tap(config, state=first.state, streams=COMPANIONS)

    tie_votes = {
        i
        for i, v in every_vote(fake).items()
        if v["updated_at"] == bookmarks["idea_votes"]["replication_key_value"]
    }
    assert second.ids("idea_votes") == {vote["id"], proxy["id"]} | tie_votes
    last_org = bookmarks["idea_organizations"]["replication_key_value"]
    assert second.ids("idea_organizations") == {customer["id"]} | {
        o["id"] for o in organizations if o["updated_at"] == last_org
    }
    assert (
        next(r for r in second.records("idea_organizations") if r["id"] == customer["id"])["revenue"]
        == "77000.0"
    )
    assert second.ids("idea_users") == {user["id"], newcomer["id"]}
    assert category["id"] in second.ids("idea_categories")
    assert len(second.records("products")) == len(fake.companions.products())  # full tables, whole again
    assert (
        fake.requests_to(PATHS["idea_votes"])[0].query["updated_since"]
        == bookmarks["idea_votes"]["replication_key_value"]
    )
    assert (
        fake.requests_to(PATHS["idea_users"])[0].query["updated_since"] == users_mark["replication_key_value"]
    )
    assert "updated_since" not in fake.requests_to(PATHS["products"])[0].query
    # The run's start on Aha!'s clock (its Date header counts whole seconds, so two quick runs may share it).
    moved = second.state["bookmarks"]["idea_users"]["replication_key_value"]
    assert users_mark["replication_key_value"] <= moved
    assert parse_ts(moved) <= dt.datetime.now(dt.UTC)


def test_idea_users_bookmark_follows_the_servers_clock(fake: FakeAha, config: Config) -> None:
    fake.seed(10)
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    fake.clock = lambda: behind
    run = run_tap(config, streams=["idea_users"])
    assert parse_ts(run.state["bookmarks"]["idea_users"]["replication_key_value"]) <= behind


def test_a_refused_endpoint_skips_its_stream_with_one_warning(
    fake: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    fake.seed(40)
    first = run_tap(config)
    fake.companions.ideas_advanced = False  # a plan without organizations
    fake.add_vote(fake.idea_ids()[0])
    with caplog.at_level(logging.WARNING):
        second = run_tap(config, state=first.state)
    warnings = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 1
    assert "'idea_organizations'" in warnings[0]
    assert "!idea_organizations.*" in warnings[0]
    assert "HTTP 403" in warnings[0]
    assert second.records("idea_organizations") == []
    assert second.records("idea_votes")  # the others go on
    assert second.records("ideas")
    assert second.state["bookmarks"]["idea_organizations"] == first.state["bookmarks"]["idea_organizations"]


def test_a_refused_endpoint_run_succeeds_from_the_command_line(fake: FakeAha, tmp_path: Path) -> None:
    fake.seed(10)
    fake.companions.ideas_advanced = False
    run = run_cli([], tmp_path, config={"api_key": fake.api_key, "api_url": fake.url})
    assert run.returncode == 0
    assert run.stderr.count("Skipping 'idea_organizations'") == 1
    assert {s for s in STREAM_NAMES if run.records(s)} >= {"ideas", "idea_votes", "idea_users", "products"}


def test_every_stream_reads_its_endpoint_without_a_refusal(
    fake: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """Optional endpoints are declared per class: a mistyped path would be skipped with a warning here."""
    fake.seed(10)
    with caplog.at_level(logging.WARNING):
        run = run_tap(config)
    assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage()] == []
    assert {s for s in STREAM_NAMES if run.records(s)} == set(STREAM_NAMES)
    assert not any(vars(stream).get("optional_endpoint") for stream in (AccountStream, ListingStream))


def test_a_missing_feature_404_skips_a_workspace_stream_and_its_categories(
    fake: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    fake.seed(10)
    fake.inject("404", path_prefix="/products", times=1)
    with caplog.at_level(logging.WARNING):
        run = run_tap(config, streams=COMPANIONS)
    assert run.records("products") == run.records("idea_categories") == []
    assert "Skipping 'products', 'idea_categories'" in caplog.text
    assert run.records("idea_portals")


def test_401_on_a_companion_still_stops_the_run(fake: FakeAha, config: Config) -> None:
    fake.seed(10)
    fake.inject("401", path_prefix="/idea_users", times=1)
    with pytest.raises(AuthError, match="rejected the API key"):
        run_tap(config)


def test_categories_arrive_without_products_selected(fake: FakeAha, config: Config) -> None:
    fake.seed(10)
    run = run_tap(config, streams=["idea_categories"])
    assert run.records("products") == []
    expected = {c["id"] for cats in fake.companions.categories().values() for c in cats}
    assert run.ids("idea_categories") == expected
    assert all(
        r["product_id"] in {p["id"] for p in fake.companions.products()}
        for r in run.records("idea_categories")
    )


def test_a_listing_that_shifts_mid_walk_loses_no_record(fake: FakeAha, config: Config) -> None:
    fake.seed(400)
    added: list[str] = []

    def shift(request: RequestLog) -> None:  # a user created while page 2 is read moves the boundaries
        if request.path == PATHS["idea_users"] and request.query.get("page") == "2" and not added:
            added.append(fake.companions.add_idea_user()["id"])

    fake.on_request.append(shift)
    run = run_tap({**config, "page_size": 30}, streams=["idea_users"])
    assert run.ids("idea_users") == {u["id"] for u in fake.companions.idea_users()}
    assert len(run.records("idea_users")) == len(run.ids("idea_users"))  # each once
    assert added


def test_state_with_the_idea_users_bookmark_is_accepted_and_checked() -> None:
    good = {
        "bookmarks": {
            "idea_users": {
                "replication_key": "updated_since",
                "replication_key_value": "2026-01-01T00:00:00.000Z",
            }
        }
    }
    assert read_state(io.StringIO(json.dumps(good)), STREAM_NAMES) == good
    bad = {
        "bookmarks": {
            "idea_users": {"replication_key": "updated_since", "replication_key_value": "yesterday"}
        }
    }
    with pytest.raises(StateError, match="'idea_users'"):
        read_state(io.StringIO(json.dumps(bad)), STREAM_NAMES)


# ---------------------------------------------------------------------- Lakeflow


def test_lakeflow_reads_cdc_companions_incrementally(fake: FakeAha) -> None:
    fake.seed(60)
    connector = connect(fake)
    votes, offset = read_all(connector, "idea_votes", table_options={"max_records_per_batch": "7"})
    assert sorted(r["id"] for r in flat(votes)) == sorted(every_vote(fake))
    assert all(len(batch) <= 7 for batch in votes)
    keys = [(r["updated_at"], r["id"]) for r in flat(votes)]
    assert keys == sorted(keys)
    orgs, org_offset = read_all(connector, "idea_organizations")
    assert {r["id"]: r["revenue"] for r in flat(orgs)} == {
        o["id"]: o["revenue"] for o in fake.companions.organizations()
    }

    new_vote = fake.add_vote(fake.idea_ids()[1])
    customer = fake.companions.update_organization(fake.companions.organizations()[0]["id"], revenue="9.5")
    later = connect(fake)
    assert [r["id"] for r in flat(read_all(later, "idea_votes", offset)[0])] == [new_vote["id"]]
    assert [r["id"] for r in flat(read_all(later, "idea_organizations", org_offset)[0])] == [customer["id"]]


def test_lakeflow_reads_snapshot_companions_whole_once_per_pass(fake: FakeAha) -> None:
    fake.seed(30)
    connector = connect(fake)
    expected = {
        "idea_portals": {p["id"] for p in fake.companions.portals()},
        "products": {p["id"] for p in fake.companions.products()},
        "idea_categories": {c["id"] for cats in fake.companions.categories().values() for c in cats},
    }
    for table, ids in expected.items():
        batches, offset = read_all(connector, table, table_options={"max_records_per_batch": "2"})
        assert len(batches) == 1, table  # whole: a snapshot is never split
        assert {r["id"] for r in batches[0]} == ids, table
        assert offset == {"snapshot": connector.cap}
        assert connector.read_table_between(table, {}, offset, {}) == batches[0]
    categories = flat(read_all(connect(fake), "idea_categories")[0])
    assert all(r["product_id"] for r in categories)
    with pytest.raises(ValueError, match="snapshot"):
        connector.read_table("products", {"cursor": "2023-01-01T00:00:00Z", "id": "1"}, {})


def test_lakeflow_reads_idea_users_incrementally_in_one_batch_per_pass(fake: FakeAha) -> None:
    """Not a snapshot re-read whole at every poll: the users changed since the last pass's listing."""
    fake.seed(30)
    connector = connect(fake, poll_interval_seconds="0", page_size="20")
    assert connector.read_table_metadata("idea_users", {}) == {
        "primary_keys": ["id"],
        "cursor_field": "listed_at",
        "ingestion_type": "cdc_with_deletes",
    }
    batches, offset = read_all(connector, "idea_users", table_options={"max_records_per_batch": "2"})
    users = fake.companions.idea_users()
    assert len(users) > 20  # several pages
    assert len(batches) == 1  # a pass's users share its listing's moment: one batch
    assert {r["id"] for r in batches[0]} == {u["id"] for u in users}
    assert {r["listed_at"] for r in batches[0]} == {offset["cursor"]}
    assert offset["cursor"] <= connector.cap

    fake.clear_requests()
    assert read_all(connector, "idea_users", offset)[0] == []  # idle: one request, nothing new
    assert len(fake.requests_to(PATHS["idea_users"])) == 1
    changed = fake.companions.update_idea_user(users[3]["id"], title="VP Product")
    time.sleep(0.003)
    batches, later = read_all(connector, "idea_users", offset)
    assert [r["id"] for r in flat(batches)] == [changed["id"]]
    assert flat(batches)[0]["title"] == "VP Product"
    assert later["cursor"] > offset["cursor"]
    assert connect(fake).read_table_between("idea_users", offset, later, {}) == flat(batches)


def test_lakeflow_refused_table_reads_empty_with_the_warning(
    fake: FakeAha, caplog: pytest.LogCaptureFixture
) -> None:
    fake.seed(10)
    fake.companions.ideas_advanced = False
    connector: LakeflowConnect = connect(fake)
    with caplog.at_level(logging.WARNING):
        records, offset = connector.read_table("idea_organizations", None, {})
    assert list(records) == []
    assert offset == {}
    assert "Skipping 'idea_organizations'" in caplog.text
    assert list(connector.read_table("idea_votes", None, {})[0])
