"""Interrupted first syncs: the real tap SIGKILLed at several points of a windowed first run, then resumed."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
import signal
import subprocess
import typing as t
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from tap_aha.deletes import DELETED_AT, DELETES_BOOKMARK
from tap_aha.errors import StateError
from tap_aha.first_sync import MARKER, MAX_WINDOW_PAGES, NOTE, RESUMABLE_NOTE, SKIPPED, WINDOWED_OVER_PAGES
from tap_aha.inputs import read_state
from tests.conftest import IDEA_STREAMS, REPO, TAP, Config, Run, fake_config, run_cli, run_tap, selecting
from tests.fake_aha import FakeAha, RequestLog, fmt_ts, parse_ts

if t.TYPE_CHECKING:
    from pathlib import Path

PAGE_SIZE = 5  # a window is at most MAX_WINDOW_PAGES pages: 10 ideas
IDEAS = 80
STREAMS = (*IDEA_STREAMS, "idea_votes")
LineKill = t.Callable[[dict[str, t.Any]], bool]
RequestKill = t.Callable[[RequestLog], bool]


def _config(fake: FakeAha) -> Config:
    return fake_config(fake, page_size=PAGE_SIZE, parallel_requests=4)


@dataclass
class Tap:
    """The real tap command line against one fake, with a config and catalog on disk."""

    fake: FakeAha
    tmp_path: Path
    streams: tuple[str, ...] = STREAMS
    parallel: int = 4  # 1: no read-ahead, children fetched in listing order

    def __post_init__(self) -> None:
        self.config = {**_config(self.fake), "parallel_requests": self.parallel}
        (self.tmp_path / "config.json").write_text(json.dumps(self.config))
        catalog = selecting(self.config, self.streams)
        (self.tmp_path / "catalog.json").write_text(json.dumps(catalog))

    def argv(self, state: dict[str, t.Any] | None) -> list[str]:
        argv = [*TAP, "--config", str(self.tmp_path / "config.json")]
        argv += ["--catalog", str(self.tmp_path / "catalog.json")]
        if state is not None:
            (self.tmp_path / "state.json").write_text(json.dumps(state))
            argv += ["--state", str(self.tmp_path / "state.json")]
        return argv

    def run(self, state: dict[str, t.Any] | None = None) -> Run:
        proc = subprocess.run(self.argv(state), capture_output=True, text=True, cwd=REPO, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return Run([json.loads(line) for line in proc.stdout.splitlines() if line.strip()], proc.stderr)

    def killed(
        self,
        state: dict[str, t.Any] | None = None,
        *,
        on_line: LineKill | None = None,
        on_request: RequestKill | None = None,
    ) -> Run:
        """A run SIGKILLed when a line it wrote, or a request it sent, says so; its complete lines."""
        proc = subprocess.Popen(self.argv(state), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO)

        def kill_on_request(request: RequestLog) -> None:
            if on_request is not None and on_request(request):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

        self.fake.on_request.append(kill_on_request)
        messages = []
        assert proc.stdout is not None
        for raw in proc.stdout:
            if not raw.endswith(b"\n"):
                break  # cut mid-line by the kill
            message = json.loads(raw)
            messages.append(message)
            if on_line is not None and on_line(message):
                proc.kill()
        proc.wait(timeout=60)
        self.fake.on_request.remove(kill_on_request)
        assert proc.returncode == -signal.SIGKILL, "the run ended before the kill point"
        return Run(messages)


def marker(message: dict[str, t.Any]) -> dict[str, str] | None:
    if message["type"] != "STATE":
        return None
    found: dict[str, str] | None = message["value"].get("bookmarks", {}).get("ideas", {}).get(MARKER)
    return found


def last_state(run: Run) -> dict[str, t.Any] | None:
    return run.states[-1] if run.states else None


def fraction_done(fake: FakeAha, state: dict[str, t.Any] | None) -> float:
    """The share of ideas the state's marker says are done (created before `done_before`)."""
    found = (state or {}).get("bookmarks", {}).get("ideas", {}).get(MARKER)
    if not found:
        return 0.0
    before = found["done_before"]
    ideas = fake.ideas()
    return sum(1 for idea in ideas if idea["created_at"] < before) / len(ideas)


def check_resume(
    fake: FakeAha, clean: Run, clean_requests: list[RequestLog], killed: Run, rerun: Run
) -> float:
    """Union of both runs = the clean run; the rerun's requests within the bound; returns the fraction."""
    for stream in STREAMS:
        assert killed.ids(stream) | rerun.ids(stream) == clean.ids(stream), stream
    merged = {r["id"]: r for r in killed.records("ideas") + rerun.records("ideas")}
    assert merged == {r["id"]: r for r in clean.records("ideas")}
    assert rerun.bookmark() == clean_bookmark_of(killed, rerun)
    assert MARKER not in rerun.state["bookmarks"]["ideas"]
    done = fraction_done(fake, last_state(killed))
    spent = fake.requests
    window = len(clean_requests) * MAX_WINDOW_PAGES * PAGE_SIZE / IDEAS  # the largest window's share
    bound = len(clean_requests) * (1 - done) + window
    assert len(spent) <= bound, (len(spent), bound, done)
    return done


def clean_bookmark_of(killed: Run, rerun: Run) -> str:
    """The bookmark a resumed run must end with: the killed run's start, else its own (no window done)."""
    for state in killed.states:
        found = state.get("bookmarks", {}).get("ideas", {}).get(MARKER)
        if found:
            return t.cast("str", found["started_at"])
    return t.cast("str", rerun.bookmark())


@pytest.fixture
def seeded(fake: FakeAha) -> FakeAha:
    fake.seed(IDEAS, comment_share=0.5)
    return fake


@pytest.fixture
def clean(seeded: FakeAha, tmp_path: Path) -> tuple[Run, list[RequestLog]]:
    run = Tap(seeded, tmp_path).run()
    requests = list(seeded.requests)
    seeded.clear_requests()
    return run, requests


def _nth_marker(n: int) -> LineKill:
    seen = 0

    def kill(message: dict[str, t.Any]) -> bool:
        nonlocal seen
        found = marker(message)
        if found and found["done_before"] != getattr(kill, "last", None):
            kill.last = found["done_before"]  # type: ignore[attr-defined]
            seen += 1
        return seen >= n

    return kill


def _count(predicate: Callable[[RequestLog], bool], n: int) -> RequestKill:
    seen = 0

    def kill(request: RequestLog) -> bool:
        nonlocal seen
        seen += predicate(request)
        return seen >= n

    return kill


def _mid_window(request: RequestLog) -> bool:
    return (
        request.path == "/api/v1/ideas" and "created_since" in request.query and request.query["page"] == "2"
    )


def _children(request: RequestLog) -> bool:
    return request.path.endswith(("/comments", "/idea_comments"))


KILLS: dict[str, Callable[[], tuple[LineKill | None, RequestKill | None]]] = {  # fresh counters per run
    "after_the_first_window": lambda: (_nth_marker(1), None),
    "mid_window": lambda: (None, _count(_mid_window, 4)),
    "during_children": lambda: (None, _count(_children, 90)),
}


@pytest.mark.parametrize("point", list(KILLS))
def test_a_killed_first_sync_resumes_where_it_stopped(
    seeded: FakeAha, tmp_path: Path, clean: tuple[Run, list[RequestLog]], point: str
) -> None:
    on_line, on_request = KILLS[point]()
    tap = Tap(seeded, tmp_path)
    killed = tap.killed(on_line=on_line, on_request=on_request)
    seeded.clear_requests()
    rerun = tap.run(last_state(killed))
    done = check_resume(seeded, *clean, killed, rerun)
    assert 0 < done < 1, done
    listing = [_window_page(r) for r in seeded.requests if r.path == "/api/v1/ideas"]
    # The request read ahead as the run starts is the next window's: no unfiltered page 1, none asked twice.
    assert listing[0] == (fraction_marker(killed), None, "1")
    assert all(since is not None for since, _, _ in listing)
    assert len(set(listing)) == len(listing)
    # What the user reads says it resumes: no "Progress is not resumable" in the state nor the log.
    ideas_state = (last_state(killed) or {})["bookmarks"]["ideas"]
    assert ideas_state["progress_markers"][NOTE] == RESUMABLE_NOTE
    assert "Resuming the first sync" in rerun.stderr
    assert "not resumable" not in rerun.stderr


def _window_page(request: RequestLog) -> tuple[str | None, str | None, str]:
    query = request.query
    return query.get("created_since"), query.get("created_before"), query["page"]


def test_the_read_ahead_first_page_is_the_one_the_window_planner_reads(fake: FakeAha, tmp_path: Path) -> None:
    """A windowed first run asks the same listing pages with the listings read ahead as without, each once."""
    fake.seed(IDEAS)
    asked = {}
    for parallel in (1, 4):
        fake.clear_requests()
        Tap(fake, tmp_path, ("ideas",), parallel=parallel).run()
        asked[parallel] = [_window_page(r) for r in fake.requests if r.path == "/api/v1/ideas"]
    assert sorted(asked[4], key=str) == sorted(asked[1], key=str)
    assert len(set(asked[4])) == len(asked[4])
    assert [page for page in asked[4] if page[:2] == (None, None)] == [(None, None, "1")]  # the planner's


def fraction_marker(killed: Run) -> str:
    found = marker({"type": "STATE", "value": last_state(killed)})
    assert found is not None, "the killed run wrote no marker"
    return found["done_before"]


def test_a_kill_during_the_companions_rereads_only_them(fake: FakeAha, tmp_path: Path) -> None:
    fake.seed(IDEAS)
    streams = (*STREAMS, "idea_organizations", "idea_users", "idea_portals", "products")
    tap = Tap(fake, tmp_path, streams)
    clean = tap.run()
    clean_requests = list(fake.requests)
    fake.clear_requests()
    # The companions' listings are read ahead as the run starts: the kill comes at their turn to be written.
    killed = tap.killed(on_line=lambda m: m["type"] == "RECORD" and m["stream"] == "idea_users")
    assert killed.bookmark() is not None  # the ideas finished: the bookmark is their run's start
    assert MARKER not in killed.state["bookmarks"]["ideas"]
    fake.clear_requests()
    rerun = tap.run(killed.state)
    for stream in streams:
        assert killed.ids(stream) | rerun.ids(stream) == clean.ids(stream), stream
    assert rerun.ids("ideas") == set()  # nothing changed since the bookmark
    assert len(fake.requests) < len(clean_requests) / 10


def test_changes_during_killed_and_resumed_runs_reach_the_next_run(seeded: FakeAha, tmp_path: Path) -> None:
    """Ideas created, changed, deleted and moved to a finished window during either run: none lost."""
    tap = Tap(seeded, tmp_path)
    by_created = sorted(seeded.ideas(), key=lambda idea: idea["created_at"])
    newest = by_created[-1]
    early = by_created[2]
    done: dict[str, str] = {}

    def during_first(request: RequestLog) -> None:  # once the first window is done
        if not done and _mid_window(request) and request.query.get("created_since"):
            done["created"] = seeded.add_idea()["id"]
            seeded.update_idea(early["id"], name="changed during the first run")
            seeded.delete_idea(by_created[3]["id"])
            moved = parse_ts(request.query["created_since"]) - timedelta(seconds=1)
            seeded.update_idea(newest["id"], created_at=fmt_ts(moved))  # into a finished window

    seeded.on_request.append(during_first)
    killed = tap.killed(on_line=_nth_marker(2))
    seeded.on_request.clear()
    assert newest["id"] not in killed.ids("ideas")
    assert by_created[3]["id"] in killed.ids("ideas")  # written, then deleted during the killed run
    killed_state = t.cast("dict[str, t.Any]", last_state(killed))
    deletes_since = killed_state["bookmarks"][DELETES_BOOKMARK]["replication_key_value"]
    assert deletes_since <= killed_state["bookmarks"]["ideas"][MARKER]["started_at"]
    rerun = tap.run(killed_state)
    assert newest["id"] not in rerun.ids("ideas")  # its window was done: the bookmark must catch it
    assert rerun.bookmark() == clean_bookmark_of(killed, rerun)
    later = seeded.add_idea()["id"]
    seeded.update_idea(by_created[1]["id"], name="changed after the runs")
    following = tap.run(rerun.state)
    assert {done["created"], later, early["id"], newest["id"], by_created[1]["id"]} <= (
        following.ids("ideas") | rerun.ids("ideas")
    )
    assert newest["id"] in following.ids("ideas")
    assert early["id"] in following.ids("ideas")  # changed after its window was read
    deleted = by_created[3]["id"]
    tombstones = {
        m["record"]["id"]
        for run in (rerun, following)
        for m in run.messages
        if m["type"] == "RECORD" and m["stream"] == "ideas" and m["record"].get(DELETED_AT)
    }
    assert deleted in tombstones
    everything = killed.ids("ideas") | rerun.ids("ideas") | following.ids("ideas")
    assert set(seeded.idea_ids()) <= everything


def test_comments_skipped_until_a_contradiction_come_before_their_windows_state() -> None:
    """A window's STATE marks its ideas done: comment requests skipped in it and owed after all go first."""
    with FakeAha(comments_count="both") as fake:
        fake.seed(IDEAS, comment_share=0.5)
        by_created = sorted(fake.ideas(), key=lambda idea: idea["created_at"])
        *hidden, low = next(  # listed newest first: a count of 0 that hides comments, then a low count
            [newer["id"], older["id"]]
            for older, newer in itertools.pairwise(by_created[56:])  # a window with a STATE after it
            if fake.comments(newer["id"]) and len(fake.comments(older["id"])) >= 2
        )
        changed = {idea["id"]: idea["updated_at"] for idea in by_created}  # counts changed, nothing else
        for idea_id in hidden:
            fake.update_idea(idea_id, comments_count=0, updated_at=changed[idea_id])
        fake.update_idea(low, comments_count=1, updated_at=changed[low])
        run = run_tap({**_config(fake), "parallel_requests": 1}, streams=IDEA_STREAMS)  # in listing order
        asked = [r.path.split("/")[4] for r in fake.requests if r.path.endswith("/comments")]
        assert min(asked.index(i) for i in hidden) > asked.index(low)  # skipped, then owed after all
        written: set[str] = set()
        ends = []
        for message in run.messages:
            if message["type"] == "RECORD" and message["stream"] == "idea_comments":
                written.add(message["record"]["id"])
            elif found := marker(message):
                ends.append(found["done_before"])
                done = [idea["id"] for idea in by_created if idea["created_at"] < found["done_before"]]
                assert {c["id"] for i in done for c in fake.comments(i)} <= written
        created = fake.ideas()[fake.idea_ids().index(hidden[0])]["created_at"]
        assert len(set(ends)) >= 3
        assert max(ends) > created  # its window ended with a STATE
        assert {c["id"] for i in fake.idea_ids() for c in fake.comments(i)} == run.ids("idea_comments")


def test_comments_skipped_before_a_kill_arrive_when_a_resumed_run_contradicts_the_count(
    tmp_path: Path,
) -> None:
    """A killed run skipped comment requests on a reading of comments_count; a resumed run's evidence
    contradicts it: it writes those comments before it ends, and if it is killed too, the next run does."""
    with FakeAha(comments_count="both") as fake:
        fake.seed(IDEAS, comment_share=0.5)
        tap = Tap(fake, tmp_path, IDEA_STREAMS, parallel=1)  # children in listing order
        first = tap.killed(on_line=lambda m: SKIPPED in (marker(m) or {}))
        state = t.cast("dict[str, t.Any]", last_state(first))
        found = state["bookmarks"]["ideas"][MARKER]
        assert found[SKIPPED]["readings"] == ["both"]
        # An idea the killed run skipped (counted 0, no request) has a comment after all: hidden by its count.
        asked = {r.path.split("/")[4] for r in fake.requests if r.path.endswith("/comments")}
        by_created = sorted(fake.ideas(), key=lambda idea: idea["created_at"])
        hidden = next(
            i
            for i in by_created
            if i["created_at"] < found["done_before"] and i["comments_count"] == 0 and i["id"] not in asked
        )
        comment = fake.add_comment(hidden["id"], created_at=hidden["updated_at"])
        fake.update_idea(hidden["id"], comments_count=0, updated_at=hidden["updated_at"])
        # A later idea contradicts the reading: a count of 1 for two internal comments and no portal one.
        later = next(
            i
            for i in by_created
            if i["created_at"] > found["done_before"]
            and len(fake.comments(i["id"])) >= 2
            and not fake.portal_comments(i["id"])
        )
        fake.update_idea(later["id"], comments_count=1, updated_at=later["updated_at"])
        resumed = tap.run(state)
        assert comment["id"] in resumed.ids("idea_comments")
        assert "comments_count contradicts the reading an interrupted run relied on" in resumed.stderr
        # The same resume killed after the contradicting idea's window: the debt is in the marker.
        second = tap.killed(
            state, on_line=lambda m: (marker(m) or {}).get("done_before", "") > later["created_at"]
        )
        state = t.cast("dict[str, t.Any]", last_state(second))
        assert state["bookmarks"]["ideas"][MARKER][SKIPPED]["readings"] == []  # owed
        assert comment["id"] not in first.ids("idea_comments") | second.ids("idea_comments")
        final = tap.run(state)
        assert comment["id"] in final.ids("idea_comments")
        assert "comments_count contradicts the reading an interrupted run relied on" in final.stderr
        written = first.ids("idea_comments") | second.ids("idea_comments") | final.ids("idea_comments")
        assert written == {c["id"] for i in fake.idea_ids() for c in fake.comments(i)}
        assert MARKER not in final.state["bookmarks"]["ideas"]


def test_small_and_empty_accounts_make_the_same_requests_as_before(fake: FakeAha) -> None:
    config = _config(fake)
    run_tap(config, streams=IDEA_STREAMS)
    assert [r.query.get("page") for r in fake.requests if r.path == "/api/v1/ideas"] == ["1"]
    fake.seed(WINDOWED_OVER_PAGES * PAGE_SIZE)  # the largest listing read as before
    fake.clear_requests()
    run = run_tap(config, streams=IDEA_STREAMS)
    listing = [r.query for r in fake.requests if r.path == "/api/v1/ideas"]
    assert [q["page"] for q in listing] == [str(p) for p in range(1, WINDOWED_OVER_PAGES + 1)]
    assert not any("created_since" in q or "created_before" in q for q in listing)
    assert not any(MARKER in s.get("bookmarks", {}).get("ideas", {}) for s in run.states)


def test_a_windowed_first_run_then_an_unchanged_incremental_run(fake: FakeAha) -> None:
    fake.seed(IDEAS)
    config = _config(fake)
    first = run_tap(config, streams=IDEA_STREAMS)
    assert first.ids("ideas") == set(fake.idea_ids())
    assert len(first.records("ideas")) == IDEAS  # no idea twice, boundaries included
    markers = [
        s["bookmarks"]["ideas"][MARKER] for s in first.states if MARKER in s["bookmarks"].get("ideas", {})
    ]
    assert len({m["done_before"] for m in markers}) >= 3
    assert first.bookmark() == markers[0]["started_at"]
    assert len(json.dumps(markers[-1])) < 200
    assert max(len(json.dumps(s)) for s in first.states) < 4096
    fake.clear_requests()
    fake.update_idea(fake.idea_ids()[0], name="changed")
    second = run_tap(config, state=first.state, streams=IDEA_STREAMS)
    listing = [r.query for r in fake.requests if r.path == "/api/v1/ideas"]
    assert listing == [{**listing[0], "page": "1"}]
    assert listing[0]["updated_since"] == first.bookmark()
    assert "created_since" not in listing[0]
    assert second.ids("ideas") == {fake.idea_ids()[0]}


def test_boundary_ideas_are_listed_whichever_way_aha_reads_the_bounds(fake: FakeAha) -> None:
    """Many ideas on one millisecond: windows overlap by 1 ms, and each idea is written once."""
    fake.seed(IDEAS)
    moment = fake.ideas()[10]["created_at"]
    for idea_id in fake.idea_ids()[20:35]:
        fake.update_idea(idea_id, created_at=moment)
    run = run_tap(_config(fake), streams=("ideas",))
    assert len(run.records("ideas")) == len(run.ids("ideas")) == IDEAS


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"started_at": "2024-01-01T00:00:00Z"}, "must be {"),
        ("yesterday", "must be {"),
        ({"started_at": "2024-01-01T00:00:00Z", "done_before": "soon"}, "'done_before' is not an ISO-8601"),
    ],
)
def test_a_bad_resume_marker_stops_with_one_line(
    fake: FakeAha, tmp_path: Path, value: object, words: str
) -> None:
    state = {"bookmarks": {"ideas": {MARKER: value}}}
    run = run_cli([], tmp_path, config=_config(fake), state=state)
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if "first_sync" in line]
    assert len(lines) == 1
    assert words in lines[0]
    assert fake.requests == []


GOOD_MARKER = {"started_at": "2024-01-01T00:00:00Z", "done_before": "2023-06-01T00:00:00Z"}
GOOD_SKIPPED = {"before": "2023-06-01T00:00:00Z", "kinds": ["internal"], "readings": ["both"]}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({**GOOD_MARKER, "skipped": {"before": "2024-01-01T00:00:00Z"}}, "'skipped' must be {"),
        ({**GOOD_MARKER, "skipped": {**GOOD_SKIPPED, "kinds": "internal"}}, "'skipped' must be {"),
        ({**GOOD_MARKER, "skipped": {**GOOD_SKIPPED, "before": 7}}, "'before' is not an ISO-8601"),
        ({**GOOD_MARKER, "extra": 1}, "must be {"),
    ],
)
def test_the_state_reader_checks_the_markers_skipped_requests(value: object, words: str) -> None:
    """The CLI's check (above), on the reader it calls: a good marker passes, each bad one fails."""
    good = {"bookmarks": {"ideas": {MARKER: {**GOOD_MARKER, "skipped": GOOD_SKIPPED}}}}
    assert read_state(io.StringIO(json.dumps(good)), ["ideas"]) == good
    bad = {"bookmarks": {"ideas": {MARKER: value}}}
    with pytest.raises(StateError, match=re.escape(words)) as raised:
        read_state(io.StringIO(json.dumps(bad)), ["ideas"])
    assert "\n" not in str(raised.value)
