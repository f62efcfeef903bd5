"""Lakeflow offsets: every read follows (cursor, id) order, so a batch can stop anywhere and resume exactly.

A `cdc` table's offset is `{"cursor": <updated_at or the stream's cursor>, "id": <record id>}`, the last
record a batch returned; a snapshot table's is `{"snapshot": <the pass's cap>}`.
"""

from __future__ import annotations

import typing as t

from tap_aha.timestamps import EPOCH, normalize_timestamp

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

Key = tuple[str, str]  # (a cursor in Aha!'s form, an id): the order every Lakeflow read follows
Row = dict[str, t.Any]
# Companion tables without a cursor: read whole once per pass (offset {"snapshot": <cap>}), no delete flow.
SNAPSHOT = "snapshot"


def keyed(records: Iterable[Row], cap: str) -> Iterator[tuple[Key, Row]]:
    """Each record with its key; those updated after `cap` left out."""
    for record in records:
        record_key = key(record)
        if record_key[0] <= cap:
            yield record_key, record


def key(record: Mapping[str, t.Any]) -> Key:
    """A record's place in the order every read follows: (its change time in Aha!'s form, its id)."""
    updated = record.get("updated_at")
    return (
        normalize_timestamp(updated) if isinstance(updated, str) and updated else EPOCH,
        str(record["id"]),
    )


def parse_offset(offset: Mapping[str, t.Any] | None) -> Key | None:
    """The key an offset `read_table` returned stands for (None: from the start); else one clear error."""
    if offset is None or (isinstance(offset, dict) and not offset):
        return None
    cursor, idea_id = (offset.get("cursor"), offset.get("id")) if isinstance(offset, dict) else (None, None)
    if not isinstance(cursor, str) or not isinstance(idea_id, str) or set(offset) != {"cursor", "id"}:
        raise ValueError(
            'An offset is {} or {"cursor": <updated_at>, "id": <idea id>} as read_table returns.'
        )
    try:
        return normalize_timestamp(cursor), idea_id
    except ValueError:
        raise ValueError(f"The offset's cursor {cursor!r} is not an ISO-8601 timestamp.") from None


def snapshot_offset(offset: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """A snapshot table's offset, checked."""
    if not isinstance(offset, dict) or set(offset) != {SNAPSHOT} or not isinstance(offset[SNAPSHOT], str):
        raise ValueError('A snapshot table\'s offset is {} or {"snapshot": <cap>} as read_table returns.')
    return dict(offset)


def format_offset(record_key: Key) -> dict[str, t.Any]:
    """The offset `read_table` returns for a key."""
    return {"cursor": record_key[0], "id": record_key[1]}


def offset_after(
    start_offset: Mapping[str, t.Any] | None, start: Key | None, end: Key | None
) -> dict[str, t.Any]:
    """The offset to pass next: the incoming one unchanged when nothing new was read."""
    return dict(start_offset or {}) if end is None or end == start else format_offset(end)
