"""Deletes from Aha!'s audit log: tombstones in the tap's output, the delete bookmark, refusals and kills."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import signal
import subprocess
import threading
import time
import typing as t

import pytest

from tap_aha.deletes import DELETED_AT, audit_type
from tap_aha.lakeflow import LakeflowConnect
from tests.conftest import REPO, TAP, Config, Run, parse_messages, run_cli, run_tap
from tests.fake_aha import FakeAha
from tests.fake_formats import parse_ts
from tests.fake_http import RequestLog
from tests.lakeflow_helpers import CURSORS, connect, options_for, read_all

STREAMS = ("ideas", "idea_proxy_votes", "idea_comments", "idea_portal_comments")
TYPES = {
    "ideas/idea": ("ideas",),
    "ideas/idea_endorsement": ("idea_proxy_votes", "idea_votes"),
    "comment": ("idea_comments",),
    "ideas/idea_comment": ("idea_portal_comments",),
    "ideas/idea_organization": ("idea_organizations",),
    "ideas/idea_user": ("idea_users",),
}
AUDITS = "/api/v1/audits"
Tombstone = tuple[str, str, str | None, str]  # stream, id, idea_id, _sdc_deleted_at


def tombstones(run: Run) -> set[Tombstone]:
    return {
        (m["stream"], m["record"]["id"], m["record"].get("idea_id"), m["record"][DELETED_AT])
        for m in run.messages
        if m["type"] == "RECORD" and m["record"].get(DELETED_AT)
    }


def expected(fake: FakeAha, after: str) -> set[Tombstone]:
    """The tombstones the fake's destroy audits since `after` call for."""
    found = set()
    for audit in fake.audits():
        if audit["audit_action"] == "destroy" and audit["created_at"] >= after:
            for stream in TYPES[audit["auditable_type"]]:
                idea = None if audit["associated_id"] is None else str(audit["associated_id"])
                found.add((stream, str(audit["auditable_id"]), idea, audit["created_at"]))
    return found


def delete_one_of_each(fake: FakeAha) -> dict[str, str]:
    """Delete an idea, a proxy vote, an internal comment and a portal comment, each of another idea."""
    ideas = fake.idea_ids()
    voted = next(i for i in ideas if fake.votes(i))
    commented = next(i for i in ideas if fake.comments(i) and i != voted)
    portal = next(i for i in ideas if fake.portal_comments(i) and i not in {voted, commented})
    idea = next(
        i
        for i in ideas
        if i not in {voted, commented, portal} and (fake.votes(i, proxy_only=False) or fake.comments(i))
    )
    gone = {
        "vote": fake.delete_vote(fake.votes(voted)[0]["id"])["id"],
        "comment": fake.delete_comment(fake.comments(commented)[0]["id"])["id"],
        "portal": fake.delete_portal_comment(fake.portal_comments(portal)[0]["id"])["id"],
        "idea": idea,
    }
    fake.delete_idea(idea)
    return gone


@pytest.mark.parametrize("children_audited", [True, False])
def test_second_run_sends_exactly_the_tombstones_of_what_was_deleted(
    fake: FakeAha, config: Config, children_audited: bool
) -> None:
    fake.seed(80)
    fake.audit_child_destroys = children_audited
    first = run_tap(config)
    assert tombstones(first) == set()
    assert fake.requests_to(AUDITS) == []  # a first run reads no deletes
    started = first.state["bookmarks"]["deletes"]["replication_key_value"]
    fake.clear_requests()

    gone = delete_one_of_each(fake)
    before = dt.datetime.now(dt.UTC)
    second = run_tap(config, state=first.state)

    sent = tombstones(second)
    assert sent == expected(fake, started)
    assert {(s, i) for s, i, _, _ in sent} >= {
        ("ideas", gone["idea"]),
        ("idea_proxy_votes", gone["vote"]),
        ("idea_comments", gone["comment"]),
        ("idea_portal_comments", gone["portal"]),
    }
    children_of_idea = {s for s, _, idea, _ in sent if idea == gone["idea"]}
    assert bool(children_of_idea) is children_audited
    # Nothing else changed: the normal records are only the ideas the inclusive filter repeats.
    ties = {i["id"] for i in fake.ideas() if i["updated_at"] == first.bookmark()}
    assert second.ids("ideas") - {gone["idea"]} == ties
    # One request for the deletes; SCHEMA once per stream and before its tombstones, tombstones first.
    assert len(fake.requests_to(AUDITS)) == 1
    assert fake.requests_to(AUDITS)[0].query["audit_action"] == "destroy"
    assert fake.requests_to(AUDITS)[0].query["created_since"] == started
    for stream in STREAMS:
        kinds = [m["type"] for m in second.messages if m.get("stream") == stream]
        assert kinds.count("SCHEMA") == 1, stream
        flags = [bool(record.get(DELETED_AT)) for record in second.records(stream)]
        assert flags == sorted(flags, reverse=True), f"{stream}: a tombstone after a normal record"
        if any(flags):
            assert kinds.index("SCHEMA") < kinds.index("RECORD")
    # The new bookmark is this run's start on Aha!'s clock (its Date header has whole seconds only).
    promoted = parse_ts(second.state["bookmarks"]["deletes"]["replication_key_value"])
    assert before - dt.timedelta(seconds=1.5) < promoted <= dt.datetime.now(dt.UTC)


def test_tombstones_carry_the_key_the_idea_and_the_deletion_time_only(fake: FakeAha, config: Config) -> None:
    fake.seed(30)
    first = run_tap(config)
    vote = fake.votes(next(i for i in fake.idea_ids() if fake.votes(i)))[0]
    fake.delete_vote(vote["id"])
    second = run_tap(config, state=first.state)
    [record] = second.records("idea_proxy_votes")
    assert record == {
        "id": vote["id"],
        "idea_id": vote["idea_id"],
        DELETED_AT: fake.audits()[-1]["created_at"],
    }


def test_a_state_from_before_deletes_reads_them_from_the_ideas_bookmark(
    fake: FakeAha, config: Config
) -> None:
    fake.seed(30)
    first = run_tap(config)
    old_state = {"bookmarks": {"ideas": first.state["bookmarks"]["ideas"]}}
    fake.delete_idea(fake.idea_ids()[5])
    fake.clear_requests()
    second = run_tap(config, state=old_state)
    assert fake.requests_to(AUDITS)[0].query["created_since"] == first.bookmark()
    assert ("ideas", fake.audits()[0]["auditable_id"]) in {(s, int(i)) for s, i, _, _ in tombstones(second)}


def test_a_restored_idea_comes_back_after_its_tombstone(fake: FakeAha, config: Config) -> None:
    fake.seed(30)
    first = run_tap(config)
    victim = fake.idea_ids()[7]
    fake.delete_idea(victim)
    fake.restore_idea(victim)  # restore is an update: updated_at moves on
    second = run_tap(config, state=first.state)
    ideas = second.records("ideas")
    mine = [bool(r.get(DELETED_AT)) for r in ideas if r["id"] == victim]
    assert mine == [True, False]  # the tombstone, then the idea as it is now
    assert [r for r in ideas if r["id"] == victim][-1] == fake.idea(victim)

    fake.delete_idea(victim)
    third = run_tap(config, state=second.state)
    fake.restore_idea(victim)
    fourth = run_tap(config, state=third.state)
    assert ("ideas", victim) in {(s, i) for s, i, _, _ in tombstones(third)}
    assert victim not in third.ids("ideas") - {i for _, i, _, _ in tombstones(third)}
    # The next run may repeat the tombstone (its window starts up to a second early), never after the idea.
    ideas = fourth.records("ideas")
    assert [r for r in ideas if r["id"] == victim][-1] == fake.idea(victim)


@pytest.mark.parametrize("status", [403, 404])
def test_refused_audits_warn_once_and_the_sync_goes_on(
    fake: FakeAha, config: Config, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    fake.seed(20)
    first = run_tap(config)
    fake.delete_idea(fake.idea_ids()[0])
    fake.audits_refused = status
    fake.update_idea(fake.idea_ids()[0], name="Changed")
    second = run_tap(config, state=first.state)
    assert tombstones(second) == set()
    assert fake.idea_ids()[0] in second.ids("ideas")
    warnings = [r for r in caplog.records if "GET /audits" in r.getMessage()]
    assert len(warnings) == 1
    assert "capture_deletes" in warnings[0].getMessage()
    assert f"HTTP {status}" in warnings[0].getMessage()
    kept = first.state["bookmarks"]["deletes"]["replication_key_value"]
    assert second.state["bookmarks"]["deletes"]["replication_key_value"] == kept  # read again when allowed


def test_capture_deletes_false_reads_no_audits(fake: FakeAha, config: Config) -> None:
    fake.seed(20)
    first = run_tap(config)
    fake.delete_idea(fake.idea_ids()[0])
    fake.clear_requests()
    second = run_tap({**config, "capture_deletes": False}, state=first.state)
    assert fake.requests_to(AUDITS) == []
    assert tombstones(second) == set()


@pytest.mark.parametrize(("order", "spelling"), [("id", "path"), ("newest", "class"), ("newest", "path")])
def test_many_deletes_are_read_page_by_page_in_any_order_and_spelling(
    fake: FakeAha, config: Config, order: str, spelling: str
) -> None:
    fake.seed(120)
    first = run_tap(config)
    fake.audit_order, fake.audit_type_spelling = order, spelling
    votes = [v["id"] for i in fake.idea_ids() for v in fake.votes(i, proxy_only=False)]
    deleted = fake.idea_ids()[:80]
    for idea in deleted:
        fake.delete_idea(idea)
    fake.record_audit("destroy", "page", "123")  # not a record of this tap
    fake.record_audit("update", "ideas/idea", fake.idea_ids()[0])  # not a destroy
    fake.clear_requests()
    second = run_tap(config, state=first.state)
    sent = tombstones(second)
    destroys = [a for a in fake.audits() if a["audit_action"] == "destroy" and a["auditable_type"] != "page"]
    # A deleted vote is a tombstone in both vote tables (idea_votes and idea_proxy_votes).
    votes_destroyed = [a for a in destroys if a["auditable_type"].lower().endswith("endorsement")]
    assert len(sent) == len(destroys) + len(votes_destroyed)
    assert len(destroys) > 200  # more than one page
    assert {i for s, i, _, _ in sent if s == "ideas"} == set(deleted)
    assert {i for s, i, _, _ in sent if s == "idea_proxy_votes"} <= set(votes)
    pages = -(-(len(destroys) + 1) // 200)
    if order == "id":
        assert len(fake.requests_to(AUDITS)) == pages  # one request per 200 deletions
        assert all(r.query["per_page"] == "200" for r in fake.requests_to(AUDITS))
    else:
        assert len(fake.requests_to(AUDITS)) <= 2 + pages


def test_audit_types_match_in_either_spelling() -> None:
    for pair in (
        ("Ideas::IdeaEndorsement", "ideas/idea_endorsement"),
        ("Ideas::Idea", "ideas/idea"),
        ("Comment", "comment"),
        ("Ideas::IdeaComment", "ideas/idea_comment"),
    ):
        assert audit_type(pair[0]) == audit_type(pair[1]) == pair[1]


def test_a_bookmark_older_than_the_audit_log_warns_once(
    fake: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    fake.seed(10)
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    run_tap(config, state={"bookmarks": {"deletes": {"replication_key_value": old}}})
    assert sum("older than Aha!'s audit log" in r.getMessage() for r in caplog.records) == 1


def test_the_bookmark_follows_the_servers_clock_when_it_is_behind(fake: FakeAha, config: Config) -> None:
    fake.seed(10)
    first = run_tap(config)
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    fake.clock = lambda: behind
    second = run_tap(config, state=first.state)
    bookmark = second.state["bookmarks"]["deletes"]["replication_key_value"]
    assert bookmark <= behind.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_a_bad_delete_bookmark_is_refused_before_any_request(
    fake: FakeAha, config: Config, tmp_path: t.Any
) -> None:
    run = run_cli(
        [], tmp_path, config=config, state={"bookmarks": {"deletes": {"replication_key_value": "soon"}}}
    )
    assert run.returncode == 1
    assert "'deletes'" in run.stderr
    assert fake.requests == []


def test_a_run_killed_during_the_audit_read_reads_the_same_deletions_again(
    fake: FakeAha, config: Config, tmp_path: t.Any
) -> None:
    fake.seed(60)
    first = run_tap(config)
    for idea in fake.idea_ids()[:40]:
        fake.delete_idea(idea)
    state = tmp_path / "state.json"
    state.write_text(json.dumps(first.state))
    (tmp_path / "config.json").write_text(json.dumps({**config, "page_size": 20}))
    second_page = threading.Event()
    release = threading.Event()

    def hold_second_page(log: RequestLog) -> None:
        if log.path == "/api/v1/audits" and "after_id" in log.query:
            second_page.set()
            release.wait(30)

    fake.on_request.append(hold_second_page)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_AHA_")}
    args = [*TAP, "--config", str(tmp_path / "config.json"), "--state", str(state)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    try:
        assert second_page.wait(60), "the tap never asked for a second audit page"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        release.set()
        fake.on_request.clear()
    killed = Run(parse_messages(out.decode()))
    assert killed.states, "no STATE written on SIGTERM"
    assert killed.state["bookmarks"]["deletes"] == first.state["bookmarks"]["deletes"]
    assert killed.records("ideas") == []  # nothing after the deletes began

    again = run_tap({**config, "page_size": 20}, state=killed.state)
    assert tombstones(again) == expected(fake, first.state["bookmarks"]["deletes"]["replication_key_value"])
    assert len({i for s, i, _, _ in tombstones(again) if s == "ideas"}) == 40


# ---------------------------------------------------------------------- Lakeflow: read_table_deletes


def test_lakeflow_delete_reads_return_the_deleted_keys(fake: FakeAha) -> None:
    fake.seed(40)
    gone = delete_one_of_each(fake)
    connector = connect(fake)
    assert connector.read_table_metadata("ideas", {})["ingestion_type"] == "cdc_with_deletes"
    audits = {str(a["auditable_id"]): a for a in fake.audits()}
    for table, key in (
        ("ideas", "idea"), ("idea_proxy_votes", "vote"), ("idea_comments", "comment"),
        ("idea_portal_comments", "portal"),
    ):  # fmt: skip
        rows = [row for batch in read_all(connector, table, deletes=True)[0] for row in batch]
        cursor = CURSORS[table]
        assert cursor is not None
        assert gone[key] in {row["id"] for row in rows}, table
        for row in rows:
            assert row[cursor] == audits[row["id"]]["created_at"]  # the cursor is the deletion time
            if table != "ideas":
                assert row["idea_id"] == str(audits[row["id"]]["associated_id"])
            assert {name for name, value in row.items() if value is not None} <= {"id", "idea_id", cursor}
        assert DELETED_AT not in connector.get_table_schema(table, {}).fieldNames()


def test_lakeflow_delete_batches_resume_exactly_and_repeat(fake: FakeAha) -> None:
    fake.seed(60)
    for idea in fake.idea_ids()[:12]:
        fake.delete_idea(idea)
    connector = connect(fake, poll_interval_seconds="0")  # a continuous query's next pass: at once
    whole = [row["id"] for batch in read_all(connector, "ideas", deletes=True)[0] for row in batch]
    assert sorted(whole) == sorted(
        str(a["auditable_id"]) for a in fake.audits() if a["auditable_type"] == "ideas/idea"
    )
    fake.clear_requests()
    batches, end = read_all(connect(fake), "ideas", None, {"max_records_per_batch": "5"}, deletes=True)
    assert [len(b) for b in batches] == [5, 5, 2]
    assert len(fake.requests_to(AUDITS)) == 1  # the audit log is listed once per pass, not once per batch
    assert [
        row["id"] for b in batches for row in b
    ] == whole  # all audits share a millisecond: ids order them
    first, offset = connector.read_table_deletes("ideas", None, {"max_records_per_batch": "5"})
    again, same = connector.read_table_deletes("ideas", None, {"max_records_per_batch": "5"})
    assert (list(first), offset) == (list(again), same)
    assert connector.read_table_between("ideas", None, offset, {}, deletes=True) == batches[0]
    # A later pass takes a new cap: a delete made after the first pass is read from its end offset.
    assert read_all(connector, "ideas", offset, deletes=True)[1] == end  # that pass goes on to the same end
    victim = fake.idea_ids()[0]
    fake.delete_idea(victim)
    time.sleep(0.003)
    later = [row["id"] for batch in read_all(connector, "ideas", end, deletes=True)[0] for row in batch]
    assert later == [victim]


def test_lakeflow_delete_flow_lists_again_at_most_once_per_poll_interval(fake: FakeAha) -> None:
    fake.seed(20)
    connector = connect(fake)  # the default interval: 30 s
    _, end = read_all(connector, "ideas", deletes=True)
    victim = fake.idea_ids()[0]
    fake.delete_idea(victim)
    time.sleep(0.003)
    fake.clear_requests()
    assert read_all(connector, "ideas", end, deletes=True) == ([], end)  # caught up a moment ago: no request
    assert fake.requests_to(AUDITS) == []
    copy = pickle.loads(pickle.dumps(connector))  # noqa: S301 - our own object
    assert read_all(copy, "ideas", end, deletes=True) == ([], end)
    later = read_all(connector, "ideas", end, {"poll_interval_seconds": "0"}, deletes=True)[0]
    assert [row["id"] for batch in later for row in batch] == [victim]
    one_pass = LakeflowConnect(options_for(fake, poll_interval_seconds="0"), continuous=False)
    _, last = read_all(one_pass, "ideas", deletes=True)
    fake.delete_idea(fake.idea_ids()[0])
    time.sleep(0.003)
    assert read_all(one_pass, "ideas", last, deletes=True) == ([], last)  # an AvailableNow run: one pass


def test_lakeflow_without_capture_deletes_is_plain_cdc(fake: FakeAha) -> None:
    fake.seed(10)
    fake.delete_idea(fake.idea_ids()[0])
    connector = connect(fake, capture_deletes="false")
    assert connector.read_table_metadata("ideas", {})["ingestion_type"] == "cdc"
    assert read_all(connector, "ideas", deletes=True) == ([], {})
    assert fake.requests_to(AUDITS) == []


def test_companion_streams_get_tombstones_for_their_audited_destroys(fake: FakeAha, config: Config) -> None:
    fake.seed(40)
    first = run_tap(config)
    vote = next(v for i in fake.idea_ids() for v in fake.votes(i, proxy_only=False))
    fake.delete_vote(vote["id"])
    organization = fake.companions.organizations()[0]["id"]
    user = fake.companions.idea_users()[0]["id"]
    fake.record_audit("destroy", "ideas/idea_organization", organization)
    fake.record_audit("destroy", "Ideas::IdeaUser", user)  # either spelling
    second = run_tap(config, state=first.state)
    sent = {(stream, record_id, idea) for stream, record_id, idea, _ in tombstones(second)}
    assert sent == {
        ("idea_votes", vote["id"], vote["idea_id"]),
        ("idea_proxy_votes", vote["id"], vote["idea_id"]),
        ("idea_organizations", organization, None),
        ("idea_users", user, None),
    }


def test_lakeflow_companion_tables_with_a_cursor_have_a_delete_flow(fake: FakeAha) -> None:
    fake.seed(20)
    organization = fake.companions.organizations()[0]["id"]
    fake.record_audit("destroy", "ideas/idea_organization", organization)
    vote = next(v for i in fake.idea_ids() for v in fake.votes(i, proxy_only=False))
    fake.delete_vote(vote["id"])
    connector = connect(fake)
    for table, gone in (("idea_organizations", organization), ("idea_votes", vote["id"])):
        assert connector.read_table_metadata(table, {})["ingestion_type"] == "cdc_with_deletes"
        rows = [row for batch in read_all(connector, table, deletes=True)[0] for row in batch]
        assert [row["id"] for row in rows] == [gone]
    assert connector.read_table_metadata("products", {})["ingestion_type"] == "snapshot"
    assert read_all(connector, "products", deletes=True) == ([], {})


def test_two_destroy_audits_of_one_record_in_one_millisecond_give_one_tombstone() -> None:
    from tap_aha.deletes import AuditRead  # noqa: PLC0415 - the unit under test, for this case only

    read = AuditRead()
    base = {"audit_action": "destroy", "auditable_type": "ideas/idea_endorsement", "auditable_id": 7,
            "created_at": "2026-01-01T00:00:00.000Z"}  # fmt: skip
    read.audits = {
        "1": {**base, "id": "1", "associated_type": "ideas/idea", "associated_id": 3},
        "2": {**base, "id": "2", "associated_type": None, "associated_id": None},
    }

    class Votes:
        delete_audit_types = ("Ideas::IdeaEndorsement",)

    deletions = read.deletions({"idea_proxy_votes": t.cast("t.Any", Votes())})
    assert [(d.stream, d.id) for d in deletions] == [("idea_proxy_votes", "7")]
