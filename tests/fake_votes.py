"""The fake Aha!'s votes (endorsements): the records, their changes, ``GET /ideas/{id}/endorsements`` and
the account-wide ``GET /ideas/endorsements``.

A proxy vote is one cast for an organization: it carries an ``idea_organization``; ``proxy=true`` lists only
those. ``account_votes_refused`` (403 or 404) refuses the account-wide listing; with
``account_votes_honour_proxy = False`` it ignores ``proxy=true``. Deleting a vote is in
``tests/fake_audits.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from tests.fake_account import Account
from tests.fake_formats import JSON, TRUE_VALUES, copy_json, fmt_ts, micros, parse_ts
from tests.fake_paging import Response, fields_of, not_found, page_of, refused, time_filter


class Votes(Account):
    """The votes of the account's ideas, and the routes that serve them."""

    account_votes_refused: int | None = None  # 403 or 404: GET /ideas/endorsements answers that status
    account_votes_honour_proxy = True  # False: GET /ideas/endorsements ignores `proxy=true`

    def _build_vote(self, idea: JSON, created: datetime, *, proxy: bool) -> JSON:
        """A vote; proxy votes are the ones carrying an ``idea_organization``."""
        rng = self._rng
        vote: JSON = {
            "id": self._new_id(),
            "idea_id": idea["id"],
            "created_at": fmt_ts(created),
            "updated_at": fmt_ts(created),
            "value": rng.choice(("1.0", "2.0", "3.0", "5.0", None)),
            "link": rng.choice(("", None, f"https://crm.example.com/opp/{rng.randint(1, 99999)}")),
            "weight": rng.choice((1, 1, 1, 2, 3)),
        }
        if proxy:
            vote["idea_organization"] = dict(rng.choice(self._orgs))
        elif rng.random() < 0.5:
            vote["idea_organization"] = None
        if rng.random() < 0.6:
            portal_user, idea_user = rng.choice(self._portal_users)
            vote["endorsed_by_portal_user"] = dict(portal_user)
            vote["endorsed_by_idea_user"] = dict(idea_user)
        else:
            vote["endorsed_by_user"] = dict(rng.choice(self._users))
        return vote

    def add_vote(self, idea_id: str, *, proxy: bool = True, **overrides: Any) -> JSON:
        """Add a vote now; bumps the idea's updated_at, votes and endorsements_count."""
        with self._lock:
            iid = self._must(idea_id)
            now = self._now()
            vote = self._build_vote(self._ideas[iid], now, proxy=proxy)
            vote.update(overrides)
            self._votes[iid].append(vote)
            self._bump(iid, now)
            return cast(JSON, copy_json(vote))

    def edit_vote(self, vote_id: str, **changes: Any) -> JSON:
        """Edit a vote now without bumping its idea (whether Aha! bumps it is unknown)."""
        with self._lock:
            vote = next(v for votes in self._votes.values() for v in votes if v["id"] == vote_id)
            vote.update(changes, updated_at=fmt_ts(self._now()))
            return cast(JSON, copy_json(vote))

    def votes(self, idea_id: str, *, proxy_only: bool = True) -> list[JSON]:
        """Copies of an idea's votes (only proxy ones by default), in listing order."""
        with self._lock:
            votes = self._votes[self._must(idea_id)]
            return cast(
                list[JSON],
                copy_json([v for v in votes if not proxy_only or v.get("idea_organization")]),
            )

    # ------------------------------------------------------------------ routes

    def _list_idea_votes(self, query: dict[str, str], key: str) -> Response:
        """``GET /ideas/{id or reference}/endorsements``: its votes (``proxy=true``: proxy ones only)."""
        fields = fields_of(query)
        with self._lock:
            iid = self._resolve(key)
            if iid is None:
                return not_found()
            proxy = query.get("proxy", "").lower() in TRUE_VALUES
            records = [v for v in self._votes[iid] if not proxy or v.get("idea_organization")]
            return page_of("idea_endorsements", records, query, fields)

    def _list_account_votes(self, query: dict[str, str]) -> Response:
        """``GET /ideas/endorsements``: every vote of the account, oldest first."""
        if self.account_votes_refused is not None:
            return refused(self.account_votes_refused)
        updated_since = time_filter(query, "updated_since")
        created_since = time_filter(query, "created_since")
        created_before = time_filter(query, "created_before")
        proxy = self.account_votes_honour_proxy and query.get("proxy", "").lower() in TRUE_VALUES
        with self._lock:
            records: list[tuple[int, str, JSON]] = []
            for votes in self._votes.values():
                for v in votes:
                    if proxy and not v.get("idea_organization"):
                        continue
                    created = micros(parse_ts(v["created_at"]))
                    updated = micros(parse_ts(v.get("updated_at") or v["created_at"]))
                    if updated_since is not None and (
                        updated < updated_since
                        or (not self.updated_since_inclusive and updated == updated_since)
                    ):
                        continue
                    if created_since is not None and created < created_since:
                        continue
                    if created_before is not None and created >= created_before:
                        continue
                    records.append((created, str(v["id"]), v))
            records.sort(key=lambda r: (r[0], len(r[1]), r[1]))
            return page_of("idea_endorsements", [r[2] for r in records], query, fields_of(query))
