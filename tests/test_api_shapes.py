"""Odd but real Aha! answers: numbers where strings are typed, drifting nested ids, malformed items."""

from __future__ import annotations

import json

import pytest
import requests

from tap_aha.client import records_of
from tap_aha.errors import AhaAPIError
from tests.conftest import Config, run_tap
from tests.fake_aha import FakeAha


def test_numbers_in_string_fields_arrive_as_strings(fake: FakeAha, config: Config) -> None:
    fake.seed(5)
    idea_id = fake.idea_ids()[0]
    fake.update_idea(idea_id, product_id=131415)
    vote = fake.add_vote(idea_id, value=2.5)
    run = run_tap(config)
    idea = next(r for r in run.records("ideas") if r["id"] == idea_id)
    assert idea["product_id"] == "131415"
    emitted = next(r for r in run.records("idea_proxy_votes") if r["id"] == vote["id"])
    assert emitted["value"] == "2.5"


def test_nested_ids_that_drift_between_int_and_str_pass_through(config: Config) -> None:
    with FakeAha(nested_id_drift=True, list_honours_fields=False) as fake:
        fake.seed(15)
        run = run_tap({**config, "api_url": fake.url})
        kinds = {
            type(category["parent_id"])
            for idea in run.records("ideas")
            for category in idea["categories"] or []
            if category.get("parent_id") is not None
        }
        assert kinds == {int, str}


def _response(body: object, path: str = "/api/v1/ideas/1/comments") -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode()
    response.request = requests.Request("GET", "https://acme.aha.io" + path).prepare()
    return response


@pytest.mark.parametrize("item", [{"body": "no id"}, {"id": None}, {"id": ""}, "not an object", 7])
def test_an_item_without_an_id_stops_the_run_with_a_clear_line(item: object) -> None:
    with pytest.raises(AhaAPIError, match=r"'comments' item without an id for GET /api/v1/ideas/1/comments"):
        records_of(_response({"comments": [{"id": "1"}, item]}), "comments")


def test_integer_ids_become_strings() -> None:
    assert records_of(_response({"comments": [{"id": 6700125347}]}), "comments") == [{"id": "6700125347"}]
