"""The fake Aha! server in a process of its own, driven over a pipe, and what it knows about a run.

Its CPU never mixes with the tap's or with this process's. Besides serving, it answers the questions
the benchmark asks of the data: the minimum requests a correct tap needs for a window of ideas, what
the tap actually requested (from the request log), and it applies the "2 % changed" edits.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import random
import traceback
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode

from tests.fake_aha import FakeAha
from tests.fake_formats import API_PREFIX, parse_ts

if t.TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from types import TracebackType

MAX_PAGE = 200  # Aha!'s largest page
NAIVE_PAGE = 100  # the naive tap's page size
KINDS = ("listing", "votes", "comments", "portal", "detail", "deletes", "other")
THREE_STREAMS = ("ideas", "idea_proxy_votes", "idea_comments")  # issue 5's workload
IDEA_STREAMS = (*THREE_STREAMS, "idea_portal_comments")  # what the minimum is worked out for


@dataclass(frozen=True)
class FakeOptions:
    """How to seed and serve one fake account."""

    ideas: int
    latency: float = 0.0
    per_minute: int | None = None
    per_second: int | None = None
    seed: int = 42
    vote_share: float = 0.15
    comment_share: float = 0.30
    description_chars: int = 600
    api_key: str = "bench-key"
    fault_share: float = 0.0  # share of requests failing once (a 5xx or a reset)
    stall: float = 0.0  # seconds one child request (comments of the idea listed mid-run) is held
    comments_count: str = "mixed"  # what the ideas' comments_count counts (tests/fake_account.py)


@dataclass
class Audit:
    """One run's requests, per kind, against the minimum a correct tap needs for its window."""

    window: int = 0
    bookmark: str | None = None
    minimum: dict[str, int] = field(default_factory=dict)
    actual: dict[str, int] = field(default_factory=dict)
    excess: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    naive: int = 0
    expected_records: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    other_errors: int = 0
    per_page: list[str] = field(default_factory=list)
    span: float = 0.0  # first arrival to last arrival, seconds
    # A first sync in created_at windows (tap_aha.first_sync) may list one page more per window it tries
    # (a part page at its end, or a guess cut smaller) and the first unfiltered page: the extra allowed.
    windows: int = 0

    @property
    def listing_allowance(self) -> int:
        """Listing requests allowed above the minimum: none, or one per window tried and one more."""
        return self.windows + 1 if self.windows else 0

    @property
    def min_total(self) -> int:
        """Requests a correct tap needs."""
        return sum(self.minimum.values())

    @property
    def total(self) -> int:
        """Requests the tap made (any status)."""
        return sum(self.actual.values())


def _pages(count: int) -> int:
    """Requests to read a listing of `count` items: a listing with no result still costs one."""
    return max(1, math.ceil(count / MAX_PAGE))


def _kind(path: str) -> tuple[str, str | None]:
    """Classify a logged path: (kind, idea id or None)."""
    parts = path[len(API_PREFIX) :].strip("/").split("/")
    if parts == ["ideas"]:
        return "listing", None
    if parts == ["ideas", "endorsements"]:
        return "votes", None  # the account-wide vote listing
    if parts == ["audits"]:
        return "deletes", None
    if len(parts) == 2 and parts[0] == "ideas":  # noqa: PLR2004 - /ideas/{id}
        return "detail", parts[1]
    if len(parts) == 3 and parts[0] == "ideas":  # noqa: PLR2004 - /ideas/{id}/{child}
        children = {"endorsements": "votes", "comments": "comments", "idea_comments": "portal"}
        return children.get(parts[2], "other"), parts[1]
    return "other", None


def audit(fake: FakeAha, bookmark: str | None, streams: tuple[str, ...] = THREE_STREAMS) -> Audit:
    """Compare the logged requests with the minimum for the ideas updated at or after `bookmark`.

    The minimum follows from what the API guarantees, for the selected `streams`: listing pages of 200
    (one for an empty listing); the account's proxy votes updated in the window, in pages of 200 of the vote
    listing (one for none); per idea one comments request per page of its comments (comments_count is not
    known to count internal comments); per idea one portal-comments request per page of its non-spam portal
    comments; no detail requests (the list honours `fields`); after a first run, the audit log's destroys
    since the bookmark in pages of 200 (one for none; a first run reads no deletes).
    """
    since = None if bookmark is None else parse_ts(bookmark)
    ideas = [idea for idea in fake.ideas() if since is None or parse_ts(idea["updated_at"]) >= since]
    expected: dict[tuple[str, str], int] = {}
    records = Counter({name: 0 for name in streams})
    records["ideas"] = len(ideas)
    result = Audit(window=len(ideas), bookmark=bookmark)
    result.minimum = dict.fromkeys(KINDS, 0)
    if "idea_proxy_votes" in streams:
        votes = [
            vote
            for idea_id in fake.idea_ids()
            for vote in fake.votes(idea_id)
            if since is None or parse_ts(vote["updated_at"]) >= since
        ]
        records["idea_proxy_votes"] = len(votes)
        result.minimum["votes"] = _pages(len(votes))
    for idea in ideas:
        if "idea_comments" in streams:
            comments = len(fake.comments(idea["id"]))
            records["idea_comments"] += comments
            expected["comments", idea["id"]] = _pages(comments)
        if "idea_portal_comments" in streams:
            portal = len(fake.portal_comments(idea["id"], include_spam=False))
            records["idea_portal_comments"] += portal
            expected["portal", idea["id"]] = _pages(portal)
    result.expected_records = dict(records)
    result.minimum["listing"] = _pages(len(ideas))
    if since is not None:
        destroys = [
            a for a in fake.audits() if a["audit_action"] == "destroy" and parse_ts(a["created_at"]) >= since
        ]
        result.minimum["deletes"] = _pages(len(destroys))
    for (kind, _), pages in expected.items():
        result.minimum[kind] += pages
    children = sum(name in streams for name in ("idea_proxy_votes", "idea_comments", "idea_portal_comments"))
    result.naive = math.ceil(len(ideas) / NAIVE_PAGE) + children * len(ideas) + result.minimum["deletes"]
    _count_actual(fake, result, expected)
    return result


def _count_actual(fake: FakeAha, result: Audit, expected: dict[tuple[str, str], int]) -> None:
    """Fill the actual, excess and missing counts and the error tallies from the request log."""
    logged = list(fake.requests)
    actual = Counter(dict.fromkeys(KINDS, 0))
    per_idea: Counter[tuple[str, str]] = Counter()
    per_page: set[str] = set()
    windows: set[tuple[str | None, str | None]] = set()
    for entry in logged:
        kind, idea_id = _kind(entry.path)
        if kind == "listing" and ("created_since" in entry.query or "created_before" in entry.query):
            windows.add((entry.query.get("created_since"), entry.query.get("created_before")))
        actual[kind] += 1
        if idea_id is not None and kind in {"comments", "portal"}:
            per_idea[kind, idea_id] += 1
        per_page.add(entry.query.get("per_page", "-"))
        if entry.status == 429:  # noqa: PLR2004
            result.rate_limited += 1
        elif entry.status != 200:  # noqa: PLR2004
            result.other_errors += 1
    result.actual = dict(actual)
    result.windows = len(windows)
    result.excess = {kind: 0 for kind in KINDS}
    result.missing = {kind: 0 for kind in KINDS}
    for key in set(expected) | set(per_idea):
        diff = per_idea[key] - expected.get(key, 0)
        result.excess[key[0]] += max(diff, 0)
        result.missing[key[0]] += max(-diff, 0)
    for kind in ("listing", "votes", "detail", "deletes", "other"):
        diff = actual[kind] - result.minimum[kind]
        result.excess[kind] += max(diff, 0)
        result.missing[kind] += max(-diff, 0)
    result.per_page = sorted(per_page)
    if logged:
        result.span = logged[-1].time - logged[0].time


def change(fake: FakeAha, share: float, seed: int) -> dict[str, int]:
    """Change `share` of the ideas: a third edited, a third given a proxy vote, a third a comment."""
    rng = random.Random(seed)  # noqa: S311 - benchmark data, reproducible by seed
    ids = fake.idea_ids()
    chosen = rng.sample(ids, max(1, round(share * len(ids))))
    done = Counter({"edited": 0, "voted": 0, "commented": 0})
    for number, idea_id in enumerate(chosen):
        if number % 3 == 0:
            fake.update_idea(idea_id, name=f"{fake.idea(idea_id)['name']} (edited)")
            done["edited"] += 1
        elif number % 3 == 1:
            fake.add_vote(idea_id, proxy=True)
            done["voted"] += 1
        else:
            fake.add_comment(idea_id)
            done["commented"] += 1
    return dict(done)


def comment_stats(fake: FakeAha) -> dict[str, int]:
    """Ideas, those whose comments_count is not 0, and those with a comment of either kind (spam aside)."""
    ideas = fake.ideas()
    return {
        "ideas": len(ideas),
        "counted": sum(1 for idea in ideas if idea["comments_count"]),
        "internal": sum(1 for idea in ideas if fake.comments(idea["id"])),
        "portal": sum(1 for idea in ideas if fake.portal_comments(idea["id"], include_spam=False)),
        "any": sum(
            1
            for idea in ideas
            if fake.comments(idea["id"]) or fake.portal_comments(idea["id"], include_spam=False)
        ),
    }


def urls(fake: FakeAha) -> list[str]:
    """The full URLs of the answered requests in the log, in arrival order."""
    base = fake.url[: -len(API_PREFIX)]
    return [f"{base}{r.path}?{urlencode(r.query)}" for r in list(fake.requests) if r.status == 200]  # noqa: PLR2004


def max_updated(fake: FakeAha) -> str:
    """The largest updated_at of any idea: where a full run's bookmark must land."""
    return str(max((idea["updated_at"] for idea in fake.ideas()), key=parse_ts))


def created_share(fake: FakeAha, before: str) -> float:
    """The share of the ideas created before `before` (what a first-sync marker says is done)."""
    ideas = fake.ideas()
    limit = parse_ts(before)
    return sum(1 for idea in ideas if parse_ts(idea["created_at"]) < limit) / max(len(ideas), 1)


def _clear(fake: FakeAha) -> None:
    fake.clear_requests()


COMMANDS: dict[str, t.Callable[..., t.Any]] = {
    "audit": audit,
    "change": change,
    "urls": urls,
    "comment_stats": comment_stats,
    "max_updated": max_updated,
    "created_share": created_share,
    "clear": _clear,
}


def _handle(fake: FakeAha, command: str, args: tuple[t.Any, ...]) -> t.Any:
    """Run one command from the parent."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    return COMMANDS[command](fake, *args)


def _serve(conn: Connection, options: FakeOptions) -> None:
    """Child process: seed, serve, answer commands until "stop"."""
    fake = FakeAha(
        api_key=options.api_key,
        rng_seed=options.seed,
        latency=options.latency,
        rate_limit_per_minute=options.per_minute,
        rate_limit_per_second=options.per_second,
        comments_count=options.comments_count,
    )
    fake.seed(
        options.ideas,
        vote_share=options.vote_share,
        comment_share=options.comment_share,
        description_chars=options.description_chars,
    )
    fake.fault_share = options.fault_share
    if options.stall:
        fake.slow_seconds = options.stall
        stalled = sorted(fake.idea_ids())[len(fake.idea_ids()) // 2]  # listed mid-run
        fake.inject("slow", path_prefix=f"/ideas/{stalled}/comments")
    fake.start()
    conn.send(("ok", fake.url))
    try:
        while True:
            command, args = conn.recv()
            if command == "stop":
                break
            try:
                conn.send(("ok", _handle(fake, command, args)))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    finally:
        fake.stop()
        conn.close()


class FakeProcess:
    """A fake Aha! account served by a child process; use as a context manager."""

    def __init__(self, options: FakeOptions) -> None:
        """Prepare (not start) the child."""
        self.options = options
        self.url = ""
        context = mp.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, options), daemon=True)
        self._child = child

    def __enter__(self) -> FakeProcess:
        """Start the child and wait until it serves."""
        self._process.start()
        self._child.close()
        self.url = t.cast("str", self._receive())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the child and reap it."""
        if self._process.is_alive():
            self._conn.send(("stop", ()))
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._conn.close()

    def _receive(self) -> t.Any:
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"fake Aha! process failed:\n{value}")
        return value

    def call(self, command: str, *args: t.Any) -> t.Any:
        """Run a command in the child and return its answer."""
        self._conn.send((command, args))
        return self._receive()

    def audit(self, bookmark: str | None, streams: tuple[str, ...]) -> Audit:
        """Requests logged since the last clear, against the minimum for the window from `bookmark`."""
        return t.cast("Audit", self.call("audit", bookmark, streams))

    def change(self, share: float, seed: int) -> dict[str, int]:
        """Change `share` of the ideas (edit, proxy vote or comment, each bumping updated_at)."""
        return t.cast("dict[str, int]", self.call("change", share, seed))

    def urls(self) -> list[str]:
        """URLs of the answered requests logged since the last clear."""
        return t.cast("list[str]", self.call("urls"))

    def comment_stats(self) -> dict[str, int]:
        """Ideas, and those counted > 0 or with comments (see `comment_stats`)."""
        return t.cast("dict[str, int]", self.call("comment_stats"))

    def max_updated(self) -> str:
        """The largest updated_at in the data."""
        return t.cast("str", self.call("max_updated"))

    def clear(self) -> None:
        """Forget the logged requests."""
        self.call("clear")
