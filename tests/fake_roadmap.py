"""The fake Aha!'s roadmap: features, epics, releases, phases, initiatives, goals, key results, requirements,
to-dos, staff users and idea themes (shared/reference/aha-roadmap.md).

Linked with the ideas (``tests/fake_ideas.py``): every feature an idea was promoted to (``idea.feature``) is a
feature here, in a release and often an epic; a few ideas are promoted to an epic, an initiative or a
requirement instead. What the real service does and a tap must cope with (switches for the unverified):

* feature, epic, release and to-do lists send stubs (no ``updated_at``); ``lists_honour_fields`` makes them
  honour ``fields=`` as the idea list does;
* releases are listed per workspace only, key results per goal only, requirements per feature only; goals
  nest key-result stubs (``goals_nest_full_key_results`` nests them whole), a feature's record nests its
  requirements whole (``features_nest_requirements = False`` leaves them out);
* ``ignores_updated_since``: listings (by name, e.g. ``"features"``) that answer as if no ``updated_since``
  were given; ``refused``: endpoints (by name) answered with a status (403, 404); ``refused_parents``: one
  parent's listing (a workspace's releases, a goal's key results, a feature's requirements) refused;
* ``update``, ``add`` and ``delete`` change records now, deletes audited as destroys, as Aha! does.

Its own random generator (seeded from the fake's seed), so the ideas' data is the same with or without it.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from tests.fake_audits import Audits
from tests.fake_formats import HOST, JSON, copy_json, fmt_ts, micros, parse_ts, select_fields
from tests.fake_paging import (
    Response,
    after,
    fields_of,
    json_response,
    not_found,
    page_of,
    refused,
    time_filter,
)

KINDS = (
    "features",
    "epics",
    "releases",
    "release_phases",
    "initiatives",
    "goals",
    "key_results",
    "requirements",
    "tasks",
    "users",
    "idea_themes",
)
# The items of these lists are stubs unless `fields=` names more (and the list honours it).
STUB_KEYS: dict[str, tuple[str, ...]] = {
    "features": ("id", "reference_num", "name", "created_at", "url", "resource", "product_id"),
    "epics": ("id", "reference_num", "name", "created_at", "url", "resource"),
    "releases": (
        "id",
        "reference_num",
        "name",
        "start_date",
        "release_date",
        "parking_lot",
        "created_at",
        "product_id",
        "integration_fields",
        "url",
        "resource",
        "owner",
        "project",
        "parent",
    ),
    "tasks": ("id", "name", "due_date", "status", "created_at"),
}
# Audited as Aha! answers (paths); tests/fake_audits.py's AUDIT_CLASSES spells them as classes.
AUDIT_TYPES = {
    "features": "feature",
    "epics": "epic",
    "releases": "release",
    "release_phases": "release_phase",
    "initiatives": "initiative",
    "goals": "strategic_imperative",
    "key_results": "key_result",
    "requirements": "requirement",
    "tasks": "task",
    "users": "user",
    "idea_themes": "ideas/idea_theme",
}
ROOTS = {kind: kind for kind in KINDS}
DETAIL_ROOTS = {
    "features": "feature",
    "epics": "epic",
    "releases": "release",
    "tasks": "task",
    "initiatives": "initiative",
}
# A new record's reference (from its workspace's prefix and its number) and the noun its name starts with.
REFERENCES = {
    "releases": ("{prefix}-R-{n}", "Release"),
    "epics": ("E-{n}", "Epic"),
    "initiatives": ("{prefix}-S-{n}", "Initiative"),
    "goals": ("{prefix}-G-{n}", "Goal"),
    "features": ("{prefix}-F{n}", "Feature"),
}
FEATURE_STATUSES = ("Under consideration", "Ready to develop", "In development", "Shipped")
_BASE = datetime(2023, 3, 1, tzinfo=UTC)


class Roadmap:
    """The roadmap records of one FakeAha, and the routes that serve them."""

    def __init__(self, fake: Audits, seed: int) -> None:
        self.fake = fake
        self.lists_honour_fields = False  # the documented lists: stubs whatever `fields=` says
        self.goals_nest_full_key_results = False
        self.features_nest_requirements = True
        self.ignores_updated_since: set[str] = set()
        self.refused: dict[str, int] = {}
        self.refused_parents: dict[str, int] = {}
        self._rng = random.Random(seed * 104_729 + 3)  # noqa: S311 - fake data, reproducible by seed
        self._next_id = 6_900_000_000_000_000_000
        self._store: dict[str, dict[str, JSON]] = {kind: {} for kind in KINDS}
        self._unpromoted = 0  # features made by grow() that no idea was promoted to
        self._parent: dict[str, str] = {}  # key result -> goal, requirement -> feature, release -> workspace
        self._kids: dict[str, list[str]] = {}  # the other way round: a parent's ids, oldest first
        self._statuses = [
            {
                "id": self._new_id(),
                "name": name,
                "position": n,
                "complete": name == "Shipped",
                "color": "#c7dbf0",
            }
            for n, name in enumerate(FEATURE_STATUSES, start=1)
        ]
        self._build()

    # ------------------------------------------------------------------ builders

    def _new_id(self) -> str:
        self._next_id += self._rng.randint(1, 999_999)
        return str(self._next_id)

    def _when(self, days: int) -> str:
        return fmt_ts(_BASE + timedelta(days=days, milliseconds=self._rng.randrange(86_400_000)))

    def _user(self, n: int) -> JSON:
        user = self.fake._users[n % len(self.fake._users)]
        return {k: user[k] for k in ("id", "name", "email", "created_at", "updated_at")}

    def _description(self, text: str, when: str) -> JSON:
        return {
            "id": self._new_id(),
            "body": f"<p>{text}</p>",
            "created_at": when,
            "updated_at": when,
            "attachments": [],
        }

    def _custom(self, when: str) -> list[JSON]:
        return [
            {
                "id": 811,
                "key": "theme",
                "name": "Theme",
                "value": self._rng.choice(("growth", "retention")),
                "type": "string",
                "updatedAt": when,
            }
        ]

    def _link(self, record: JSON) -> JSON:
        keys = ("id", "reference_num", "name", "created_at", "url", "resource", "product_id")
        return {k: record[k] for k in keys if k in record}

    def _head(self, kind: str, product: JSON, values: dict[str, Any]) -> tuple[JSON, int]:
        """A new record's opening keys (created now unless `values` gives `created_at`), and its number."""
        created = values.pop("created_at", None) or fmt_ts(self.fake._now())
        record_id = self._new_id()
        n = len(self._store[kind]) + 1
        reference, noun = REFERENCES[kind]
        ref = reference.format(prefix=product["reference_prefix"], n=n)
        url = resource = f"{kind}/{ref}"
        if kind == "goals":  # addressed by id; the web page keeps the old name
            url, resource = f"strategic_imperatives/{record_id}", f"goals/{record_id}"
        head = {
            "id": record_id,
            "reference_num": ref,
            "name": f"{noun} {n}",
            "created_at": created,
            "updated_at": created,
            "url": f"{HOST}/{url}",
            "resource": f"{HOST}/api/v1/{resource}",
            "product_id": product["id"],
        }
        return head, n

    def _workspace(self, product_id: str) -> JSON:
        return next(p for p in self.fake._products if p["id"] == product_id)

    def _put(self, kind: str, record: JSON, parent: str | None = None) -> JSON:
        self._store[kind][record["id"]] = record
        if parent is not None:
            self._parent[record["id"]] = parent
            self._kids.setdefault(parent, []).append(record["id"])
        return record

    def _build(self) -> None:
        """Workspace releases, phases, epics, initiatives, goals, key results, users, themes; no features."""
        products = self.fake._products
        for n in range(6):
            self.add_initiative(name=f"Initiative {n + 1}", created_at=self._when(30 + n))
        for n in range(2):
            self.add_goal(name=f"Goal {n + 1}", created_at=self._when(40 + n))
        for p_index, product in enumerate(products):
            prefix = product["reference_prefix"]
            for r in range(3):  # shipped, next, parking lot
                start = date(2023, 1 + 4 * r, 1)
                self.add_release(
                    product["id"],
                    name=f"{prefix} 2023.{r + 1}",
                    start_date=start.isoformat(),
                    release_date=(start + timedelta(days=90)).isoformat(),
                    released=r == 0,
                    released_on=(start + timedelta(days=90)).isoformat() if r == 0 else None,
                    parking_lot=r == 2,
                    created_at=self._when(p_index * 3 + r),
                )
            for e in range(2):
                self.add_epic(product["id"], name=f"{prefix} epic {e + 1}", created_at=self._when(10 + e))
            self.add_theme(product["id"], f"{prefix} theme", self._when(20 + p_index))
        for n, user in enumerate(self.fake._users):
            self._put("users", self._staff(user, n))

    def _staff(self, user: JSON, n: int) -> JSON:
        return {
            **{k: user[k] for k in ("id", "name", "email", "created_at", "updated_at")},
            "accessed_at": user["updated_at"],
            "product_roles": [
                {
                    "role": 20 if n == 0 else 10,
                    "role_description": "Owner" if n == 0 else "Viewer",
                    "product_id": p["id"],
                    "product_name": p["name"],
                }
                for p in self.fake._products
            ],
            "user_roles": [
                {"role_id": 1, "name": "Product owner", "scope": {"type": "Project", "name": "x"}}
            ],
            "enabled": True,
            "paid_seat": n < 4,
            "administrator": n == 0,
            "administrator_roles": {
                "administer_account": n == 0,
                "administer_billing": False,
                "administer_configuration": n == 0,
            },
            "identity_provider": {"type": "aha"},
        }

    def grow(self, n_ideas: int) -> None:
        """A feature for each promoted idea; a few ideas promoted to an epic, initiative, requirement."""
        with self.fake._lock:
            ideas = list(self.fake._ideas.values())
            for idea in ideas:
                stub = idea.get("feature")
                if stub and stub["id"] not in self._store["features"]:
                    self._add_feature(stub=stub)
            while self._unpromoted < n_ideas // 20:  # features no idea led to
                self._unpromoted += 1
                self._add_feature(created_at=self._when(50 + self._unpromoted))
            unpromoted = [idea for idea in ideas if not idea.get("feature")]
            epics, initiatives = (
                list(self._store["epics"].values()),
                list(self._store["initiatives"].values()),
            )
            requirements = list(self._store["requirements"].values())
            for n, idea in enumerate(unpromoted[:4]):
                if n < 2:
                    idea["epic"] = self._link(epics[n])
                elif n == 2:
                    idea["initiative"] = self._link(initiatives[0])
                elif requirements:
                    idea["requirement"] = self._link(requirements[0])

    def add_release(self, product_id: str, **values: Any) -> JSON:
        """A release of a workspace (created now unless `created_at` is given)."""
        with self.fake._lock:
            product = self._workspace(product_id)
            head, n = self._head("releases", product, values)
            created, release_id = head["created_at"], head["id"]
            start = values.get("start_date") or "2024-01-01"
            record = {
                **head,
                "start_date": start,
                "release_date": "2024-03-31",
                "end_date": values.get("release_date") or "2024-03-31",
                "development_started_on": start,
                "external_release_date": values.get("release_date") or "2024-04-15",
                "released": False,
                "released_on": None,
                "parking_lot": False,
                "master_release": False,
                "parent": {"id": product_id, "name": product["name"]} if n % 4 == 0 else None,
                "owner": self._user(n),
                "project": {"id": product_id, "name": product["name"]},
                "integration_fields": [],
                "position": n,
                "progress": 0,
                "progress_source": "progress_from_features",
                "status_changed_on": start,
                "workflow_status": dict(self._statuses[min(n % 4, 3)]),
                "goals": [],
                "initiatives": [],
                "key_results": [],
                "custom_fields": self._custom(created),
                "comments_count": 0,
                "created_by_user": self._user(n + 1),
                **values,
            }
            record["released_on"] = record["released_on"] or (
                record["release_date"] if record["released"] else None
            )
            self._put("releases", record, product_id)
            phase_id = self._new_id()
            self._put(
                "release_phases",
                {
                    "id": phase_id,
                    "name": "Development",
                    "start_on": start,
                    "end_on": record["release_date"],
                    "type": "phase",
                    "release_id": int(release_id),
                    "created_at": created,
                    "updated_at": created,
                    "progress": 0,
                    "progress_source": "progress_manual",
                    "duration_source": "duration_manual",
                    "description": self._description("Build it", created),
                },
            )
            return cast(JSON, copy_json(record))

    def add_epic(self, product_id: str, **values: Any) -> JSON:
        """An epic of a workspace."""
        with self.fake._lock:
            head, n = self._head("epics", self._workspace(product_id), values)
            created = head["created_at"]
            release = self._releases_of(product_id)[0]
            initiatives = list(self._store["initiatives"].values())
            initiative = self._link(initiatives[n % len(initiatives)]) if n % 2 and initiatives else None
            record = {
                **head,
                "position": n,
                "score": 10 * n,
                "start_date": release["start_date"],
                "due_date": release["release_date"],
                "progress": 0,
                "progress_source": "progress_manual",
                "status_changed_on": release["start_date"],
                "workflow_status": dict(self._statuses[n % 4]),
                "description": self._description(f"Epic {n}", created),
                "release": self._release_link(release),
                "initiative": initiative,
                "initiative_reference_num": None if initiative is None else initiative["reference_num"],
                "features": [],
                "goals": [],
                "key_results": [],
                "assigned_to_user": self._user(n),
                "created_by_user": self._user(n + 2),
                "tags": ["roadmap"],
                "full_tags": [{"id": 70 + n, "name": "roadmap", "color": "#c7dbf0"}],
                "custom_fields": self._custom(created),
                "integration_fields": [],
                "comments_count": 0,
                "score_facts": [{"id": 5, "name": "Value", "value": n}],
                "epic_links": [],
                "attachments": [],
                "project": {"id": product_id},
                **values,
            }
            return cast(JSON, copy_json(self._put("epics", record)))

    def add_theme(self, product_id: str, name: str, created: str) -> JSON:
        theme_id = self._new_id()
        n = len(self._store["idea_themes"]) + 1
        record = {
            "id": theme_id,
            "reference_num": f"T-{n}",
            "name": name,
            "created_at": created,
            "updated_at": created,
            "product_id": product_id,
            "color": "#f6d8a8",
            "description": self._description(name, created),
            "ideas_count": n,
        }
        return self._put("idea_themes", record)

    def add_initiative(self, **values: Any) -> JSON:
        """An initiative of the first workspace."""
        with self.fake._lock:
            product = self.fake._products[0]
            head, n = self._head("initiatives", product, values)
            created = head["created_at"]
            record = {
                **head,
                "status": "active",
                "effort": n,
                "value": 2 * n,
                "presented": True,
                "color": "#e5c7f0",
                "start_date": "2023-01-01",
                "end_date": "2023-12-31",
                "position": n,
                "score": 7,
                "progress": 10,
                "progress_source": "manual",
                "workflow_status": dict(self._statuses[1]),
                "description": self._description("Grow", created),
                "assigned_to_user": self._user(n),
                "created_by_user": self._user(0),
                "comments_count": 0,
                "goals": [],
                "key_results": [],
                "features": [],
                "epic": [],
                "releases": [],
                "time_frame": {"id": 2023, "name": "2023"},
                "score_facts": [],
                "integration_fields": [],
                "custom_fields": self._custom(created),
                "project": {"id": product["id"]},
                **values,
            }
            return cast(JSON, copy_json(self._put("initiatives", record)))

    def add_goal(self, **values: Any) -> JSON:
        """A goal of the first workspace, with two key results."""
        with self.fake._lock:
            product = self.fake._products[0]
            head, n = self._head("goals", product, values)
            created, goal_id, ref = head["created_at"], head["id"], head["reference_num"]
            record = {
                **head,
                "effort": 3,
                "value": 8,
                "color": "#dce7c6",
                "position": n,
                "progress": 25,
                "progress_source": "manual",
                "description": self._description(f"Goal {n}", created),
                "success_metric": {"name": "Revenue", "description": "ARR"},
                "project": {"id": product["id"]},
                "initiatives": [],
                "key_results": [],
                "features": [],
                "releases": [],
                "comments_count": 0,
                "custom_fields": self._custom(created),
                "time_frame": {"id": 2023, "name": "2023"},
                "parent": {"id": goal_id} if n % 2 == 0 else None,
                **values,
            }
            self._put("goals", record)
            for k in range(1, 3):
                self._put(
                    "key_results",
                    {
                        "id": self._new_id(),
                        "name": f"KR {n}.{k}",
                        "reference_num": f"{ref}-KR-{k}",
                        "position": k,
                        "created_at": created,
                        "updated_at": created,
                        "url": f"{HOST}/key_results/{k}",
                        "progress": 20 * k,
                        "target_metric": 100,
                        "starting_metric": 0,
                        "current_metric": 20 * k,
                        "description": self._description(f"KR {k}", created),
                        "assigned_to_user": self._user(k),
                        "workflow_status": dict(self._statuses[k]),
                        "custom_fields": self._custom(created),
                    },
                    goal_id,
                )
            return cast(JSON, copy_json(record))

    def add_feature(self, stub: JSON | None = None, **values: Any) -> JSON:
        """A copy of a new feature's full record (see `_add_feature`)."""
        with self.fake._lock:
            return self.feature(self._add_feature(stub, **values)["id"])

    def _add_feature(self, stub: JSON | None = None, **values: Any) -> JSON:
        """A feature (from an idea's promoted-to stub, or new: now unless `created_at` is given) in a release,
        often an epic and initiative, with requirements and to-dos."""
        with self.fake._lock:
            rng = self._rng
            if stub is None:
                stub, n = self._head("features", self.fake._products[0], values)
            else:
                n = len(self._store["features"]) + 1
            created = stub["created_at"]
            updated = fmt_ts(
                max(parse_ts(created), _BASE) + timedelta(days=rng.randrange(200), milliseconds=n)
            )
            if stub.get("reference_num", "").endswith(f"-F{n}"):  # made now, not promoted from an idea
                updated = created
            product_id = stub["product_id"]
            release = self._releases_of(product_id)[n % 3]
            status = self._statuses[3] if release["released"] else self._statuses[n % 3]
            epics = [e for e in self._store["epics"].values() if e["product_id"] == product_id]
            epic = self._link(epics[n % len(epics)]) if n % 3 else None
            initiative = self._link(next(iter(self._store["initiatives"].values()))) if n % 2 else None
            goal = next(iter(self._store["goals"].values()))
            record = {
                **stub,
                "updated_at": updated,
                "position": n,
                "score": rng.randint(1, 60),
                "start_date": release["start_date"],
                "due_date": release["release_date"],
                "progress": 0,
                "progress_source": "progress_from_requirements",
                "status_changed_on": release["start_date"],
                "workflow_kind": {"id": "101", "name": "New"},
                "workflow_status": dict(status),
                "description": self._description(stub["name"], created),
                "release": self._release_link(release),
                "release_reference_num": release["reference_num"],
                "epic": epic,
                "epic_reference_num": None if epic is None else epic["reference_num"],
                "master_feature": epic,
                "initiative": initiative,
                "initiative_reference_num": None if initiative is None else initiative["reference_num"],
                "goals": [{"id": goal["id"], "name": goal["name"]}] if n % 4 == 0 else [],
                "key_results": [],
                "belongs_to_release_phase": None,
                "assigned_to_user": self._user(n) if n % 2 else None,
                "created_by_user": self._user(n + 1),
                "tags": ["customer"],
                "full_tags": [{"id": 90, "name": "customer", "color": "#f0c7c7"}],
                "custom_fields": self._custom(updated),
                "integration_fields": [],
                "comments_count": n % 3,
                "score_facts": [{"id": 5, "name": "Value", "value": n}],
                "feature_links": [],
                "attachments": [],
                "project": {"id": product_id},
                **values,
            }
            if n % 5 == 0:
                phase = next(
                    p for p in self._store["release_phases"].values() if p["release_id"] == int(release["id"])
                )
                record["belongs_to_release_phase"] = dict(phase)
            self._put("features", record)
            for k in range(1, 1 + n % 3):
                self.add_requirement(record["id"], created=updated, k=k)
            if n % 2:
                self.add_task(record, created=updated)
            return record

    def add_requirement(self, feature_id: str, *, created: str | None = None, k: int = 1) -> JSON:
        """A requirement of a feature (created now unless `created` is given); its feature is left alone."""
        with self.fake._lock:
            feature = self._store["features"][feature_id]
            when = created or fmt_ts(self.fake._now())
            req_id = self._new_id()
            ref = f"{feature['reference_num']}-{k}"
            record = {
                "id": req_id,
                "name": f"Requirement {ref}",
                "reference_num": ref,
                "position": k,
                "created_at": when,
                "updated_at": when,
                "release_id": int(feature["release"]["id"]),
                "url": f"{HOST}/requirements/{ref}",
                "resource": f"{HOST}/api/v1/requirements/{ref}",
                "workflow_status": dict(self._statuses[k % 4]),
                "description": self._description(ref, when),
                "feature": self._link(feature),
                "assigned_to_user": self._user(k),
                "created_by_user": self._user(k + 1),
                "tags": [],
                "full_tags": [],
                "custom_fields": [],
                "integration_fields": [],
                "attachments": [],
                "comments_count": 0,
            }
            return cast(JSON, copy_json(self._put("requirements", record, feature_id)))

    def add_task(self, feature: JSON | None = None, *, created: str | None = None) -> JSON:
        """A to-do, on a feature (its `taskable`) or on no record."""
        with self.fake._lock:
            when = created or fmt_ts(self.fake._now())
            task_id = self._new_id()
            n = len(self._store["tasks"]) + 1
            taskable = (
                None
                if feature is None
                else {
                    "type": "Feature",
                    "id": feature["id"],
                    "reference_num": feature["reference_num"],
                    "name": feature["name"],
                    "url": feature["url"],
                    "resource": feature["resource"],
                }
            )
            record = {
                "id": task_id,
                "name": f"To-do {n}",
                "body": "<p>Check with the customer</p>",
                "due_date": "2023-09-30",
                "status": ("pending", "completed")[n % 2],
                "position": n,
                "created_at": when,
                "updated_at": when,
                "product_id": "" if feature is None else feature["product_id"],
                "assigned_to_users": [{"id": self._new_id(), "status": "pending", "user": self._user(n)}],
                "created_by_user": self._user(n + 1),
                "attachments": [],
                "url": f"{HOST}/tasks/{task_id}",
                "resource": f"{HOST}/api/v1/tasks/{task_id}",
                "comments_count": 0,
                "taskable": taskable,
            }
            return cast(JSON, copy_json(self._put("tasks", record)))

    def _releases_of(self, product_id: str) -> list[JSON]:
        return [r for r in self._store["releases"].values() if r["product_id"] == product_id]

    @staticmethod
    def _release_link(release: JSON) -> JSON:
        keys = (
            "id",
            "reference_num",
            "name",
            "start_date",
            "release_date",
            "parking_lot",
            "created_at",
            "product_id",
            "url",
            "resource",
        )
        return {k: release[k] for k in keys}

    # ------------------------------------------------------------------ data API

    def records(self, kind: str) -> list[JSON]:
        """Copies of the records of a kind, as their detail GET (or full list item) shows them."""
        with self.fake._lock:
            return [self._full(kind, r) for r in self._store[kind].values()]

    def feature(self, feature_id: str) -> JSON:
        """A copy of one feature's full record."""
        with self.fake._lock:
            return self._full("features", self._store["features"][feature_id])

    def parent_of(self, record_id: str) -> str:
        """The goal of a key result, the feature of a requirement, the workspace of a release."""
        return self._parent[record_id]

    def update(self, kind: str, record_id: str, **changes: Any) -> JSON:
        """Change a record now (updated_at bumped); returns its full copy."""
        with self.fake._lock:
            record = self._store[kind][record_id]
            record.update(changes)
            record["updated_at"] = fmt_ts(self.fake._now())
            return self._full(kind, record)

    def delete(self, kind: str, record_id: str) -> None:
        """Delete a record now, audited as a destroy; a feature's requirements go with it (audited too)."""
        with self.fake._lock:
            self._store[kind].pop(record_id)
            self.fake.record_audit("destroy", AUDIT_TYPES[kind], record_id)
            if kind == "features":
                for req_id in self._kids.get(record_id, []):
                    if self._store["requirements"].pop(req_id, None) is not None:
                        self.fake.record_audit("destroy", AUDIT_TYPES["requirements"], req_id)

    def _full(self, kind: str, record: JSON) -> JSON:
        out = cast(JSON, copy_json(record))
        if kind == "features" and self.features_nest_requirements:
            out["requirements"] = [self._copy_req(r) for r in self._children("requirements", record["id"])]
        elif kind == "features":
            out.pop("requirements", None)
        if kind == "goals":
            krs = self._children("key_results", record["id"])
            out["key_results"] = [
                cast(JSON, copy_json(kr))
                if self.goals_nest_full_key_results
                else {
                    k: kr[k]
                    for k in (
                        "id",
                        "name",
                        "reference_num",
                        "url",
                        "position",
                        "created_at",
                        "updated_at",
                        "progress",
                        "target_metric",
                        "starting_metric",
                        "current_metric",
                    )
                }
                for kr in krs
            ]
        return out

    @staticmethod
    def _copy_req(requirement: JSON) -> JSON:
        return cast(JSON, copy_json(requirement))

    def _children(self, kind: str, parent_id: str) -> list[JSON]:
        records = self._store[kind]
        return [records[i] for i in self._kids.get(parent_id, []) if i in records]

    # ------------------------------------------------------------------ routes

    def listing(self, kind: str, query: dict[str, str], parent: str | None = None) -> Response:
        """A listing of a kind (a workspace's releases, a goal's key results, a feature's requirements)."""
        status = self.refused.get(kind) or (self.refused_parents.get(parent) if parent else None)
        if status:
            return refused(status)
        with self.fake._lock:
            since = None if kind in self.ignores_updated_since else time_filter(query, "updated_since")
            records = [
                r for r in self._store[kind].values() if parent is None or self._parent[r["id"]] == parent
            ]
            if since is not None:
                inclusive = self.fake.updated_since_inclusive
                records = [r for r in records if after(micros(parse_ts(r["updated_at"])), since, inclusive)]
            records.sort(key=lambda r: (r["created_at"], r["id"]))
            fields = fields_of(query)
            items = []
            for record in records:
                full = self._full(kind, record)
                stub_keys = STUB_KEYS.get(kind)
                if stub_keys is None:
                    items.append(full)
                    continue
                stub = {k: full[k] for k in stub_keys if k in full}
                items.append(
                    select_fields(full, fields, stub) if fields and self.lists_honour_fields else stub
                )
            return page_of(ROOTS[kind], items, query)

    def detail(self, kind: str, query: dict[str, str], record_id: str) -> Response:
        """One record of a kind that has a detail GET (``DETAIL_ROOTS``)."""
        status = self.refused.get(kind)
        if status:
            return refused(status)
        with self.fake._lock:
            record = self._store[kind].get(record_id)
            if record is None:
                return not_found()
            return json_response({DETAIL_ROOTS[kind]: self._full(kind, record)})
