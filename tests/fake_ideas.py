"""The fake Aha!'s ideas: the records, their changes, and ``GET /ideas``, ``GET /products/{id}/ideas`` and
``GET /ideas/{id}``.

What the real service does and a tap must cope with:

* list items are compact (``COMPACT_KEYS``) versus the full detail record, unless ``fields=`` names more
  (``list_honours_fields``); ``order`` is the listing order (``ORDERS``);
  ``ideas_honour_updated_since = False`` makes the list ignore ``updated_since``;
* nested id types (``categories[].parent_id/project_id``, ``custom_fields[].id``) are mixed int/str across
  ideas in the stored data. With ``nested_id_drift`` detail responses also flip them on every second request
  of the same idea (off by default so a tap's output can be compared exactly with ``ideas()`` even when an
  idea is fetched twice);
* ``add_idea``/``update_idea`` accept ``created_at``/``updated_at`` as strings or datetimes;
* how the list applies ``created_since`` / ``created_before`` is undocumented: ``created_filters`` is
  ``"since_inclusive"`` (``created_since`` <= created_at < ``created_before``, the default),
  ``"before_inclusive"`` (the other way round), ``"whole_seconds"`` (both values truncated to the second
  first), ``"ignored"`` (the unfiltered listing for any window) or ``"refused"`` (HTTP 400 for either);
* ``listed_created_at`` maps an idea id to what its list items show as ``created_at`` (a string in another
  form, None, or ``MISSING`` to leave the key out), while the filters still use the stored value.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, cast

from tests.fake_account import COLORS, COMMENT_BODIES, TAGS, Account
from tests.fake_formats import HOST, JSON, PORTAL_HOST, copy_json, dumps, flip, fmt_ts, select_fields
from tests.fake_paging import (
    BadRequest,
    Response,
    envelope,
    fields_of,
    json_response,
    not_found,
    paging,
    time_filter,
)

ORDERS = ("created_desc", "updated_desc", "updated_asc", "id")
CREATED_FILTERS = ("since_inclusive", "before_inclusive", "whole_seconds", "ignored", "refused")
MISSING = object()  # a `listed_created_at` value: the list item has no `created_at` key
COMPACT_KEYS = (
    "id",
    "reference_num",
    "name",
    "created_at",
    "updated_at",
    "workflow_status",
    "description",
    "url",
    "resource",
)
_STATUS_KEYS = ("id", "name", "position", "complete", "color")
_DESCRIPTION_KEYS = ("id", "body", "created_at", "updated_at", "attachments")
_DESC_FRAGMENTS = (
    "<p>As a product manager I want to export the roadmap so I can share it with executives.</p>",
    "<p>Customers keep asking for this &mdash; see the thread from ACME Corp.</p>",
    "<p>Ünïcödé check: naïve café, Zürich, São Paulo, 東京, Ελληνικά — emoji 🚀🔥👍.</p>",
    "<p>They said: \"we can't live without it\" and 'it should be the default'.</p>",
    "\n<ul>\n<li>Step one: open the report</li>\n<li>Step two: click export</li>\n</ul>\n",
    "<p>Line one<br>\nLine two\nLine three with a tab\tand a backslash \\ in it.</p>",
    "<blockquote>Original request: &lt;script&gt; tags must be escaped &amp; shown.</blockquote>",
    "<p><strong>Impact:</strong> 12 enterprise accounts, ~$1.2M ARR at stake.</p>",
    '<p><a href="https://example.com/spec?id=1&amp;v=2">Spec link</a> for details.</p>',
    "<p>日本語のテキストと中文文本, 以及 한국어 텍스트.</p>",
)
_VERBS = ("Allow", "Support", "Add", "Improve", "Enable", "Let users use", "Provide", "Show")
_OBJECTS = (
    "export of roadmaps",
    "bulk editing of ideas",
    "SSO login",
    "dark mode",
    "CSV import",
    "custom dashboards",
    "Slack notifications",
    "the Jira sync",
    "offline mode",
    "multi-currency invoices",
    "audit logs",
    "saved filters",
)
_SUFFIXES = (
    "",
    "",
    "",
    " for admins",
    " in the portal",
    " — urgent",
    " (Café team)",
    " für Teams",
    " 🚀",
    ' with "quotes"',
    " on iOS/Android",
    " 日本語",
)


class Ideas(Account):
    """The ideas of the account, and the routes that serve them."""

    order = "created_desc"  # one of ORDERS
    list_honours_fields = True  # whether GET /ideas applies `fields=` (else compact items whatever it says)
    ideas_honour_updated_since = True  # False: GET /ideas ignores `updated_since` (lists every idea)
    nested_id_drift = False
    created_filters = "since_inclusive"  # one of CREATED_FILTERS
    listed_created_at: dict[str, object]  # id -> the list item's created_at (MISSING: no key)

    # ------------------------------------------------------------------ builders

    def _body(self, chars: int) -> str:
        rng = self._rng
        parts: list[str] = []
        size = 0
        while size < chars:
            part = rng.choice(_DESC_FRAGMENTS)
            parts.append(part)
            size += len(part)
        return "".join(parts)

    def _custom_fields(self, created: datetime, updated: datetime) -> list[JSON]:
        rng = self._rng
        out: list[JSON] = []
        specs: tuple[tuple[int, str, str, str], ...] = (
            (801, "customer_tier", "Customer tier", "string"),
            (802, "arr_impact", "ARR impact", "number"),
            (803, "platforms", "Platforms", "array"),
            (804, "requested_by", "Requested by", "record"),
            (805, "mockups", "Mockups", "attachment"),
            (806, "notes", "Internal notes", "note"),
            (807, "target_date", "Target date", "date"),
        )
        for fid, key, name, ftype in rng.sample(specs, rng.randint(0, 5)):
            cf: JSON = {"id": fid if rng.random() < 0.5 else str(fid), "key": key, "name": name}
            if ftype == "string":
                cf["value"] = rng.choice(("Enterprise", "SMB", "Mid-market", ""))
            elif ftype == "number":
                cf["value"] = rng.choice((rng.randint(0, 500_000), round(rng.uniform(0, 1e5), 2)))
            elif ftype == "array":
                cf["value"] = rng.sample(["Web", "iOS", "Android", "Desktop"], rng.randint(0, 3))
            elif ftype == "record":
                org = rng.choice(self._orgs)
                cf["value"] = {"id": org["id"], "name": org["name"], "type": "IdeaOrganization"}
            elif ftype == "note":
                cf["value"] = rng.choice(COMMENT_BODIES)
            elif ftype == "date":
                cf["value"] = self._between(created, updated).date().isoformat()
            # attachment fields carry no "value" key at all
            cf["type"] = ftype
            cf["updatedAt"] = fmt_ts(self._between(created, updated))
            out.append(cf)
        return out

    def _build_idea(self, created: datetime, updated: datetime, description_chars: int) -> JSON:
        """A full idea record shaped like ``GET /ideas/{id}`` on the real service."""
        rng = self._rng
        product = rng.choice(self._products)
        prefix = product["reference_prefix"]
        self._ref_counters[prefix] = self._ref_counters.get(prefix, 0) + 1
        ref = f"{prefix}-I-{self._ref_counters[prefix]}"
        idea_id = self._new_id()
        status = rng.choices(self._statuses, self._status_weights)[0]
        status_changed = self._between(created, updated)
        desc_updated = self._between(created, updated)
        url = f"{HOST}/ideas/ideas/{ref}"
        idea: JSON = {
            "id": idea_id,
            "reference_num": ref,
            "name": f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_SUFFIXES)}",
            "created_at": fmt_ts(created),
            "updated_at": fmt_ts(updated),
            "workflow_status": dict(status),
            "description": {
                "id": self._new_id(),
                "body": self._body(description_chars),
                "created_at": fmt_ts(created),
                "updated_at": fmt_ts(desc_updated),
                "attachments": [self._attachment(created)] if rng.random() < 0.1 else [],
            },
            "url": url,
            "resource": f"{HOST}/api/v1/ideas/{ref}",
            "product_id": product["id"],
            "score": rng.randint(0, 100),
            "votes": 0,
            "initial_votes": rng.choice((0, 0, 0, 1, 2, 5)),
            "endorsements_count": 0,
            "comments_count": 0,
            "status_changed_at": fmt_ts(status_changed),
            "visibility": rng.choice(
                ("Visible to all portal users", "Not visible to portal users", "Visible to creator")
            ),
            "admin_response": None,
            "product": dict(product),
        }
        if rng.random() < 0.2:
            idea["admin_response"] = {
                "id": self._new_id(),
                "body": "<p>Thanks! We are looking into it.</p>",
                "created_at": fmt_ts(status_changed),
                "updated_at": fmt_ts(status_changed),
            }
        from_portal = rng.random() < 0.6
        if from_portal:
            portal_user, idea_user = rng.choice(self._portal_users)
            idea["created_by_portal_user"] = dict(portal_user)
            idea["created_by_idea_user"] = dict(idea_user)
        else:
            idea["created_by_user"] = dict(rng.choice(self._users))
        idea["assigned_to_user"] = dict(rng.choice(self._users)) if rng.random() < 0.5 else None
        feature = None
        if rng.random() < 0.25:
            self._feature_counter += 1
            fref = f"{prefix}-{self._feature_counter}"
            feature = {
                "id": self._new_id(),
                "reference_num": fref,
                "name": f"Feature for {ref}",
                "created_at": fmt_ts(status_changed),
                "url": f"{HOST}/features/{fref}",
                "resource": f"{HOST}/api/v1/features/{fref}",
                "product_id": product["id"],
            }
        idea["feature"] = feature
        idea["score_facts"] = (
            [
                {"name": "Value", "value": rng.randint(1, 10)},
                {"name": "Effort", "value": rng.randint(1, 10)},
            ]
            if rng.random() < 0.4
            else []
        )
        tags = sorted(rng.sample(TAGS, rng.choice((0, 0, 1, 2, 3))))
        idea["tags"] = tags
        idea["full_tags"] = [
            {"id": self._tag_ids[t], "name": t, "color": COLORS[self._tag_ids[t] % 6]} for t in tags
        ]
        cats: list[JSON] = []
        for cat_id, name, parent, project in rng.sample(self._categories, rng.choice((0, 1, 1, 2))):
            cats.append(
                {
                    "id": cat_id,
                    "name": name,
                    "parent_id": parent if parent is None or rng.random() < 0.5 else str(parent),
                    "project_id": project if rng.random() < 0.5 else str(project),
                    "created_at": fmt_ts(created - timedelta(days=30)),
                }
            )
        idea["categories"] = cats
        idea["custom_fields"] = self._custom_fields(created, updated)
        idea["custom_object_links"] = (
            [
                {
                    "key": "customers",
                    "name": "Customers",
                    "record_type": "CustomObjectRecord",
                    "record_ids": [self._new_id()],
                }
            ]
            if rng.random() < 0.15
            else []
        )
        path = [s for s in self._statuses if s["position"] <= status["position"]][-3:]
        times: list[JSON] = []
        start = created
        for i, st in enumerate(path):
            last = i == len(path) - 1
            end = status_changed if i == len(path) - 2 else self._between(start, status_changed)
            times.append(
                {
                    "status_id": st["id"],
                    "status_name": st["name"],
                    "started_at": fmt_ts(start),
                    "ended_at": None if last else fmt_ts(end),
                }
            )
            start = end
        idea["workflow_status_times"] = times
        idea["submitted_idea_portal_record_url"] = f"{PORTAL_HOST}/ideas/{ref}" if from_portal else None
        idea["integration_fields"] = (
            [
                {
                    "id": self._new_id(),
                    "name": "key",
                    "value": f"JIRA-{rng.randint(1, 9999)}",
                    "integration_id": rng.randint(10**6, 10**7),
                    "service_name": "jira",
                    "created_at": fmt_ts(status_changed),
                }
            ]
            if rng.random() < 0.2
            else []
        )
        if rng.random() < 0.05 and self._ideas:
            other = self._ideas[next(reversed(self._ideas))]
            idea["duplicate_of"] = {
                "id": other["id"],
                "reference_num": other["reference_num"],
                "name": other["name"],
                "created_at": other["created_at"],
                "url": other["url"],
                "resource": other["resource"],
            }
        if rng.random() < 0.3:
            idea["watchers"] = [dict(u) for u in rng.sample(self._users, rng.randint(1, 3))]
        return idea

    def _tie_groups(self, seeded: list[tuple[str, datetime]]) -> None:
        """Give runs of 2-4 consecutive ideas one shared updated_at millisecond (the first run always)."""
        rng = self._rng
        i = 0
        while i < len(seeded):
            size = rng.randint(2, 4) if i == 0 or rng.random() < 0.12 else 1
            group = seeded[i : i + size]
            top = max(latest for _, latest in group)
            for iid, _ in group:
                self._ideas[iid]["updated_at"] = fmt_ts(top)
                self._index(iid)
            i += size

    # ------------------------------------------------------------------ data API

    def add_idea(self, **overrides: Any) -> JSON:
        """Create an idea now (server clock); ``overrides`` replace top-level keys; returns a copy."""
        with self._lock:
            now = self._now()
            idea = self._build_idea(now, now, 600)
            cc_portal = self._rng.random() < 0.5
            idea.update(self._normalise(overrides))
            iid = self._register(idea, comments_count_includes_portal=cc_portal)
            self._recount(iid)
            for key in ("votes", "endorsements_count", "comments_count"):
                if key in overrides:
                    idea[key] = overrides[key]
            return cast(JSON, copy_json(idea))

    def _normalise(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Let tests pass datetimes for timestamps and a status name or id for workflow_status."""
        out = dict(changes)
        for key in ("created_at", "updated_at", "status_changed_at"):
            if isinstance(out.get(key), datetime):
                out[key] = fmt_ts(out[key])
        if isinstance(out.get("workflow_status"), str):
            out["workflow_status"] = self._status(out["workflow_status"])
        return out

    def _status(self, name_or_id: str) -> JSON:
        for st in self._statuses:
            if name_or_id in (st["id"], st["name"]):
                return dict(st)
        raise KeyError(f"no workflow status {name_or_id!r}")

    def update_idea(self, idea_id: str, **changes: Any) -> JSON:
        """Apply top-level ``changes`` and bump updated_at to now (unless given). Returns a copy.

        ``workflow_status`` may be given as a status name or id.
        """
        with self._lock:
            iid = self._must(idea_id)
            idea = self._ideas[iid]
            old_ref = idea.get("reference_num")
            idea.update(self._normalise(changes))
            if "updated_at" not in changes:
                idea["updated_at"] = fmt_ts(self._now())
            if idea.get("reference_num") != old_ref:
                self._refs.pop(str(old_ref), None)
                self._refs[str(idea["reference_num"])] = iid
            self._index(iid)
            return cast(JSON, copy_json(idea))

    def idea_ids(self) -> list[str]:
        """Ids of live ideas in creation order."""
        with self._lock:
            return list(self._ideas)

    def ideas(self) -> list[JSON]:
        """Copies of the full live ideas in creation order (stored nested id types, no drift)."""
        with self._lock:
            return cast(list[JSON], copy_json(list(self._ideas.values())))

    def idea(self, idea_id: str) -> JSON:
        """Copy of one full idea (by id or reference_num)."""
        with self._lock:
            return cast(JSON, copy_json(self._ideas[self._must(idea_id)]))

    def comments_count_includes_portal(self, idea_id: str) -> bool:
        """Whether this idea's comments_count also counts non-spam portal comments."""
        with self._lock:
            return self._cc_portal[self._must(idea_id)]

    # ------------------------------------------------------------------ routes

    def _sorted_ids(self) -> list[str]:
        cached = self._order_cache.get(self.order)
        if cached is not None:
            return cached
        ts = self._ts
        if self.order == "created_desc":
            ids = sorted(self._ideas, key=lambda i: (ts[i][0], len(i), i), reverse=True)
        elif self.order == "updated_desc":
            ids = sorted(self._ideas, key=lambda i: (ts[i][1], len(i), i), reverse=True)
        elif self.order == "updated_asc":
            ids = sorted(self._ideas, key=lambda i: (ts[i][1], len(i), i))
        else:
            ids = sorted(self._ideas, key=lambda i: (len(i), i))
        self._order_cache[self.order] = ids
        return ids

    def _compact(self, idea: JSON) -> JSON:
        out: JSON = {k: idea[k] for k in COMPACT_KEYS if k in idea}
        status = out.get("workflow_status")
        if isinstance(status, dict):
            out["workflow_status"] = {k: status.get(k) for k in _STATUS_KEYS}
        desc = out.get("description")
        if isinstance(desc, dict):
            out["description"] = {k: desc.get(k) for k in _DESCRIPTION_KEYS}
        return out

    def _list_ideas(self, query: dict[str, str]) -> Response:
        """``GET /ideas``: the account's ideas."""
        return self._idea_page(query, None)

    def _list_product_ideas(self, query: dict[str, str], key: str) -> Response:
        """``GET /products/{id or reference prefix}/ideas``: one workspace's ideas."""
        product = next((p for p in self._products if key in (p["id"], p["reference_prefix"])), None)
        return not_found() if product is None else self._idea_page(query, product["id"])

    def _idea_page(self, query: dict[str, str], product_id: str | None) -> Response:
        page, per_page = paging(query)
        updated_since = time_filter(query, "updated_since") if self.ideas_honour_updated_since else None
        created_since, created_before = self._created_bounds(query)
        status = query.get("workflow_status") or None
        q = (query.get("q") or "").lower() or None
        fields = fields_of(query) if self.list_honours_fields else None
        inclusive = self.updated_since_inclusive
        with self._lock:
            ids = self._sorted_ids()
            ideas, ts = self._ideas, self._ts
            if updated_since is not None or created_since is not None or created_before is not None:
                selected = []
                for i in ids:
                    created, updated = ts[i]
                    if updated_since is not None and (
                        updated < updated_since or (not inclusive and updated == updated_since)
                    ):
                        continue
                    if not self._created_within(created, created_since, created_before):
                        continue
                    selected.append(i)
                ids = selected
            if product_id is not None:
                ids = [i for i in ids if ideas[i].get("product_id") == product_id]
            if status is not None:
                low = status.lower()
                ids = [
                    i
                    for i in ids
                    if status == str((ideas[i].get("workflow_status") or {}).get("id"))
                    or low == str((ideas[i].get("workflow_status") or {}).get("name", "")).lower()
                ]
            if q is not None:
                ids = [i for i in ids if q in str(ideas[i].get("name", "")).lower()]
            chunk = ids[(page - 1) * per_page : page * per_page]
            items: list[str] = []
            for i in chunk:
                if fields is None:
                    text = self._compact_json.get(i)
                    if text is None:
                        text = self._compact_json[i] = dumps(self._compact(ideas[i]))
                    items.append(text)
                else:
                    idea = ideas[i]
                    items.append(dumps(select_fields(idea, fields, self._compact(idea))))
            items = [self._listed_created(text, i) for text, i in zip(items, chunk, strict=True)]
            return envelope("ideas", items, len(ids), page, per_page)

    def _created_bounds(self, query: dict[str, str]) -> tuple[int | None, int | None]:
        """`created_since` and `created_before` (µs) as this fake's `created_filters` reads them."""
        bounds = time_filter(query, "created_since"), time_filter(query, "created_before")
        if self.created_filters == "refused" and bounds != (None, None):
            raise BadRequest("Unknown parameter: created_since / created_before")
        if self.created_filters == "ignored":
            return None, None
        if self.created_filters == "whole_seconds":
            since, before = (None if value is None else value - value % 1_000_000 for value in bounds)
            return since, before
        return bounds

    def _created_within(self, created: int, since: int | None, before: int | None) -> bool:
        """Whether `created_since` / `created_before` keep an idea created then (`created_filters`)."""
        flipped = self.created_filters == "before_inclusive"
        if since is not None and (created < since or (flipped and created == since)):
            return False
        return before is None or created < before or (flipped and created == before)

    def _listed_created(self, text: str, iid: str) -> str:
        """A list item as served, its created_at as `listed_created_at` shows it."""
        if iid not in self.listed_created_at:
            return text
        item = json.loads(text)
        item.pop("created_at", None)
        if self.listed_created_at[iid] is not MISSING:
            item["created_at"] = self.listed_created_at[iid]
        return dumps(item)

    def _drifted(self, iid: str, idea: JSON) -> JSON:
        """With nested_id_drift, every second detail response of an idea flips nested id types."""
        if not self.nested_id_drift:
            return idea
        n = self._detail_serves.get(iid, 0)
        self._detail_serves[iid] = n + 1
        if n % 2 == 0:
            return idea
        out = dict(idea)
        out["categories"] = [
            {**c, "parent_id": flip(c.get("parent_id")), "project_id": flip(c.get("project_id"))}
            for c in idea.get("categories") or []
        ]
        out["custom_fields"] = [{**cf, "id": flip(cf.get("id"))} for cf in idea.get("custom_fields") or []]
        return out

    def _get_idea(self, query: dict[str, str], key: str) -> Response:
        """``GET /ideas/{id or reference}``: the full record."""
        fields = fields_of(query)
        with self._lock:
            iid = self._resolve(key)
            if iid is None:
                return not_found()
            idea = self._drifted(iid, self._ideas[iid])
            if fields is not None:
                idea = select_fields(idea, fields, idea)
            return json_response({"idea": idea})
