"""The fake Aha!'s comments on ideas: internal comments (``GET /ideas/{id}/comments``) and portal comments
(``GET /ideas/{id}/idea_comments``), the records and their changes.

An internal comment has no ``idea_id`` (the idea is only in ``commentable``); a portal comment has
``idea_id`` but no ``updated_at``, and ``spam`` only sometimes; spam is listed only with ``spam=true``. What
an idea's ``comments_count`` counts is ``comments_count_mode`` (``tests/fake_account.py``). Deleting a
comment is in ``tests/fake_audits.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from tests.fake_account import COMMENT_BODIES, Account
from tests.fake_formats import HOST, JSON, TRUE_VALUES, copy_json, fmt_ts
from tests.fake_paging import Response, fields_of, not_found, page_of


class Comments(Account):
    """The internal and portal comments of the account's ideas, and the routes that serve them."""

    def _build_comment(self, idea: JSON, created: datetime, edited_by: datetime | None = None) -> JSON:
        """An internal comment: no ``idea_id``, the idea is only in ``commentable``.

        Some comments were edited after creation (no later than ``edited_by``).
        """
        rng = self._rng
        cid = self._new_id()
        updated = created
        if edited_by is not None and rng.random() < 0.2:
            updated = self._between(created, edited_by)
        return {
            "id": cid,
            "body": rng.choice(COMMENT_BODIES),
            "created_at": fmt_ts(created),
            "updated_at": fmt_ts(updated),
            "user": dict(rng.choice(self._users)),
            "attachments": [self._attachment(created)] if rng.random() < 0.1 else [],
            "url": f"{HOST}/comments/{cid}",
            "resource": f"{HOST}/api/v1/comments/{cid}",
            "commentable": {
                "type": "Ideas::Idea",
                "id": idea["id"],
                "product_id": idea.get("product_id"),
                "url": idea.get("url"),
                "resource": idea.get("resource"),
            },
        }

    def _build_portal_comment(
        self, idea: JSON, created: datetime, *, spam: bool, parent_id: int | None
    ) -> JSON:
        """A portal comment: has ``idea_id`` but no ``updated_at``; ``spam`` only sometimes."""
        rng = self._rng
        pc: JSON = {
            "id": self._new_id(),
            "idea_id": idea["id"],
            "body": rng.choice(COMMENT_BODIES),
            "created_at": fmt_ts(created),
            "visibility": rng.choice(("public", "public", "private")),
            "parent_idea_comment_id": parent_id,
        }
        if rng.random() < 0.3:
            pc["idea_commenter_user"] = dict(rng.choice(self._users))
        else:
            portal_user, idea_user = rng.choice(self._portal_users)
            pc["idea_commenter_portal_user"] = dict(portal_user)
            pc["idea_commenter_idea_user"] = dict(idea_user)
        pc["idea"] = {
            "id": idea["id"],
            "reference_num": idea.get("reference_num"),
            "name": idea.get("name"),
            "created_at": idea.get("created_at"),
            "url": idea.get("url"),
            "resource": idea.get("resource"),
        }
        pc["attachments"] = [self._attachment(created)] if rng.random() < 0.05 else []
        if spam or rng.random() < 0.4:
            pc["spam"] = spam
        return pc

    def add_comment(self, idea_id: str, **overrides: Any) -> JSON:
        """Add an internal comment now; bumps updated_at and comments_count."""
        with self._lock:
            iid = self._must(idea_id)
            now = self._now()
            comment = self._build_comment(self._ideas[iid], now)
            comment.update(overrides)
            self._comments[iid].append(comment)
            self._bump(iid, now)
            return cast(JSON, copy_json(comment))

    def add_portal_comment(
        self, idea_id: str, *, spam: bool = False, parent_id: int | None = None, **overrides: Any
    ) -> JSON:
        """Add a portal comment now; bumps updated_at (and comments_count where it counts them)."""
        with self._lock:
            iid = self._must(idea_id)
            now = self._now()
            pc = self._build_portal_comment(self._ideas[iid], now, spam=spam, parent_id=parent_id)
            pc.update(overrides)
            self._portal[iid].append(pc)
            self._bump(iid, now)
            return cast(JSON, copy_json(pc))

    def comments(self, idea_id: str) -> list[JSON]:
        """Copies of an idea's internal comments, in listing order."""
        with self._lock:
            return cast(list[JSON], copy_json(self._comments[self._must(idea_id)]))

    def portal_comments(self, idea_id: str, *, include_spam: bool = True) -> list[JSON]:
        """Copies of an idea's portal comments (spam included unless asked otherwise)."""
        with self._lock:
            items = self._portal[self._must(idea_id)]
            return cast(list[JSON], copy_json([p for p in items if include_spam or not p.get("spam")]))

    # ------------------------------------------------------------------ routes

    def _list_comments(self, query: dict[str, str], key: str) -> Response:
        """``GET /ideas/{id or reference}/comments``: one idea's internal comments."""
        return self._comment_page(query, key, "comments")

    def _list_portal_comments(self, query: dict[str, str], key: str) -> Response:
        """``GET /ideas/{id or reference}/idea_comments``: its portal comments (spam with ``spam=true``)."""
        return self._comment_page(query, key, "idea_comments")

    def _comment_page(self, query: dict[str, str], key: str, root: str) -> Response:
        fields = fields_of(query)
        with self._lock:
            iid = self._resolve(key)
            if iid is None:
                return not_found()
            if root == "comments":
                records = self._comments[iid]
            else:
                spam = query.get("spam", "").lower() in TRUE_VALUES
                records = [p for p in self._portal[iid] if spam or not p.get("spam")]
            return page_of(root, records, query, fields)
