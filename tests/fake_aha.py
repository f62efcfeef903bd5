"""A fake Aha! REST API v1 server for tap-aha's tests, benchmarks and offline simulator (``python -m
tests.fake_aha --ideas 300`` prints its URL).

It reproduces the behaviour described in ``shared/reference/aha-api.md`` and ``aha-roadmap.md``, including
the awkward parts a tap must survive: compact list items versus full detail records, pages computed per
request (so writes during a walk shift page boundaries), ``total_pages`` 0 for empty results, nested ids whose
type drifts between int and str, portal comments without ``updated_at``, per-account rate limits and
injectable transport faults. Standard library only, so it runs anywhere the tap's tests run.

``FakeAha`` is one account behind one server; ``route_table`` lists every path it answers. Each part lives in
the module named for it, with the switches for what the real service leaves unverified:

* ``tests/fake_ideas.py``: ideas (``/ideas``, ``/ideas/{id}``, ``/products/{id}/ideas``);
* ``tests/fake_votes.py``: votes (``/ideas/{id}/endorsements``, ``/ideas/endorsements``);
* ``tests/fake_comments.py``: internal and portal comments (``/ideas/{id}/comments``, ``.../idea_comments``);
* ``tests/fake_audits.py``: deletes, restores and the audit log (``/audits``);
* ``tests/fake_companions.py``: organizations, idea users, portals, workspaces, categories;
* ``tests/fake_roadmap.py``: features, epics, releases, goals and the rest of the roadmap;
* ``tests/fake_account.py``: what they share (lock, clock, catalogue, ``/me``, stores, ``comments_count``);
* ``tests/fake_http.py``: the server, request log, auth, rate limits and faults; ``tests/fake_paging.py`` the
  paging and list envelope; ``tests/fake_formats.py`` timestamps and JSON.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from types import FrameType

from tests.fake_account import COMMENTS_COUNT_MODES, Account
from tests.fake_audits import Audits
from tests.fake_comments import Comments
from tests.fake_companions import Companions
from tests.fake_formats import API_PREFIX, HOST, JSON, PORTAL_HOST, fmt_ts, ms, parse_ts
from tests.fake_http import (
    DEFAULT_MINUTE_LIMIT,
    FAULTS,
    FORBIDDEN_KEY,
    RANDOM_FAULTS,
    SLOW_SECONDS,
    HttpFake,
    RequestLog,
    Routes,
)
from tests.fake_ideas import COMPACT_KEYS, CREATED_FILTERS, MISSING, ORDERS, Ideas
from tests.fake_paging import DEFAULT_PER_PAGE, MAX_PER_PAGE
from tests.fake_roadmap import Roadmap
from tests.fake_votes import Votes

# What tests and the benchmark imported from here before the fake was split: still importable from here.
__all__ = [
    "API_PREFIX",
    "COMMENTS_COUNT_MODES",
    "COMPACT_KEYS",
    "CREATED_FILTERS",
    "DEFAULT_MINUTE_LIMIT",
    "DEFAULT_PER_PAGE",
    "FAULTS",
    "FORBIDDEN_KEY",
    "HOST",
    "JSON",
    "MAX_PER_PAGE",
    "MISSING",
    "ORDERS",
    "PORTAL_HOST",
    "RANDOM_FAULTS",
    "SLOW_SECONDS",
    "FakeAha",
    "RequestLog",
    "fmt_ts",
    "main",
    "parse_ts",
]


class FakeAha(Ideas, Votes, Comments, Audits, HttpFake):
    """In-process fake of one Aha! account's API; see the module docstring for where each part lives."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        rng_seed: int = 42,
        order: str = "created_desc",
        list_honours_fields: bool = True,
        updated_since_inclusive: bool = True,
        latency: float = 0.0,
        rate_limit_per_minute: int | None = None,
        rate_limit_per_second: int | None = None,
        send_retry_after: bool = True,
        port: int = 0,
        nested_id_drift: bool = False,
        comments_count: str = "mixed",
        created_filters: str = "since_inclusive",
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}")
        if created_filters not in CREATED_FILTERS:
            raise ValueError(f"created_filters must be one of {CREATED_FILTERS}")
        if comments_count not in COMMENTS_COUNT_MODES:
            raise ValueError(f"comments_count must be one of {COMMENTS_COUNT_MODES}")
        HttpFake.__init__(
            self,
            api_key=api_key,
            latency=latency,
            rate_limit_per_minute=rate_limit_per_minute,
            rate_limit_per_second=rate_limit_per_second,
            send_retry_after=send_retry_after,
            port=port,
            fault_seed=rng_seed + 1,
        )
        Account.__init__(self, rng_seed)
        self.comments_count_mode = comments_count
        self.order = order
        self.list_honours_fields = list_honours_fields
        self.updated_since_inclusive = updated_since_inclusive
        self.nested_id_drift = nested_id_drift
        self.created_filters = created_filters
        self.listed_created_at = {}
        self.companions = Companions(self, rng_seed)
        self.roadmap = Roadmap(self, rng_seed)

    def route_table(self) -> Routes:
        """Every path the fake answers under /api/v1, by domain; each ``{part}`` is passed to the handler."""
        companions, listing, detail = self.companions, self.roadmap.listing, self.roadmap.detail
        return {
            # the account (tests/fake_account.py)
            "me": self._get_me,
            # ideas (tests/fake_ideas.py)
            "ideas": self._list_ideas,
            "ideas/{idea}": self._get_idea,
            "products/{product}/ideas": self._list_product_ideas,
            # votes (tests/fake_votes.py)
            "ideas/{idea}/endorsements": self._list_idea_votes,
            "ideas/endorsements": self._list_account_votes,
            # comments (tests/fake_comments.py)
            "ideas/{idea}/comments": self._list_comments,
            "ideas/{idea}/idea_comments": self._list_portal_comments,
            # the audit log (tests/fake_audits.py)
            "audits": self._list_audits,
            # companions (tests/fake_companions.py)
            "idea_organizations": companions.list_organizations,
            "idea_users": companions.list_idea_users,
            "idea_portals": companions.list_portals,
            "products": companions.list_products,
            "products/{product}/idea_categories": companions.list_categories,
            # the roadmap (tests/fake_roadmap.py)
            "features": partial(listing, "features"),
            "features/{feature}": partial(detail, "features"),
            "features/{feature}/requirements": partial(listing, "requirements"),
            "epics": partial(listing, "epics"),
            "epics/{epic}": partial(detail, "epics"),
            "products/{product}/releases": partial(listing, "releases"),
            "releases/{release}": partial(detail, "releases"),
            "release_phases": partial(listing, "release_phases"),
            "initiatives": partial(listing, "initiatives"),
            "initiatives/{initiative}": partial(detail, "initiatives"),
            "goals": partial(listing, "goals"),
            "goals/{goal}/key_results": partial(listing, "key_results"),
            "tasks": partial(listing, "tasks"),
            "tasks/{task}": partial(detail, "tasks"),
            "users": partial(listing, "users"),
            "idea_themes": partial(listing, "idea_themes"),
        }

    # ------------------------------------------------------------------ the whole account at once

    def seed(
        self,
        n_ideas: int,
        *,
        vote_share: float = 0.15,
        comment_share: float = 0.30,
        portal_comment_share: float = 0.30,
        max_votes: int = 6,
        max_comments: int = 5,
        description_chars: int = 600,
        start: str = "2023-01-01T00:00:00.000Z",
    ) -> None:
        """Create ``n_ideas`` realistic ideas created and updated within [start, start + n minutes).

        Children lie between the idea's created_at and updated_at (adding them bumped it), and
        groups of ideas share an updated_at millisecond because ties break naive bookmarks.
        """
        rng = self._rng
        t0 = parse_ts(start)
        end = t0 + timedelta(minutes=n_ideas)
        span_ms = max(n_ideas * 60_000, 1)
        created_all = sorted(ms(t0 + timedelta(milliseconds=rng.randrange(span_ms))) for _ in range(n_ideas))
        with self._lock:
            seeded: list[tuple[str, datetime]] = []
            for created in created_all:
                updated = (
                    created if rng.random() < 0.25 else ms(created + (end - created) * rng.random() ** 2)
                )
                idea = self._build_idea(created, updated, description_chars)
                iid = self._register(idea, comments_count_includes_portal=rng.random() < 0.5)
                plan: list[tuple[str, int]] = []
                if rng.random() < vote_share:
                    plan.append(("proxy", rng.randint(1, max(max_votes, 1))))
                if rng.random() < 0.2:  # plain (non-proxy) votes, so proxy=true filtering matters
                    plan.append(("plain", rng.randint(1, 3)))
                if max_comments > 0 and rng.random() < comment_share:
                    plan.append(("comment", rng.randint(1, max_comments)))
                if max_comments > 0 and rng.random() < portal_comment_share:
                    plan.append(("portal", rng.randint(1, max_comments)))
                self._seed_children(iid, created, updated, plan)
                seeded.append((iid, updated))
            self._tie_groups(seeded)
        self.companions.grow(n_ideas)
        self.roadmap.grow(n_ideas)

    def _seed_children(
        self, iid: str, created: datetime, updated: datetime, plan: list[tuple[str, int]]
    ) -> None:
        """Create children in time order between created and updated (adding them bumped the idea)."""
        rng = self._rng
        idea = self._ideas[iid]
        events = sorted((self._between(created, updated), kind) for kind, n in plan for _ in range(n))
        for when, kind in events:
            if kind in ("proxy", "plain"):
                self._votes[iid].append(self._build_vote(idea, when, proxy=kind == "proxy"))
            elif kind == "comment":
                self._comments[iid].append(self._build_comment(idea, when, edited_by=updated))
            else:
                earlier = self._portal[iid]
                parent = int(rng.choice(earlier)["id"]) if earlier and rng.random() < 0.3 else None
                spam = rng.random() < 0.1
                self._portal[iid].append(self._build_portal_comment(idea, when, spam=spam, parent_id=parent))
        self._recount(iid)


def _parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a fake Aha! API seeded with realistic ideas.")
    parser.add_argument("--ideas", type=int, default=300, help="number of ideas to seed")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept per response")
    parser.add_argument("--api-key", default="test-key", help="the only accepted bearer key")
    parser.add_argument("--seed", type=int, default=42, help="RNG seed for the data")
    parser.add_argument("--order", choices=ORDERS, default="created_desc", help="listing order of /ideas")
    parser.add_argument("--rate-limit-per-minute", type=int, default=None)
    parser.add_argument("--rate-limit-per-second", type=int, default=None)
    parser.add_argument(
        "--comments-count", choices=COMMENTS_COUNT_MODES, default="mixed", help="what comments_count counts"
    )
    return parser.parse_args(None if argv is None else list(argv))


def main(argv: Iterable[str] | None = None) -> int:
    """Run the offline simulator until SIGTERM/SIGINT; prints ``FAKE_AHA_URL=...`` once ready."""
    args = _parse_args(argv)
    fake = FakeAha(
        api_key=args.api_key,
        rng_seed=args.seed,
        order=args.order,
        latency=args.latency,
        rate_limit_per_minute=args.rate_limit_per_minute,
        rate_limit_per_second=args.rate_limit_per_second,
        port=args.port,
        comments_count=args.comments_count,
    )
    fake.seed(args.ideas)
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    fake.start()
    print(f"FAKE_AHA_URL={fake.url}", flush=True)
    try:
        while not done.wait(0.2):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
