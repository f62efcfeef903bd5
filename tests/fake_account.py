"""The fake Aha!'s account model: one lock, one clock, one seeded generator, the catalogue every record points
at (workspaces, workflow statuses, staff, portal users, organizations, tags, categories, ``GET /me``) and the
stores of ideas, their votes and comments and the audit log, kept consistent with each other.

The domain modules (``tests/fake_ideas.py``, ``fake_votes.py``, ``fake_comments.py``, ``fake_audits.py``) add
the behaviour over these stores; ``tests/fake_aha.py`` puts them behind one server.

What the real ``comments_count`` counts is unverified, so ``comments_count_mode`` picks one of
``COMMENTS_COUNT_MODES``: ``internal`` (internal comments only), ``portal`` (non-spam portal comments only),
``both``, ``unreliable`` (both, but 0 on every third idea that has comments: by ``int(id) % 3``), or the
default ``mixed``: internal comments only for some ideas and internal plus non-spam portal comments for others
(``comments_count_includes_portal(idea_id)`` tells which).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.fake_formats import HOST, JSON, fmt_ts, micros, ms, parse_ts
from tests.fake_paging import Response, json_response

COMMENTS_COUNT_MODES = ("mixed", "internal", "portal", "both", "unreliable")
COLORS = ("#dce7c6", "#f6d8a8", "#c7dbf0", "#e5c7f0", "#f0c7c7", "#d0d0d0")
COMMENT_BODIES = (
    "<p>+1, we need this too.</p>",
    "<p>Discussed with engineering — maybe next quarter.</p>",
    '<p>Customer "Globex" mentioned it again 🙏</p>',
    "<p>Duplicate of an older request?\nPlease check.</p>",
    "<p>Merci beaucoup ! Ça serait génial.</p>",
    "<p>Workaround: use the CSV export &amp; a macro.</p>",
)
TAGS = ("api", "export", "ux", "mobile", "security", "billing", "integrations", "performance")
_PEOPLE = (
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Zoë Bränd",
    "Jürgen Müller",
    "Siobhán O'Neill",
    "李小龙",
    "Björk Guðmundsdóttir",
    "Chidi Anagonye",
    "María José García",
)
_ORGS = ("ACME Corp", "Globex", "Initech", "Umbrella GmbH", "Soylent & Co", "Hooli", "Café Ltd")
# An idea in the recycle bin: the idea, its votes, comments and portal comments, and its comments_count mode.
Binned = tuple[JSON, list[JSON], list[JSON], list[JSON], bool]


class Account:
    """One account's data and the catalogue it shares; call the stores' helpers with ``_lock`` held."""

    comments_count_mode = "mixed"  # one of COMMENTS_COUNT_MODES
    updated_since_inclusive = True  # whether `updated_since=T` lists records changed at exactly T

    def __init__(self, rng_seed: int) -> None:
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._lock = threading.RLock()
        self._rng = random.Random(rng_seed)  # noqa: S311 - fake data, reproducible by seed
        self._next_id = 6_700_000_000_000_000_000 + self._rng.randrange(10**15)
        # ideas (tests/fake_ideas.py), by id
        self._ideas: dict[str, JSON] = {}
        self._refs: dict[str, str] = {}
        self._ts: dict[str, tuple[int, int]] = {}
        self._cc_portal: dict[str, bool] = {}
        self._compact_json: dict[str, str] = {}
        self._order_cache: dict[str, list[str]] = {}
        self._detail_serves: dict[str, int] = {}
        self._ref_counters: dict[str, int] = {}
        self._feature_counter = 0
        # their votes and comments (tests/fake_votes.py, tests/fake_comments.py), by idea id
        self._votes: dict[str, list[JSON]] = {}
        self._comments: dict[str, list[JSON]] = {}
        self._portal: dict[str, list[JSON]] = {}
        # the audit log (GET /audits) and the recycle bin (tests/fake_audits.py)
        self._audits: list[JSON] = []
        self._audit_seq = 9_000_000_000_000_000_000
        self._recycle_bin: dict[str, Binned] = {}
        self._build_catalogue()

    def _new_id(self) -> str:
        """19-digit, increasing string ids like Aha!'s."""
        self._next_id += self._rng.randint(1, 999_999)
        return str(self._next_id)

    def _now(self) -> datetime:
        now = self.clock()
        return ms(now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC))

    def _get_me(self, query: dict[str, str]) -> Response:
        """``GET /me``: the user the API key belongs to."""
        return json_response({"user": self._me})

    # ------------------------------------------------------------------ catalogue

    def _build_catalogue(self) -> None:
        """Fixed products, statuses, users and organisations shared by all ideas."""
        rng = self._rng
        base = datetime(2018, 3, 1, 9, 30, tzinfo=UTC)

        def ts(days: int) -> str:
            return fmt_ts(base + timedelta(days=days, milliseconds=rng.randrange(86_400_000)))

        self._products: list[JSON] = []
        for prefix, name in (("PRJ1", "Project One"), ("PRJ2", "Project Two"), ("APP", "Mobile")):
            self._products.append(
                {
                    "id": self._new_id(),
                    "reference_prefix": prefix,
                    "name": name,
                    "product_line": False,
                    "created_at": ts(rng.randrange(30)),
                    "workspace_type": "product_workspace",
                    "url": f"{HOST}/products/{prefix}",
                }
            )
        self._statuses: list[JSON] = []
        for pos, (name, complete) in enumerate(
            (
                ("Needs review", False),
                ("Under consideration", False),
                ("Future consideration", False),
                ("Planned", False),
                ("Shipped", True),
                ("Will not implement", True),
            ),
            start=1,
        ):
            self._statuses.append(
                {
                    "id": self._new_id(),
                    "name": name,
                    "position": pos,
                    "complete": complete,
                    "color": COLORS[pos - 1],
                }
            )
        self._status_weights = (30, 25, 15, 10, 10, 10)

        def email(name: str, domain: str) -> str:
            ascii_name = "".join(c for c in name.lower().replace(" ", ".") if c.isascii())
            return f"{ascii_name.strip('.') or 'user'}{rng.randrange(100)}@{domain}"

        self._users: list[JSON] = []
        for name in _PEOPLE[:6]:
            self._users.append(
                {
                    "id": self._new_id(),
                    "name": name,
                    "email": email(name, "fakeco.com"),
                    "created_at": ts(rng.randrange(60)),
                    "updated_at": ts(100 + rng.randrange(200)),
                }
            )
        self._portal_users: list[tuple[JSON, JSON]] = []
        for i in range(24):
            name = f"{_PEOPLE[i % len(_PEOPLE)]} {i}"
            mail = email(name, rng.choice(("acme.com", "globex.io", "example.org")))
            created = ts(rng.randrange(300))
            portal_user = {"id": self._new_id(), "name": name, "email": mail, "created_at": created}
            idea_user: JSON = {
                "id": self._new_id(),
                "name": name,
                "email": mail,
                "created_at": created,
            }
            if i % 3:
                idea_user["title"] = rng.choice(("CTO", "Product Owner", "Analyst", ""))
            self._portal_users.append((portal_user, idea_user))
        self._orgs: list[JSON] = []
        for name in _ORGS:
            org_id = self._new_id()
            self._orgs.append(
                {
                    "id": org_id,
                    "name": name,
                    "created_at": ts(rng.randrange(300)),
                    "url": f"{HOST}/idea_organizations/{org_id}",
                    "resource": f"{HOST}/api/v1/idea_organizations/{org_id}",
                }
            )
        self._tag_ids = {tag: 1_000 + i * 7 for i, tag in enumerate(TAGS)}
        self._categories: list[tuple[str, str, int | None, int]] = []
        rng.randrange(10**12)  # drawn as before, so the seeded data stays the same
        project = int(self._products[0]["id"])  # the first workspace's categories
        parent: int | None = None
        for i, name in enumerate(("Reporting", "Exports", "Auth", "Mobile", "Billing")):
            cat_id = self._new_id()
            self._categories.append((cat_id, name, parent, project))
            parent = int(cat_id) if i == 0 else parent
        self._me: JSON = dict(self._users[0])
        self._me["product_roles"] = [
            {
                "role": 20,
                "role_description": "Owner",
                "product_id": p["id"],
                "product_name": p["name"],
            }
            for p in self._products
        ]

    # ------------------------------------------------------------------ what several kinds of record share

    def _between(self, lo: datetime, hi: datetime) -> datetime:
        if hi <= lo:
            return lo
        return ms(lo + (hi - lo) * self._rng.random())

    def _attachment(self, created: datetime) -> JSON:
        rng = self._rng
        att_id = self._new_id()
        size = rng.randint(1_000, 5_000_000)
        name, ctype = rng.choice(
            (
                ("mockup.png", "image/png"),
                ("spec final (2).pdf", "application/pdf"),
                ("données.csv", "text/csv"),
            )
        )
        return {
            "id": att_id,
            "download_url": f"{HOST}/attachments/{att_id}/token/{rng.getrandbits(64):016x}",
            "created_at": fmt_ts(created),
            "updated_at": fmt_ts(created),
            "original_file_size": size,
            "content_type": ctype,
            "file_name": name,
            "file_size": size,
        }

    # ------------------------------------------------------------------ the stores

    def _register(self, idea: JSON, *, comments_count_includes_portal: bool) -> str:
        iid = str(idea["id"])
        self._ideas[iid] = idea
        self._refs[str(idea["reference_num"])] = iid
        self._votes.setdefault(iid, [])
        self._comments.setdefault(iid, [])
        self._portal.setdefault(iid, [])
        self._cc_portal[iid] = comments_count_includes_portal
        self._index(iid)
        return iid

    def _unregister(self, iid: str) -> None:
        """Forget an idea and its children (the caller keeps what it wants of them)."""
        idea = self._ideas.pop(iid)
        self._refs.pop(str(idea.get("reference_num")), None)
        self._votes.pop(iid, None)
        self._comments.pop(iid, None)
        self._portal.pop(iid, None)
        self._ts.pop(iid, None)
        self._compact_json.pop(iid, None)
        self._cc_portal.pop(iid, None)
        self._detail_serves.pop(iid, None)
        self._order_cache.clear()

    def _index(self, iid: str) -> None:
        """Refresh cached timestamps/serialisations after ``iid`` changed."""
        idea = self._ideas[iid]
        self._ts[iid] = (
            micros(parse_ts(idea["created_at"])),
            micros(parse_ts(idea["updated_at"])),
        )
        self._compact_json.pop(iid, None)
        self._order_cache.clear()

    def _recount(self, iid: str) -> None:
        """Keep the idea's counters consistent with its children."""
        idea = self._ideas[iid]
        votes = self._votes[iid]
        idea["endorsements_count"] = len(votes)
        idea["votes"] = int(idea.get("initial_votes") or 0) + sum(int(v.get("weight") or 1) for v in votes)
        internal = len(self._comments[iid])
        portal = sum(1 for pc in self._portal[iid] if not pc.get("spam"))
        mode = self.comments_count_mode
        if mode == "mixed":
            count = internal + (portal if self._cc_portal[iid] else 0)
        elif mode == "unreliable" and int(iid) % 3 == 0:
            count = 0
        else:
            count = {"internal": internal, "portal": portal}.get(mode, internal + portal)
        idea["comments_count"] = count

    def _resolve(self, key: str) -> str | None:
        if key in self._ideas:
            return key
        return self._refs.get(key) or self._refs.get(key.upper())

    def _must(self, key: str) -> str:
        iid = self._resolve(str(key))
        if iid is None:
            raise KeyError(f"no idea {key!r}")
        return iid

    def _bump(self, iid: str, now: datetime) -> None:
        self._ideas[iid]["updated_at"] = fmt_ts(now)
        self._recount(iid)
        self._index(iid)
