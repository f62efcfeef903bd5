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

from tap_aha.client import AhaStream, ListingStream, connection_of
from tap_aha.errors import EndpointRefusedError
from tap_aha.listings import Walk
from tap_aha.timestamps import normalize_timestamp, parse_timestamp

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import requests
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

DELETES_BOOKMARK = "deletes"  # state["bookmarks"]["deletes"]: {"replication_key_value": <audit time>}
DELETED_AT = "_sdc_deleted_at"
IDEA_TYPE = "ideas/idea"
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


class AuditsStream(ListingStream):
    """`GET /audits` for one window's destroy audits, through the tap's client; not a stream of the tap.

    Optional: Aha! refuses it (403 for the key's role, 404 on a plan without it) with `EndpointRefusedError`,
    whose text is the status alone, for the caller's own warning.
    """

    name = "audits"
    path = "/audits"
    root_key = "audits"
    optional_endpoint = True
    schema: t.ClassVar[dict[str, t.Any]] = {"type": "object", "properties": {"id": {"type": "string"}}}

    def __init__(self, tap: Tap, since: str | None, until: str) -> None:
        """A read of the destroy audits created in [since, until); `since` None: all the log holds."""
        super().__init__(tap=tap)
        self._window: dict[str, str] = {"audit_action": "destroy", "created_before": until}
        if since is not None:
            self._window["created_since"] = since
        self.read = AuditRead()

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """A numbered page of the window's destroy audits."""
        return {**super().get_url_params(context, next_page_token), **self._window}

    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        """The listing's own bookkeeping (its totals, Aha!'s clock), each answer counted for the log."""
        self.read.requests += 1
        return super().parse_response(response)

    def destroys(self) -> AuditRead:
        """Every destroy audit of the window, each once, whatever order Aha! answers in.

        It walks with `after_id` (the largest id seen so far), as Aha! recommends: one request per 200
        audits when the answer comes in id order. If that walk saw fewer audits than an answer listed
        (another order, or `after_id` ignored), it walks the numbered pages instead (`walk_pages`: again
        while the listing shifts under it).
        """
        has_more = self.get_new_paginator().has_more
        params = self._first_params_by_id()
        first = self.connection.listings.take(self.name, self.listing_url(None), params)  # if read ahead
        while True:
            response = next(first) if first is not None else self.get_response(self.path, params)
            first = None
            audits = [audit for page in self.parse_response(response) for audit in page[self.root_key]]
            if not self.read.page(audits) or not has_more(response):
                break
            params["after_id"] = max(self.read.audits, key=_id_order)
        if len(self.read.audits) < max(self._walk.totals, default=0):
            for page in self.walk_pages(None, None):
                self.read.page(page)
        return self.read

    def walks_ahead(self) -> list[Walk]:
        """The first request of `destroys`, started with the run (the rest depends on its answer)."""
        return [Walk(self, self.listing_url(None), self._first_params_by_id(), paged=False)]

    def _first_params_by_id(self) -> dict[str, t.Any]:
        return {**self._window, "per_page": self.settings.page_size}

    def _refusal(self, status: int, where: str) -> str:
        """The status alone: the callers word the warning, naming `capture_deletes`."""
        return f"HTTP {status}"


class AuditRead:
    """What one read of the audit log found, and how many requests it took."""

    def __init__(self) -> None:
        """Nothing read yet."""
        self.audits: dict[str, dict[str, t.Any]] = {}
        self.requests = 0

    def page(self, audits: Iterable[dict[str, t.Any]]) -> int:
        """Note a page's audits, each once; how many were new."""
        before = len(self.audits)
        for audit in audits:
            self.audits.setdefault(audit["id"], audit)
        return len(self.audits) - before

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
    tap: Tap, streams: Sequence[AhaStream], since: str | None, until: str
) -> tuple[list[Deletion], AuditsStream]:
    """The deletions of these streams' records audited in [since, until), and the stream that read them."""
    audits = AuditsStream(tap, since, until)
    return audits.destroys().deletions({stream.name: stream for stream in streams}), audits


def deletes_ahead(tap: Tap) -> list[Walk]:
    """The audit log's first request, if `capture_deletes` will read it: started with the run.

    Decided from the state as given, without writing it (the SDK sends it first).
    """
    connection = connection_of(tap)
    if not connection.settings.capture_deletes:
        return []
    since = _since(tap.state.get("bookmarks", {}))
    if since is None or not _audited_streams(tap):
        return []
    return AuditsStream(tap, since, connection.started_at).walks_ahead()


def capture_deletes(tap: Tap) -> bool:
    """Before the streams sync: tombstones for what was deleted since the delete bookmark, then the bookmark.

    The bookmark is promoted only after the read and the tombstones: a run killed earlier reads them again.
    A first run reads nothing (nothing is loaded yet) and returns True: its bookmark is set once the streams
    synced (`start_deletes_bookmark`), when an answer has told Aha!'s clock. A state from before deletes were
    captured reads from the ideas bookmark. The new bookmark is the run's start, lowered to Aha!'s clock.
    """
    connection = connection_of(tap)
    if not connection.settings.capture_deletes:
        return False
    logger = tap.logger
    bookmarks: dict[str, t.Any] = tap.state.setdefault("bookmarks", {})
    start = connection.started_at
    since = _since(bookmarks)
    if since is None:
        return True
    streams = _audited_streams(tap)
    if not streams:
        return False
    if parse_timestamp(since) < audit_log_start(dt.datetime.now(dt.UTC)):
        logger.warning(
            "The delete bookmark %s is older than Aha!'s audit log (12 months): records deleted before "
            "then cannot be read and may remain in the warehouse (a full refresh reloads without them).",
            since,
        )
    try:
        deletions, audits = read_deletions(tap, streams, since, start)
    except EndpointRefusedError as exc:
        logger.warning(
            "Aha! refused GET /audits (%s): deletes are not captured this run; the data sync goes on. Give "
            "the key's user access to the audit log, or set 'capture_deletes' to false.",
            exc,
        )
        bookmarks[DELETES_BOOKMARK] = {"replication_key_value": since}
        return False
    for stream in streams:
        mine = [deletion for deletion in deletions if deletion.stream == stream.name]
        if mine:
            stream.write_schema()
            columns = stream.schema["properties"]
            for deletion in mine:
                stream.write_record(deletion.tombstone(columns))
    logger.info(
        "Deletes since %s: %d tombstones sent, from %d destroy audits (requests to /audits: %d).",
        since, len(deletions), len(audits.read.audits), audits.read.requests,
    )  # fmt: skip
    bookmarks[DELETES_BOOKMARK] = {"replication_key_value": audits.server_start()}
    return False


def start_deletes_bookmark(tap: Tap) -> None:
    """A first run's delete bookmark: its start on Aha!'s clock (told by the first answer), in the state."""
    bookmarks: dict[str, t.Any] = tap.state.setdefault("bookmarks", {})
    bookmarks[DELETES_BOOKMARK] = {"replication_key_value": connection_of(tap).server_started_at}
    tap.state_writer.write_state(tap.state)


def _since(bookmarks: Mapping[str, t.Any]) -> str | None:
    """Where the read starts: the delete bookmark, else (a state from before deletes) the ideas bookmark."""
    return _bookmark(bookmarks, DELETES_BOOKMARK) or _bookmark(bookmarks, "ideas")


def _audited_streams(tap: Tap) -> list[AhaStream]:
    """The selected streams whose records' deletes Aha! audits."""
    return [
        s for s in tap.streams.values() if s.selected and isinstance(s, AhaStream) and s.delete_audit_types
    ]


def keep_deletes_bookmark(tap: Tap, not_after: str) -> None:
    """Before a STATE in the middle of a first run (a first sync's window): its delete bookmark already.

    Aha! has answered by then, so the run's start on its clock is known. A run resumed from that state reads
    the deletes since this run's start: those of records this run wrote before it was killed included. The
    listings start at once, so the first answer may tell a moment a little after the ideas' first request:
    the bookmark is never later than `not_after` (that request on Aha!'s clock).
    """
    connection = connection_of(tap)
    bookmarks: dict[str, t.Any] = tap.state.setdefault("bookmarks", {})
    if connection.settings.capture_deletes and DELETES_BOOKMARK not in bookmarks:
        since = min(normalize_timestamp(connection.server_started_at), normalize_timestamp(not_after))
        bookmarks[DELETES_BOOKMARK] = {"replication_key_value": since}


def _bookmark(bookmarks: Mapping[str, t.Any], name: str) -> str | None:
    value = bookmarks.get(name, {}).get("replication_key_value")
    return normalize_timestamp(value) if isinstance(value, str) else None
