"""The fake Aha!'s deletes and restores, and the audit log they write (``GET /audits``).

Deleting an idea moves it and its children to the recycle bin (they 404 from then on) and audits the destroys;
restoring it is an update. Deleting a vote or comment leaves its idea's ``updated_at`` alone. ``GET /audits``
lists the last 12 months, filtered by ``created_since``/``created_before``, ``audit_action``,
``auditable_type`` (a path or a class name) and ``after_id``; the switches on ``Audits`` cover what the real
service leaves unverified: refusal, child destroys, order and the type spelling of answers.
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from tests.fake_account import Account
from tests.fake_formats import HOST, JSON, copy_json, dumps, fmt_ts, micros, parse_ts
from tests.fake_paging import BadRequest, Response, envelope, paging, refused, time_filter

# Audited types as Aha! answers them (paths) and as its query examples spell them (class names).
AUDIT_CLASSES = {
    "ideas/idea": "Ideas::Idea",
    "ideas/idea_endorsement": "Ideas::IdeaEndorsement",
    "ideas/idea_comment": "Ideas::IdeaComment",
    "comment": "Comment",
    "feature": "Feature",
    "epic": "Epic",
    "release": "Release",
    "release_phase": "ReleasePhase",
    "initiative": "Initiative",
    "strategic_imperative": "StrategicImperative",
    "key_result": "KeyResult",
    "requirement": "Requirement",
    "task": "Task",
    "user": "User",
    "ideas/idea_theme": "Ideas::IdeaTheme",
    "page": "Page",
}
_AUDIT_PATHS = {name: path for path, name in AUDIT_CLASSES.items()}


class Audits(Account):
    """Deletes, restores and the audit log of the account, and the route that serves the log."""

    audits_refused: int | None = None  # 403 or 404: GET /audits is refused with that status
    audit_child_destroys = True  # whether deleting an idea also audits its children's destroys
    audit_order = "id"  # "id" (ascending) or "newest" (newest first: after_id walks fall short)
    audit_type_spelling = "path"  # "path" (ideas/idea) or "class" (Ideas::Idea) in answers

    def record_audit(
        self, action: str, auditable_type: str, auditable_id: str, *, idea_id: str | None = None
    ) -> JSON:
        """Write an audit now, as Aha! does for every change (``auditable_type`` as a path, e.g. ``comment``);
        ``idea_id`` makes the idea its associated record. Returns a copy."""
        with self._lock:
            self._audit_seq += self._rng.randint(1, 99)
            now = self._now()
            audit: JSON = {
                "id": str(self._audit_seq),
                "audit_action": action,
                "created_at": fmt_ts(now),
                "interesting": action == "destroy",
                "user": dict(self._users[0]),
                "contributors": [],
                "auditable_type": auditable_type,
                "auditable_id": int(auditable_id),  # a number, as in Aha!'s documented example
                "associated_type": None if idea_id is None else "ideas/idea",
                "associated_id": None if idea_id is None else int(idea_id),
                "description": f"{auditable_type} {auditable_id} {action}ed",
                "auditable_url": f"{HOST}/{auditable_type}s/{auditable_id}",
                "changes": [{"field_name": "Id", "value": str(auditable_id)}],
            }
            self._audits.append(audit)
            return cast(JSON, copy_json(audit))

    def delete_idea(self, idea_id: str) -> None:
        """Remove an idea and its children to the recycle bin; they 404 from now on. Audited as destroys
        (the children too while ``audit_child_destroys``)."""
        with self._lock:
            iid = self._must(idea_id)
            self._recycle_bin[iid] = (
                self._ideas[iid],
                self._votes[iid],
                self._comments[iid],
                self._portal[iid],
                self._cc_portal[iid],
            )
            self.record_audit("destroy", "ideas/idea", iid)
            if self.audit_child_destroys:
                for kind, records in (
                    ("ideas/idea_endorsement", self._votes[iid]),
                    ("comment", self._comments[iid]),
                    ("ideas/idea_comment", self._portal[iid]),
                ):
                    for record in records:
                        self.record_audit("destroy", kind, record["id"], idea_id=iid)
            self._unregister(iid)

    def _delete_child(self, store: dict[str, list[JSON]], kind: str, record_id: str) -> JSON:
        """Remove one vote or comment (its idea's updated_at is left alone) and audit the destroy."""
        with self._lock:
            for iid, records in store.items():
                for record in records:
                    if record["id"] == record_id:
                        records.remove(record)
                        self._recount(iid)
                        self._compact_json.pop(iid, None)
                        self.record_audit("destroy", kind, record_id, idea_id=iid)
                        return cast(JSON, copy_json(record))
        raise KeyError(f"no {kind} {record_id!r}")

    def delete_vote(self, vote_id: str) -> JSON:
        """Delete a vote (proxy or not); returns it."""
        return self._delete_child(self._votes, "ideas/idea_endorsement", vote_id)

    def delete_comment(self, comment_id: str) -> JSON:
        """Delete an internal comment; returns it."""
        return self._delete_child(self._comments, "comment", comment_id)

    def delete_portal_comment(self, comment_id: str) -> JSON:
        """Delete a portal comment; returns it."""
        return self._delete_child(self._portal, "ideas/idea_comment", comment_id)

    def restore_idea(self, idea_id: str) -> JSON:
        """Bring a deleted idea and its children back from the recycle bin: an update (updated_at bumped,
        audited as an update). Returns a copy of the idea."""
        with self._lock:
            idea, votes, comments, portal, cc_portal = self._recycle_bin.pop(idea_id)
            iid = self._register(idea, comments_count_includes_portal=cc_portal)
            self._votes[iid], self._comments[iid], self._portal[iid] = votes, comments, portal
            self._bump(iid, self._now())
            self.record_audit("update", "ideas/idea", iid)
            return cast(JSON, copy_json(idea))

    def audits(self) -> list[JSON]:
        """Copies of every audit written, oldest first."""
        with self._lock:
            return cast(list[JSON], copy_json(self._audits))

    # ------------------------------------------------------------------ routes

    def _list_audits(self, query: dict[str, str]) -> Response:
        """``GET /audits``: filters, ``after_id``, pages, the 12-month window, both type spellings."""
        if self.audits_refused is not None:
            return refused(self.audits_refused)
        page, per_page = paging(query)
        since, before = time_filter(query, "created_since"), time_filter(query, "created_before")
        oldest = micros(self._now() - timedelta(days=365))
        action = query.get("audit_action") or None
        kind = _AUDIT_PATHS.get(query.get("auditable_type") or "", query.get("auditable_type") or None)
        after = query.get("after_id") or None
        if after is not None and not after.isdigit():
            raise BadRequest(f"Invalid after_id: {after!r}")
        with self._lock:
            found = []
            for audit in self._audits:
                created = micros(parse_ts(audit["created_at"]))
                if (
                    created < oldest
                    or (since is not None and created < since)
                    or (before is not None and created >= before)
                    or (action is not None and audit["audit_action"] != action)
                    or (kind is not None and audit["auditable_type"] != kind)
                    or (after is not None and int(audit["id"]) <= int(after))
                ):
                    continue
                found.append(audit)
            found.sort(key=lambda a: int(a["id"]), reverse=self.audit_order == "newest")
            if self.audit_type_spelling == "class":
                found = [
                    {
                        **a,
                        "auditable_type": AUDIT_CLASSES[a["auditable_type"]],
                        "associated_type": "Ideas::Idea",
                    }
                    for a in found
                ]
            chunk = found[(page - 1) * per_page : page * per_page]
            return envelope("audits", [dumps(a) for a in chunk], len(found), page, per_page)
