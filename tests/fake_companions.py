"""The fake Aha!'s account-wide companion records: organizations, idea users, portals, workspaces, categories.

Linked with the ideas' data in ``tests/fake_account.py``: votes name organizations and idea users listed here,
ideas carry a ``product_id`` and ``categories`` listed here, organizations count the votes cast for them.
What the real service does and a tap must cope with:

* ``/idea_organizations`` list items are stubs (``id, name, created_at, url, resource``) unless ``fields=``
  names the rest; with ``ideas_advanced = False`` (a plan without "Ideas Advanced") it answers 403;
* ``/idea_users`` records have no ``updated_at``, yet ``updated_since`` filters them on a hidden change time;
  ``title`` and ``phone`` come only when named in ``fields=``;
* ``/products/{id}/idea_categories`` nest through ``parent_id`` (an integer or a string) and carry the
  workspace as ``project_id``.

Its own random generator (seeded from the fake's seed), so the ideas' data is the same with or without it.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from tests.fake_account import Account
from tests.fake_formats import HOST, JSON, PORTAL_HOST, copy_json, fmt_ts, micros, parse_ts, select_fields
from tests.fake_paging import Response, after, fields_of, not_found, page_of, refused, time_filter

ORG_STUB_KEYS = ("id", "name", "created_at", "url", "resource")
USER_DEFAULT_KEYS = (
    "id",
    "name",
    "email",
    "created_at",
    "idea_organizations",
    "custom_fields",
    "integration_fields",
)
_DOMAINS = ("acme.com", "globex.io", "initech.net", "umbrella.de", "soylent.co", "hooli.xyz", "cafe.fr")
_CATEGORY_NAMES = ("Integrations", "Performance", "Security", "Onboarding", "Notifications", "Search")


class Companions:
    """The companion records of one FakeAha, and the listings that serve them."""

    def __init__(self, fake: Account, seed: int) -> None:
        self.fake = fake
        self.ideas_advanced = True  # False: /idea_organizations answers 403, as on a plan without it
        self._rng = random.Random(seed * 7919 + 1)  # noqa: S311 - fake data, reproducible by seed
        self._next_id = 6_800_000_000_000_000_000
        base = datetime(2022, 6, 1, tzinfo=UTC)
        self._orgs: dict[str, JSON] = {}
        for stub in fake._orgs:
            self._orgs[stub["id"]] = self._organization(dict(stub), base)
        self._users: dict[str, JSON] = {}
        self._user_changed: dict[str, int] = {}
        for _, idea_user in fake._portal_users:
            self._add_user(dict(idea_user), parse_ts(idea_user["created_at"]))
        self._portals = [self._portal(name, base) for name in ("Customer ideas", "Partner portal")]
        self._categories: dict[str, list[JSON]] = {p["id"]: [] for p in fake._products}
        first = fake._products[0]["id"]
        for cat_id, name, parent, project in fake._categories:  # the ones ideas are filed under
            self._categories[first].append(
                {
                    "id": cat_id,
                    "name": name,
                    "parent_id": parent,
                    "project_id": project,
                    "created_at": fmt_ts(base),
                }
            )
        for product in fake._products[1:]:
            parent_id: int | str | None = None
            for name in self._rng.sample(_CATEGORY_NAMES, 3):
                category = self._category(product["id"], name, parent_id, base)
                self._categories[product["id"]].append(category)
                parent_id = category["id"] if parent_id is None else parent_id

    # ------------------------------------------------------------------ builders

    def _new_id(self) -> str:
        self._next_id += self._rng.randint(1, 999_999)
        return str(self._next_id)

    def _custom_fields(self, when: datetime) -> list[JSON]:
        rng = self._rng
        fields: list[JSON] = [
            {"id": 901 if rng.random() < 0.5 else "901", "key": "industry", "name": "Industry",
             "value": rng.choice(("retail", "finance", "health", "")), "type": "string"},
            {"id": 902, "key": "seats", "name": "Seats", "value": rng.randint(5, 5_000), "type": "number"},
            {"id": "903", "key": "regions", "name": "Regions", "value": rng.sample(["EU", "US", "APAC"], 2),
             "type": "array"},
        ]  # fmt: skip
        chosen = rng.sample(fields, rng.randint(1, 3))
        for field in chosen:
            field["updatedAt"] = fmt_ts(when)
        return chosen

    def _organization(self, stub: JSON, base: datetime) -> JSON:
        rng = self._rng
        created = parse_ts(stub["created_at"])
        updated = max(created, base) + timedelta(
            days=rng.randrange(300), milliseconds=rng.randrange(86_400_000)
        )
        domain = rng.choice(_DOMAINS)
        return {
            **stub,
            "updated_at": fmt_ts(updated),
            "description": {
                "id": self._new_id(), "body": f"<p>{stub['name']}: a customer since {created.year}.</p>",
                "editor_version": 2, "created_at": stub["created_at"], "updated_at": fmt_ts(updated),
                "attachments": [],
            },
            "email_domains": rng.choice((domain, f"{domain}, mail.{domain}", "")),
            "revenue": rng.choice(
                (f"{rng.randrange(10, 5_000) * 1000}.0", f"{rng.randrange(1, 900)}500.5", None)
            ),
            "custom_fields": self._custom_fields(updated),
            "integration_fields": (
                [{"id": self._new_id(), "name": "account_id", "value": f"0015g{rng.randrange(10**8):08d}",
                  "integration_id": rng.randint(10**6, 10**7), "service_name": "salesforce",
                  "created_at": fmt_ts(updated)}]
                if rng.random() < 0.5 else []
            ),
            "created_by_user": dict(rng.choice(self.fake._users)),
        }  # fmt: skip

    def _add_user(self, user: JSON, changed: datetime) -> JSON:
        rng = self._rng
        if rng.random() < 0.7:
            user["title"] = rng.choice(("CTO", "Product Owner", "Analyst", "Buyer"))
        if rng.random() < 0.5:
            user["phone"] = f"+1 555 {rng.randrange(10**6):06d}"
        orgs = rng.sample(list(self._orgs.values()), rng.choice((0, 1, 1, 2)))
        user["idea_organizations"] = [{k: org[k] for k in ORG_STUB_KEYS} for org in orgs]
        user["custom_fields"] = self._custom_fields(changed) if rng.random() < 0.4 else []
        user["integration_fields"] = []
        self._users[user["id"]] = user
        self._user_changed[user["id"]] = micros(changed)
        return user

    def _portal(self, name: str, base: datetime) -> JSON:
        portal_id = self._new_id()
        slug = name.lower().replace(" ", "-")
        return {
            "id": portal_id, "name": name, "title": f"{name} — share your ideas",
            "url": f"{HOST}/idea_portals/{portal_id}", "resource": f"{HOST}/api/v1/idea_portals/{portal_id}",
            "external_url": f"{PORTAL_HOST}/{slug}", "portal_enabled": True,
            "access_type": self._rng.choice(("public", "private", "submit_only")), "created_at": fmt_ts(base),
        }  # fmt: skip

    def _category(self, product_id: str, name: str, parent: int | str | None, when: datetime) -> JSON:
        drift = self._rng.random() < 0.5
        return {
            "id": self._new_id(), "name": name,
            "parent_id": parent if parent is None or not drift else str(parent),
            "project_id": int(product_id) if drift else product_id, "created_at": fmt_ts(when),
        }  # fmt: skip

    # ------------------------------------------------------------------ data API (call with the fake's lock)

    def grow(self, n_ideas: int) -> None:
        """Scale with the account: an organization per 20 ideas and an idea user per 4, most without votes."""
        base = datetime(2022, 6, 1, tzinfo=UTC)
        with self.fake._lock:
            while len(self._orgs) < n_ideas // 20:
                org_id = self._new_id()
                stub = {
                    "id": org_id, "name": f"Customer {len(self._orgs) + 1}",
                    "created_at": fmt_ts(base - timedelta(days=self._rng.randrange(400))),
                    "url": f"{HOST}/idea_organizations/{org_id}",
                    "resource": f"{HOST}/api/v1/idea_organizations/{org_id}",
                }  # fmt: skip
                self._orgs[org_id] = self._organization(stub, base)
            while len(self._users) < n_ideas // 4:
                n = len(self._users) + 1
                created = base - timedelta(days=self._rng.randrange(400))
                user = {"id": self._new_id(), "name": f"Portal user {n}", "email": f"user{n}@example.org",
                        "created_at": fmt_ts(created)}  # fmt: skip
                self._add_user(user, created)

    def update_organization(self, org_id: str, **changes: Any) -> JSON:
        """Change an organization now (server clock); returns a copy of the full record."""
        with self.fake._lock:
            org = self._orgs[org_id]
            org.update(changes)
            org["updated_at"] = fmt_ts(self.fake._now())
            return cast(JSON, copy_json(org))

    def update_idea_user(self, user_id: str, **changes: Any) -> JSON:
        """Change an idea user now: its record shows no change time, but `updated_since` finds it."""
        with self.fake._lock:
            user = self._users[user_id]
            user.update(changes)
            self._user_changed[user_id] = micros(self.fake._now())
            return cast(JSON, copy_json(user))

    def add_idea_user(self, **overrides: Any) -> JSON:
        """A new idea user, created now."""
        with self.fake._lock:
            now = self.fake._now()
            user_id = self._new_id()
            user = {
                "id": user_id, "name": f"New user {user_id[-4:]}", "email": f"new{user_id[-6:]}@example.org",
                "created_at": fmt_ts(now), **overrides,
            }  # fmt: skip
            return cast(JSON, copy_json(self._add_user(user, now)))

    def add_category(self, product_id: str, name: str, parent_id: int | str | None = None) -> JSON:
        """A new category in a workspace, created now."""
        with self.fake._lock:
            category = self._category(product_id, name, parent_id, self.fake._now())
            self._categories[product_id].append(category)
            return cast(JSON, copy_json(category))

    def organizations(self) -> list[JSON]:
        """Full organizations, with `endorsements_count` as served."""
        with self.fake._lock:
            return cast(list[JSON], copy_json([self._counted(org) for org in self._orgs.values()]))

    def idea_users(self) -> list[JSON]:
        """Full idea users (title and phone included)."""
        with self.fake._lock:
            return cast(list[JSON], copy_json(list(self._users.values())))

    def portals(self) -> list[JSON]:
        """The ideas portals."""
        return cast(list[JSON], copy_json(self._portals))

    def products(self) -> list[JSON]:
        """The workspaces as listed."""
        with self.fake._lock:
            return cast(list[JSON], copy_json([self._product(p) for p in self.fake._products]))

    def categories(self) -> dict[str, list[JSON]]:
        """Each workspace's categories, by workspace id."""
        with self.fake._lock:
            return cast(dict[str, list[JSON]], copy_json(self._categories))

    # ------------------------------------------------------------------ routes

    def list_organizations(self, query: dict[str, str]) -> Response:
        """``GET /idea_organizations``: stubs unless ``fields=`` names more; 403 without "Ideas Advanced"."""
        since = time_filter(query, "updated_since")
        with self.fake._lock:
            if not self.ideas_advanced:
                return refused(403)
            return page_of("idea_organizations", self._organizations(fields_of(query), since), query)

    def list_idea_users(self, query: dict[str, str]) -> Response:
        """``GET /idea_users``: filtered on a change time the records do not show."""
        since = time_filter(query, "updated_since")
        fields = fields_of(query)
        with self.fake._lock:
            users = [u for u in self._users.values() if self._after(self._user_changed[u["id"]], since)]
            defaults = [{k: u[k] for k in USER_DEFAULT_KEYS} for u in users]
            items = [
                select_fields(u, fields, d) if fields else d for u, d in zip(users, defaults, strict=True)
            ]
            return page_of("idea_users", items, query)

    def list_portals(self, query: dict[str, str]) -> Response:
        """``GET /idea_portals`` (``updated_since`` is checked but filters nothing)."""
        time_filter(query, "updated_since")
        with self.fake._lock:
            return page_of("idea_portals", list(self._portals), query)

    def list_products(self, query: dict[str, str]) -> Response:
        """``GET /products``: the workspaces (``updated_since`` is checked but filters nothing)."""
        time_filter(query, "updated_since")
        with self.fake._lock:
            return page_of("products", [self._product(p) for p in self.fake._products], query)

    def list_categories(self, query: dict[str, str], key: str) -> Response:
        """``GET /products/{id or reference prefix}/idea_categories``: one workspace's categories."""
        time_filter(query, "updated_since")
        with self.fake._lock:
            product = next((p for p in self.fake._products if key in (p["id"], p["reference_prefix"])), None)
            if product is None:
                return not_found()
            return page_of("idea_categories", list(self._categories[product["id"]]), query)

    def _organizations(self, fields: list[str] | None, since: int | None) -> list[JSON]:
        """Stubs, unless `fields` names more; oldest first."""
        orgs = [o for o in self._orgs.values() if self._after(micros(parse_ts(o["updated_at"])), since)]
        orgs.sort(key=lambda o: (o["created_at"], o["id"]))
        items = []
        for org in map(self._counted, orgs):
            stub = {k: org[k] for k in ORG_STUB_KEYS}
            items.append(select_fields(org, fields, stub) if fields else stub)
        return items

    def _after(self, changed: int, since: int | None) -> bool:
        return after(changed, since, self.fake.updated_since_inclusive)

    def _counted(self, org: JSON) -> JSON:
        count = sum(
            1
            for votes in self.fake._votes.values()
            for vote in votes
            if (vote.get("idea_organization") or {}).get("id") == org["id"]
        )
        return {**org, "endorsements_count": count}

    @staticmethod
    def _product(product: JSON) -> JSON:
        return {**product, "resource": f"{HOST}/api/v1/products/{product['reference_prefix']}"}
