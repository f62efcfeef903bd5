"""Partial failures never become lost data: a refused parent skips only itself, a failed read fails whole."""

from __future__ import annotations

import datetime as dt
import logging
import typing as t

import pytest

from tap_aha.errors import AhaAPIError
from tests.conftest import Config, run_tap
from tests.fake_aha import FakeAha
from tests.lakeflow_helpers import connect, flat, read_all

CATEGORIES = "/api/v1/products/{}/idea_categories"


def categories_by_workspace(fake: FakeAha) -> dict[str, set[str]]:
    return {pid: {c["id"] for c in cs} for pid, cs in fake.companions.categories().items()}


def refuse_categories_of(fake: FakeAha, product_id: str, fault: str = "404") -> None:
    """Aha! refuses that workspace's categories (ideas not enabled there) on every request."""
    fake.inject(fault, path_prefix=f"/products/{product_id}/idea_categories", times=1000)


def test_the_tap_skips_only_the_refused_workspaces_categories(
    fake: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    fake.seed(5)
    expected = categories_by_workspace(fake)
    refused = next(iter(expected))  # the first workspace listed: today every later one was skipped too
    refuse_categories_of(fake, refused)

    with caplog.at_level(logging.WARNING):
        run = run_tap(config, streams=("products", "idea_categories"))

    others = set().union(*(ids for pid, ids in expected.items() if pid != refused))
    assert others
    assert run.ids("idea_categories") == others
    assert run.ids("products") == set(expected)
    warnings = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 1
    assert refused in warnings[0]


def test_the_lakeflow_snapshot_skips_only_the_refused_workspaces_categories(fake: FakeAha) -> None:
    fake.seed(5)
    expected = categories_by_workspace(fake)
    refused = list(expected)[1]
    refuse_categories_of(fake, refused, "403")

    batches, _ = read_all(connect(fake), "idea_categories")

    others = set().union(*(ids for pid, ids in expected.items() if pid != refused))
    assert {r["id"] for r in flat(batches)} == others  # today: 0 rows, "delete every category"


def test_a_request_that_keeps_failing_fails_the_snapshot_instead_of_shrinking_it(
    fake: FakeAha, config: Config
) -> None:
    fake.seed(5)
    broken = list(categories_by_workspace(fake))[2]
    refuse_categories_of(fake, broken, "500")
    connector = connect(fake, max_retries="1")
    with pytest.raises(AhaAPIError, match="Gave up after 2 attempts"):
        connector.read_table("idea_categories", None, {})
    with pytest.raises(AhaAPIError, match="Gave up after 2 attempts"):
        run_tap({**config, "max_retries": 1}, streams=("products", "idea_categories"))


def test_a_kept_connector_retries_what_failed_on_its_next_read() -> None:
    with FakeAha(list_honours_fields=False) as fake:  # compact list items: each idea's detail is read
        fake.seed(12)
        connector = connect(fake, max_retries="1")
        target = fake.idea_ids()[5]
        fake.inject("500", path_prefix=f"/ideas/{target}", times=2)  # every attempt of one read
        with pytest.raises(AhaAPIError, match="HTTP 500"):
            connector.read_table("ideas", None, {})
        for _ in range(3):  # today: the same stale error, without a request
            records, _ = connector.read_table("ideas", None, {})
            assert {r["id"] for r in records} == set(fake.idea_ids())


def test_the_first_runs_delete_bookmark_is_on_ahas_clock(fake: FakeAha, config: Config) -> None:
    fake.seed(5)
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    fake.clock = lambda: behind
    run = run_tap(config)
    bookmark = run.state["bookmarks"]["deletes"]["replication_key_value"]
    assert bookmark <= behind.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # today: the local clock


def test_children_are_requested_only_for_the_ideas_a_stream_map_keeps(fake: FakeAha, config: Config) -> None:
    fake.seed(60)
    kept = {i["id"] for i in fake.ideas() if i["product_id"] == fake.ideas()[0]["product_id"]}
    assert 0 < len(kept) < 60
    maps: dict[str, t.Any] = {"ideas": {"__filter__": f"product_id == '{fake.ideas()[0]['product_id']}'"}}
    run = run_tap({**config, "stream_maps": maps}, streams=("ideas", "idea_comments"))

    assert run.ids("ideas") == kept
    asked = {r.path.split("/")[4] for r in fake.requests if r.path.endswith("/comments")}
    assert asked == kept  # today: one request for every listed idea
    assert {r["idea_id"] for r in run.records("idea_comments")} <= kept
