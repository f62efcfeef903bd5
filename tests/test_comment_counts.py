"""Comment requests only where a comment can be: no comment lost whatever `comments_count` counts.

The fake's `comments_count` counts internal comments, portal comments, both, or both except 0 on every
third idea with comments (unreliable). The tap and the Lakeflow comment tables must deliver every comment
under each, on a first run and after changes, and skip requests only where the count was proven to cover
the kind.
"""

from __future__ import annotations

import time
import typing as t

import pytest

from tap_aha.comment_counts import INTERNAL, PORTAL, CommentCounts
from tests.conftest import IDEA_STREAMS, Config, run_tap
from tests.fake_aha import FakeAha
from tests.lakeflow_helpers import connect, flat, read_all

MODES = ("internal", "portal", "both", "unreliable")
COVERS: dict[str, set[str]] = {
    "internal": {INTERNAL}, "portal": {PORTAL}, "both": {INTERNAL, PORTAL}, "unreliable": set()
}  # fmt: skip
IDEAS = 150
Record = dict[str, t.Any]


def _config(fake: FakeAha) -> Config:
    limits = {"requests_per_minute": 10**6, "requests_per_second": 10**5}
    return {"api_key": fake.api_key, "api_url": fake.url, **limits}


def _seeded(mode: str) -> FakeAha:
    fake = FakeAha(comments_count=mode)
    fake.seed(IDEAS)
    return fake


def _expected(fake: FakeAha, idea_ids: t.Iterable[str]) -> tuple[set[str], set[str]]:
    internal = {c["id"] for i in idea_ids for c in fake.comments(i)}
    portal = {c["id"] for i in idea_ids for c in fake.portal_comments(i, include_spam=False)}
    return internal, portal


def _requests(fake: FakeAha, child: str) -> list[str]:
    """The idea ids whose `child` list was requested, in order (once per page)."""
    return [r.path.split("/")[4] for r in fake.requests if r.path.endswith(f"/{child}") and r.status == 200]


def _change(fake: FakeAha) -> None:
    """Comments on ideas with and without comments, of both kinds, plus an edited idea; then 2 ms pass."""
    ids = fake.idea_ids()
    without = [i for i in ids if not fake.comments(i) and not fake.portal_comments(i)]
    for idea_id in (*without[:3], *ids[5:8]):
        fake.add_comment(idea_id)
    for idea_id in (*without[3:6], *ids[8:11]):
        fake.add_portal_comment(idea_id)
    fake.update_idea(ids[12], name="Edited")
    time.sleep(0.002)


def _check_skipping(fake: FakeAha, mode: str, listed: int) -> None:
    """Covered kinds are skipped for some ideas; a kind the count does not cover, for none."""
    internal, portal = len(set(_requests(fake, "comments"))), len(set(_requests(fake, "idea_comments")))
    covers = COVERS[mode]
    assert (internal < listed) == (INTERNAL in covers), (internal, listed)
    assert (portal < listed) == (PORTAL in covers), (portal, listed)


@pytest.mark.parametrize("mode", MODES)
def test_the_tap_loses_no_comment_whatever_the_count_counts(mode: str) -> None:
    with _seeded(mode) as fake:
        config = _config(fake)
        first = run_tap(config, streams=IDEA_STREAMS)
        internal, portal = _expected(fake, fake.idea_ids())
        assert first.ids("idea_comments") == internal
        assert first.ids("idea_portal_comments") == portal
        _check_skipping(fake, mode, IDEAS)

        _change(fake)
        fake.clear_requests()
        second = run_tap(config, state=first.state, streams=IDEA_STREAMS)
        changed = second.ids("ideas")
        internal, portal = _expected(fake, changed)
        assert second.ids("idea_comments") == internal
        assert second.ids("idea_portal_comments") == portal
        assert len(changed) >= 10


def _wrong_counts(fake: FakeAha) -> tuple[str, str]:
    """Two ideas listed late with wrong counts: one says 0 but has comments, a later one says too few."""
    order = [i["id"] for i in fake.ideas()][::-1]  # newest created first, as the fake lists them
    late = [i for i in order[100:] if len(fake.comments(i)) >= 2]
    hidden, low = late[0], late[-1]
    with fake._lock:
        fake._ideas[hidden]["comments_count"] = 0
        fake._ideas[low]["comments_count"] = 1
    return hidden, low


def test_a_contradiction_turns_skipping_off_and_fetches_what_was_skipped_before_the_bookmark() -> None:
    with _seeded("both") as fake:
        hidden, low = _wrong_counts(fake)
        run = run_tap(_config(fake), streams=IDEA_STREAMS)
        internal, portal = _expected(fake, fake.idea_ids())
        assert run.ids("idea_comments") == internal
        assert run.ids("idea_portal_comments") == portal
        asked = _requests(fake, "comments")
        assert asked.count(hidden) == 1
        assert asked.index(hidden) > asked.index(low)  # fetched after the contradiction: it was skipped first
        hidden_records = [
            n
            for n, m in enumerate(run.messages)
            if m["type"] == "RECORD" and m["stream"] == "idea_comments" and m["record"]["idea_id"] == hidden
        ]
        bookmarked = next(
            n
            for n, m in enumerate(run.messages)
            if m["type"] == "STATE" and "replication_key_value" in m["value"]["bookmarks"].get("ideas", {})
        )
        assert hidden_records
        assert max(hidden_records) < bookmarked


def test_checks_spread_over_the_run_find_a_count_that_goes_wrong_on_later_ideas() -> None:
    with _seeded("both") as fake:
        late = [i["id"] for i in fake.ideas()][:60]  # the oldest: listed last (imported ideas, say)
        with fake._lock:
            for idea_id in late:
                fake._ideas[idea_id]["comments_count"] = 0
        run = run_tap(_config(fake), streams=IDEA_STREAMS)
        internal, portal = _expected(fake, fake.idea_ids())
        assert run.ids("idea_comments") == internal
        assert run.ids("idea_portal_comments") == portal
        assert len(set(_requests(fake, "comments"))) == IDEAS  # skipping began, then every skipped one came


def test_with_one_comment_stream_the_sample_fetches_the_other_kind_unemitted() -> None:
    with _seeded("internal") as fake:
        run = run_tap(_config(fake), streams=("ideas", "idea_comments"))
        internal, _ = _expected(fake, fake.idea_ids())
        assert run.ids("idea_comments") == internal
        assert not run.records("idea_portal_comments")
        assert 0 < len(_requests(fake, "idea_comments")) <= 50
        assert len(set(_requests(fake, "comments"))) < IDEAS


def test_ideas_a_stream_map_drops_get_no_comment_request_while_the_kept_ones_skip() -> None:
    with _seeded("both") as fake:
        product = fake.ideas()[0]["product_id"]
        kept = {i["id"] for i in fake.ideas() if i["product_id"] == product}
        assert 20 < len(kept) < IDEAS
        maps = {"ideas": {"__filter__": f"product_id == '{product}'"}}
        run = run_tap({**_config(fake), "stream_maps": maps}, streams=IDEA_STREAMS)
        internal, portal = _expected(fake, kept)
        assert run.ids("idea_comments") == internal
        assert run.ids("idea_portal_comments") == portal
        asked = set(_requests(fake, "comments")) | set(_requests(fake, "idea_comments"))
        assert asked <= kept
        assert len(set(_requests(fake, "comments"))) < len(kept)  # the proven-empty ones were skipped


def _lakeflow_ids(fake: FakeAha, table: str, start: dict[str, t.Any] | None = None) -> tuple[set[str], t.Any]:
    batches, offset = read_all(connect(fake), table, start)
    return {r["id"] for r in flat(batches)}, offset


@pytest.mark.parametrize("mode", MODES)
def test_the_lakeflow_comment_tables_lose_no_comment(mode: str) -> None:
    with _seeded(mode) as fake:
        internal, portal = _expected(fake, fake.idea_ids())
        got_internal, internal_offset = _lakeflow_ids(fake, "idea_comments")
        got_portal, portal_offset = _lakeflow_ids(fake, "idea_portal_comments")
        assert got_internal == internal
        assert got_portal == portal
        assert (len(set(_requests(fake, "comments"))) < IDEAS) == (INTERNAL in COVERS[mode])
        assert (len(set(_requests(fake, "idea_comments"))) < IDEAS) == (PORTAL in COVERS[mode])

        before = set(fake.idea_ids())
        _change(fake)
        new_internal = {c["id"] for i in before for c in fake.comments(i)} - internal
        new_portal = {c["id"] for i in before for c in fake.portal_comments(i, include_spam=False)} - portal
        assert _lakeflow_ids(fake, "idea_comments", internal_offset)[0] >= new_internal
        assert _lakeflow_ids(fake, "idea_portal_comments", portal_offset)[0] >= new_portal


def test_a_lakeflow_batch_fetches_what_it_skipped_after_a_contradiction() -> None:
    with _seeded("both") as fake:
        hidden, _ = _wrong_counts(fake)
        got, _ = _lakeflow_ids(fake, "idea_comments")
        assert got == _expected(fake, fake.idea_ids())[0]
        assert {c["id"] for c in fake.comments(hidden)} <= got


# ---------------------------------------------------------------------- the evidence, unit by unit


def _observe(counts: CommentCounts, idea: int, count: int, internal: int, portal: int) -> None:
    context = {"idea_id": str(idea), "comments_count": count, "updated_at": "2024-01-01T00:00:00.000Z"}
    row = {"created_at": "2023-12-31T00:00:00.000Z"}
    counts.observe(INTERNAL, context, [row] * internal)
    counts.observe(PORTAL, context, [row] * portal)


def test_checks_are_spread_and_bounded() -> None:
    counts = CommentCounts({INTERNAL, PORTAL})
    for idea in range(12):
        _observe(counts, idea, 3, 2, 1)
    zero = {"idea_id": "x", "comments_count": 0}
    checked = [n for n in range(1, 1_000_001) if not counts.skips(INTERNAL, zero)]
    assert checked[:4] == [10, 12, 15, 18]  # then 25 % further apart each time
    assert checked[-1] > 20_000
    assert len(checked) == 50
    assert counts.skipped[INTERNAL] == 1_000_000 - 50


def test_no_skipping_before_enough_evidence_then_only_the_covered_kind() -> None:
    counts = CommentCounts({INTERNAL, PORTAL})
    zero = {"idea_id": "0", "comments_count": 0}
    for idea in range(9):
        _observe(counts, idea, 2, 2, idea % 2)  # every other idea has a portal comment the count ignores
    assert not counts.skips(INTERNAL, zero)
    _observe(counts, 9, 1, 1, 0)
    _observe(counts, 10, 2, 2, 0)
    assert counts.verdict == "internal"
    assert counts.skips(INTERNAL, zero)
    assert not counts.skips(PORTAL, zero)
    assert not counts.skips(INTERNAL, {"idea_id": "1", "comments_count": 1})


def test_a_comment_written_after_the_listing_is_no_contradiction() -> None:
    counts = CommentCounts({INTERNAL, PORTAL})
    for idea in range(12):
        _observe(counts, idea, 3, 2, 1)
    assert counts.verdict == "both"
    listed = {"idea_id": "99", "comments_count": 1, "updated_at": "2024-01-01T00:00:00.000Z"}
    old, new = {"created_at": "2023-12-01T00:00:00.000Z"}, {"created_at": "2024-01-01T00:00:01.000Z"}
    counts.observe(INTERNAL, listed, [old, new])
    assert not counts.off
    counts.observe(INTERNAL, listed, [old, old])
    assert counts.off


def test_counts_that_match_no_reading_skip_nothing() -> None:
    counts = CommentCounts({INTERNAL, PORTAL})
    for idea in range(30):
        _observe(counts, idea, 0 if idea % 3 == 0 else 3, 2, 1)
    assert counts.verdict == "unknown"
    assert not counts.skips(INTERNAL, {"idea_id": "x", "comments_count": 0})


def test_spam_wanted_keeps_every_portal_request() -> None:
    counts = CommentCounts({INTERNAL, PORTAL}, skip_portal=False)
    for idea in range(12):
        _observe(counts, idea, 3, 2, 1)
    assert counts.verdict == "both"
    assert counts.skips(INTERNAL, {"idea_id": "x", "comments_count": 0})
    assert not counts.skips(PORTAL, {"idea_id": "x", "comments_count": 0})


def test_a_reading_ruled_out_later_keeps_skipping_what_stays_proven() -> None:
    counts = CommentCounts({INTERNAL, PORTAL})
    for idea in range(12):
        _observe(counts, idea, 2, 2, 0)  # no portal comment: 'internal' and 'both' fit, 'portal' does not
    assert counts.skippable == {INTERNAL}
    listed = {"idea_id": "16", "comments_count": 1, "updated_at": "2024-01-01T00:00:00.000Z"}
    counts.observe(PORTAL, listed, [{"created_at": "2023-01-01T00:00:00.000Z"}] * 2)  # rules out 'both'
    assert counts.fitting == {INTERNAL}
    assert not counts.off
    assert counts.skips(INTERNAL, {"idea_id": "17", "comments_count": 0})
    counts.observe(INTERNAL, listed, [])  # but a count of 1 with no internal comment contradicts 'internal'
    assert counts.off
    assert [c["idea_id"] for c in counts.deferred(INTERNAL)] == ["17"]
