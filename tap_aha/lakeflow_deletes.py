"""The Lakeflow delete flow: `read_table_deletes` over the deletions in Aha!'s audit log (tap_aha.deletes).

Offsets have the form read_table's have, `{"cursor": <deleted at>, "id": <record id>}`, over deletions in
(deleted at, id) order, so a batch can stop anywhere and the next resume exactly. Each pass over a table takes
its own cap when it starts and never reads past it, so it ends even while records keep being deleted; the
call that finds nothing new ends the pass, and the next call (the same offset again) starts a new one.
Returned rows are built anew on each call from immutable deletions, so a repeated read returns the same.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t
from dataclasses import dataclass

from tap_aha.deletes import Deletion, read_deletions
from tap_aha.errors import EndpointRefusedError
from tap_aha.spark_schema import table_columns
from tap_aha.timestamps import format_timestamp, parse_timestamp

if t.TYPE_CHECKING:
    from tap_aha.client import AhaStream
    from tap_aha.tap import TapAha

logger = logging.getLogger(__name__)
Key = tuple[str, str]  # (deleted at in Aha!'s form, record id)
_ONE_MS = dt.timedelta(milliseconds=1)


@dataclass(frozen=True)
class _Pass:
    """A pass over one table: its cap, the start it listed from, and what that listing found."""

    cap: str
    start: Key | None
    deletions: list[Deletion]


class DeletePasses:
    """Deleted keys of each table after an offset, up to the cap of the table's current pass.

    The audit log is listed once per pass, at its first read: the pass's later batches (each a call, with a
    later start) filter that listing instead of asking Aha! again.
    """

    def __init__(self) -> None:
        """No pass started yet."""
        self._passes: dict[str, _Pass] = {}

    def read(
        self,
        tap: TapAha,
        stream: AhaStream,
        cursor: str,
        window: tuple[Key | None, Key | None],
        limit: int | None,
    ) -> tuple[list[dict[str, t.Any]], Key | None]:
        """Deleted rows (the key, `idea_id`, `cursor` = when deleted) in (start, end] and the last row's key.

        Without `end`, up to the pass's cap and at most `limit` rows; with it, a replay of that batch.
        """
        start, end = window
        if end is not None:
            cap, deletions = end[0], _listing(tap, stream, start, end[0])
        else:
            current = self._passes.get(stream.name)
            if current is None or (current.start is not None and (start is None or start < current.start)):
                cap = current.cap if current is not None else _now()
                current = _Pass(cap, start, _listing(tap, stream, start, cap))
                self._passes[stream.name] = current
            cap, deletions = current.cap, current.deletions
        chosen = [
            d
            for d in deletions
            if d.deleted_at <= cap
            and (start is None or (d.deleted_at, d.id) > start)
            and (end is None or (d.deleted_at, d.id) <= end)
        ]
        if limit is not None:
            chosen = chosen[:limit]
        if not chosen and end is None:
            self._passes.pop(stream.name, None)  # the pass is over: the next read takes a new cap
        columns = table_columns(stream)
        rows = [columns.record({"id": d.id, "idea_id": d.idea_id, cursor: d.deleted_at}) for d in chosen]
        return rows, (chosen[-1].deleted_at, chosen[-1].id) if chosen else None


def _listing(tap: TapAha, stream: AhaStream, start: Key | None, cap: str) -> list[Deletion]:
    """The table's deletions after `start` up to `cap`, in (deleted at, id) order.

    The audit log is asked from a millisecond before the start (inclusive or not, nothing is missed), and
    from `start_date` on a first read: a record last updated before it was never loaded.
    """
    since = (
        tap.settings.start_date if start is None else format_timestamp(parse_timestamp(start[0]) - _ONE_MS)
    )
    until = format_timestamp(parse_timestamp(cap) + _ONE_MS)
    try:
        deletions, _ = read_deletions(tap, [stream], since, until)
    except EndpointRefusedError as exc:
        logger.warning(
            "Aha! refused GET /audits (%s): no deletes for %s; set 'capture_deletes' to false to read it "
            "as cdc without deletes.",
            exc, stream.name,
        )  # fmt: skip
        return []
    return sorted(deletions, key=lambda d: (d.deleted_at, d.id))


def _now() -> str:
    """A cap: a millisecond ago, in Aha!'s form (what is deleted in this millisecond is read next pass)."""
    return format_timestamp(dt.datetime.now(dt.UTC) - _ONE_MS)
