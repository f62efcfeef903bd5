"""The fourth stream: comments from the ideas portal, re-sent whole for every changed idea."""

from __future__ import annotations

import pytest

from tests.conftest import IDEA_STREAMS, Config, run_tap
from tests.fake_aha import FakeAha

STREAM = "idea_portal_comments"


def _expected(fake: FakeAha, idea_ids: list[str], *, spam: bool = False) -> dict[str, dict[str, object]]:
    return {
        c["id"]: {**c, "idea_id": idea_id}
        for idea_id in idea_ids
        for c in fake.portal_comments(idea_id, include_spam=spam)
    }


def test_full_sync_emits_every_portal_comment_as_aha_sends_it(fake: FakeAha, config: Config) -> None:
    fake.seed(120)
    first_idea = fake.idea_ids()[0]
    parent = fake.add_portal_comment(first_idea)
    reply = fake.add_portal_comment(first_idea, parent_id=int(parent["id"]))
    spam = fake.add_portal_comment(first_idea, spam=True)
    run = run_tap(config)

    records = {r["id"]: r for r in run.records(STREAM)}
    assert records == _expected(fake, fake.idea_ids())
    assert spam["id"] not in records
    assert records[reply["id"]]["parent_idea_comment_id"] == int(parent["id"])
    assert {type(r["parent_idea_comment_id"]) for r in records.values()} == {int, type(None)}
    assert any("idea_commenter_user" in r for r in records.values())
    assert any(
        "idea_commenter_portal_user" in r and "idea_commenter_idea_user" in r for r in records.values()
    )
    schema = run.schemas(STREAM)
    assert len(schema) == 1
    assert schema[0]["key_properties"] == ["id"]
    assert not schema[0].get("bookmark_properties")
    assert STREAM not in {s for s in run.state["bookmarks"] if run.state["bookmarks"][s]}


def test_spam_is_read_only_when_asked_for(fake: FakeAha, config: Config) -> None:
    fake.seed(10)
    spam = fake.add_portal_comment(fake.idea_ids()[0], spam=True)
    run = run_tap({**config, "include_spam_portal_comments": True})
    assert spam["id"] in run.ids(STREAM)
    asked = [r for r in fake.requests if r.path.endswith("/idea_comments")]
    assert asked
    assert all(r.query.get("spam") == "true" for r in asked)


def test_a_changed_idea_resends_all_its_portal_comments_and_only_those(fake: FakeAha, config: Config) -> None:
    fake.seed(150)
    first = run_tap(config)
    with_comments = next(i for i in fake.idea_ids() if fake.portal_comments(i, include_spam=False))
    added = fake.add_portal_comment(with_comments)
    fake.clear_requests()

    second = run_tap(config, state=first.state)
    changed = sorted(second.ids("ideas"))
    assert with_comments in changed
    assert {r["id"]: r for r in second.records(STREAM)} == _expected(fake, changed)
    assert added["id"] in second.ids(STREAM)
    assert len(fake.portal_comments(with_comments, include_spam=False)) > 1  # the old ones came again too
    asked = {r.path.split("/")[4] for r in fake.requests if r.path.endswith("/idea_comments")}
    assert asked == set(changed)


def test_portal_comments_of_an_idea_deleted_mid_run_are_skipped(fake: FakeAha, config: Config) -> None:
    fake.seed(30)
    victim = fake.idea_ids()[-1]
    fake.add_portal_comment(victim)

    def delete_after_listing(request: object) -> None:  # at its first child request
        if getattr(request, "path", "").startswith(f"/api/v1/ideas/{victim}/") and victim in fake.idea_ids():
            fake.delete_idea(victim)

    fake.on_request.append(delete_after_listing)
    run = run_tap(config, streams=IDEA_STREAMS)
    assert {r.status for r in fake.requests if r.path == f"/api/v1/ideas/{victim}/idea_comments"} == {404}
    assert victim not in {r["idea_id"] for r in run.records(STREAM)}
    assert run.records(STREAM)  # the other ideas' portal comments arrived


def test_an_idea_with_more_than_one_page_of_portal_comments(fake: FakeAha, config: Config) -> None:
    fake.seed(5)
    busy = fake.idea_ids()[2]
    added = {fake.add_portal_comment(busy)["id"] for _ in range(450)}
    run = run_tap(config)
    pages = [r.query["page"] for r in fake.requests if r.path == f"/api/v1/ideas/{busy}/idea_comments"]
    assert pages == ["1", "2", "3"]
    assert added <= run.ids(STREAM)
    assert len([r for r in run.records(STREAM) if r["idea_id"] == busy]) == len(
        fake.portal_comments(busy, include_spam=False)
    )


@pytest.mark.parametrize("flag", [True, False])
def test_no_activate_version_per_idea_whatever_the_config(fake: FakeAha, config: Config, flag: bool) -> None:
    fake.seed(20)
    run = run_tap({**config, "emit_activate_version_messages": flag}, streams=IDEA_STREAMS)
    assert run.records(STREAM)
    assert not [m for m in run.messages if m["type"] == "ACTIVATE_VERSION"]
