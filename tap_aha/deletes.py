"""Deletes, from Aha!'s audit log: what the tap, the Lakeflow connector and the tests share.

Aha! lists no deleted records, but audits every destroy and keeps the audits 12 months. A read asks for the
destroy audits of a window, account-wide (`GET /audits?audit_action=destroy`, one request per 200), and keeps
those of the records a stream emits: the classes its `delete_audit_types` names, matched in either spelling
Aha! uses (`Ideas::IdeaEndorsement` in queries, `ideas/idea_endorsement` in answers). The order of the
answer is not documented, so nothing here depends on it.

The tap sends each deletion as a tombstone (the key, `idea_id` where the audit tells it, `_sdc_deleted_at`)
before the run's records, so a record restored from the recycle bin (an update) arrives after its tombstone.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t
from dataclasses import dataclass
from http import HTTPStatus

from tap_aha.client import AhaPaginator, AhaStream, payload_of, records_of, sent_on_server_clock
from tap_aha.errors import TapAhaError
from tap_aha.timestamps import normalize_timestamp, parse_timestamp

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import requests

    from tap_aha.tap import TapAha

DELETES_BOOKMARK = "deletes"  # state["bookmarks"]["deletes"]: {"replication_key_value": <audit time>}
DELETED_AT = "_sdc_deleted_at"
IDEA_TYPE = "ideas/idea"
MAX_WALKS = 4
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def audit_type(name: str) -> str:
    """One spelling for either of Aha!'s: `Ideas::IdeaEndorsement` and `ideas/idea_endorsement` alike."""
    return _CAMEL.sub("_", name.strip()).replace("::", "/").lower()


@dataclass(frozen=True, order=True)
class Deletion:
    """A record deleted in Aha!, ordered by when."""

    deleted_at: str  # the destroy audit's created_at, in Aha!'s form
    id: str
    stream: str
    idea_id: str | None

    def tombstone(self, columns: Iterable[str]) -> dict[str, t.Any]:
        """The Singer tombstone: the key, the idea where the stream has `idea_id`, the deletion time."""
        record: dict[str, t.Any] = {"id": self.id, DELETED_AT: self.deleted_at}
        if "idea_id" in columns:
            record["idea_id"] = self.idea_id
        return record


class AuditsRefusedError(TapAhaError):
    """Aha! refused /audits (403 for the key's role, 404 on a plan without it): deletes cannot be read."""

    def __init__(self, status: int) -> None:
        """The status, for the warning."""
        super().__init__(f"HTTP {status}")


class AuditsStream(AhaStream):
    """`GET /audits`, read through the tap's client, limiter and retries; not a stream of the tap."""

    name = "audits"
    path = "/audits"
    root_key = "audits"
    schema: t.ClassVar[dict[str, t.Any]] = {"type": "object", "properties": {"id": {"type": "string"}}}

    def validate_response(self, response: requests.Response) -> None:
        """403 and 404 mean no audit log for this key or plan: the caller goes on without deletes."""
        if response.status_code in {HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND}:
            raise AuditsRefusedError(response.status_code)
        super().validate_response(response)

    def destroys(self, since: str | None, until: str) -> AuditRead:
        """Every destroy audit created in [since, until), each once, whatever order Aha! answers in.

        It walks with `after_id` (the largest id seen so far), as Aha! recommends: one request per 200
        audits when the answer comes in id order. If that walk saw fewer audits than the first answer
        listed (another order, or `after_id` ignored), it walks the pages by number instead, again while
        their total changes under it.
        """
        params: dict[str, t.Any] = {
            "audit_action": "destroy",
            "created_before": until,
            "per_page": self.settings.page_size,
        }
        if since is not None:
            params["created_since"] = since
        read = AuditRead()
        after: str | None = None
        while True:
            response = read.page(self, {**params, "after_id": after} if after else params)
            if not read.new or not self._more(response):
                break
            after = max(read.audits, key=_id_order)
        for _ in range(MAX_WALKS):
            if len(read.audits) >= read.listed or len(self._walk_pages(read, params)) == 1:
                break
        return read

    def _walk_pages(self, read: AuditRead, params: dict[str, t.Any]) -> set[int]:
        """Every page by number; the totals the pages listed (more than one: the listing moved under it)."""
        totals: set[int] = set()
        page = 1
        while True:
            response = read.page(self, {**params, "page": page})
            totals.add(read.listed)
            if not self._more(response):
                return totals
            page += 1

    def _more(self, response: requests.Response) -> bool:
        return AhaPaginator(self.settings.page_size).has_more(response)


class AuditRead:
    """What one read of the audit log found, and when its first request left on Aha!'s clock."""

    def __init__(self) -> None:
        """Nothing read yet."""
        self.audits: dict[str, dict[str, t.Any]] = {}
        self.listed = 0
        self.requests = 0
        self.server_start: str | None = None
        self.new = 0

    def page(self, stream: AuditsStream, params: dict[str, t.Any]) -> requests.Response:
        """One page: note its audits, how many the answer lists in all, and the server's clock."""
        response = stream.get_response(stream.path, params)
        self.requests += 1
        if self.server_start is None:
            self.server_start = sent_on_server_clock(response)
        pagination = payload_of(response).get("pagination")
        total = pagination.get("total_records") if isinstance(pagination, dict) else None
        if isinstance(total, int) and "after_id" not in params:
            self.listed = total
        before = len(self.audits)
        for audit in records_of(response, stream.root_key):
            self.audits.setdefault(audit["id"], audit)
        self.new = len(self.audits) - before
        return response

    def deletions(self, streams: Mapping[str, AhaStream]) -> list[Deletion]:
        """The deletions of these streams' records, the latest per record, oldest first."""
        wanted: dict[str, list[str]] = {}  # one class may be the records of several streams (votes)
        for name, stream in streams.items():
            for kind in stream.delete_audit_types:
                wanted.setdefault(audit_type(kind), []).append(name)
        latest: dict[tuple[str, str], Deletion] = {}
        for audit in self.audits.values():
            for deletion in _deletions(audit, wanted):
                key = (deletion.stream, deletion.id)
                if key not in latest or latest[key].deleted_at < deletion.deleted_at:
                    latest[key] = deletion
        return sorted(latest.values())


def _deletions(audit: Mapping[str, t.Any], wanted: Mapping[str, list[str]]) -> list[Deletion]:
    """A destroy audit of a wanted type as a Deletion for each stream of that type; others give none."""
    kind, action = audit.get("auditable_type"), audit.get("audit_action")
    record_id, created = audit.get("auditable_id"), audit.get("created_at")
    if not isinstance(kind, str) or not isinstance(action, str) or action.strip().lower() != "destroy":
        return []
    streams = wanted.get(audit_type(kind), [])
    if not streams or record_id in {None, ""} or not isinstance(created, str):
        return []
    associated, associated_id = audit.get("associated_type"), audit.get("associated_id")
    on_idea = isinstance(associated, str) and audit_type(associated) == IDEA_TYPE
    idea_id = str(associated_id) if on_idea and associated_id not in {None, ""} else None
    return [Deletion(normalize_timestamp(created), str(record_id), stream, idea_id) for stream in streams]


def _id_order(audit_id: str) -> tuple[int, str]:
    """Audit ids are digit strings: compare them as numbers."""
    return (int(audit_id), "") if audit_id.isdigit() else (-1, audit_id)


def audit_log_start(now: dt.datetime) -> dt.datetime:
    """The oldest moment Aha!'s audit log still holds: 12 calendar months back."""
    try:
        return now.replace(year=now.year - 1)
    except ValueError:  # 29 February
        return now.replace(year=now.year - 1, day=28)


def read_deletions(
    tap: TapAha, streams: Sequence[AhaStream], since: str | None, until: str
) -> tuple[list[Deletion], AuditRead]:
    """The deletions of these streams' records audited in [since, until), and the read itself."""
    read = AuditsStream(tap=tap).destroys(since, until)
    return read.deletions({stream.name: stream for stream in streams}), read


def capture_deletes(tap: TapAha) -> None:
    """Before the streams sync: tombstones for what was deleted since the delete bookmark, then the bookmark.

    The bookmark is promoted only after the read and the tombstones: a run killed earlier reads them again.
    A first run reads nothing (nothing is loaded yet); a state from before deletes were captured reads from
    the ideas bookmark. The new bookmark is the run's start, lowered to Aha!'s clock.
    """
    if not tap.settings.capture_deletes:
        return
    logger = tap.logger
    bookmarks: dict[str, t.Any] = tap.state.setdefault("bookmarks", {})
    start = tap.connection.started_at
    since = _bookmark(bookmarks, DELETES_BOOKMARK) or _bookmark(bookmarks, "ideas")
    if since is None:
        bookmarks[DELETES_BOOKMARK] = {"replication_key_value": start}
        return
    streams = [
        s for s in tap.streams.values() if s.selected and isinstance(s, AhaStream) and s.delete_audit_types
    ]
    if not streams:
        return
    if parse_timestamp(since) < audit_log_start(dt.datetime.now(dt.UTC)):
        logger.warning(
            "The delete bookmark %s is older than Aha!'s audit log (12 months): records deleted before "
            "then cannot be read and may remain in the warehouse (a full refresh reloads without them).",
            since,
        )
    try:
        deletions, read = read_deletions(tap, streams, since, start)
    except AuditsRefusedError as exc:
        logger.warning(
            "Aha! refused GET /audits (%s): deletes are not captured this run; the data sync goes on. Give "
            "the key's user access to the audit log, or set 'capture_deletes' to false.",
            exc,
        )
        bookmarks[DELETES_BOOKMARK] = {"replication_key_value": since}
        return
    for stream in streams:
        mine = [deletion for deletion in deletions if deletion.stream == stream.name]
        if mine:
            stream._write_schema_message()
            columns = stream.schema["properties"]
            for deletion in mine:
                stream._write_record_message(deletion.tombstone(columns))
    logger.info(
        "Deletes since %s: %d tombstones sent, from %d destroy audits (requests to /audits: %d).",
        since, len(deletions), len(read.audits), read.requests,
    )  # fmt: skip
    promoted = min(start, read.server_start or start)
    bookmarks[DELETES_BOOKMARK] = {"replication_key_value": promoted}


def _bookmark(bookmarks: Mapping[str, t.Any], name: str) -> str | None:
    value = bookmarks.get(name, {}).get("replication_key_value")
    return normalize_timestamp(value) if isinstance(value, str) else None
