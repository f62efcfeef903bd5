"""The tap's streams as a Databricks Lakeflow community connector (`LakeflowConnect`).

The connector drives the tap's own streams, so HTTP, paging, retries, the rate limiter, the settings'
validation and the JSON schemas are the tap's. What it adds is what Lakeflow needs and Singer does not:

* offsets: `{"cursor": <updated_at>, "id": <idea id>}`, the last idea read in (updated_at, id) order, so a
  batch can stop anywhere (also between ideas that share one `updated_at`) and the next one resume exactly;
* deletes (`read_table_deletes`): the keys of records deleted in Aha!, from its audit log, with offsets of
  the same form (`tap_aha.lakeflow_deletes`);
* passes: a pass over a table (or its delete flow) reads up to its cap and never past it, so it ends even
  while ideas keep changing. The first pass of every table is capped at the moment the connector was made; a
  read that starts where the table's last pass caught up (returned its start offset) starts a new pass with a
  new cap, once `poll_interval_seconds` have passed since the last cap, so one connector serving a continuous
  query for days keeps reading what changes. A pass lists Aha! once, at its first read: its later batches
  slice that listing;
* the tables' Spark schemas and records converted to them (`tap_aha.spark_schema`).

The idea tables are read through the window of changed ideas; the companion and roadmap tables (votes,
organizations, users, portals, workspaces, categories, features, releases...) over their own listings, a
child table (categories, releases, key results, requirements) through its parent's records (`_rows`):
`cdc` ones with the same offsets, cap and batches (idea users, which have no change time: one batch per
pass, their cursor `listed_at` the moment its listing started), `snapshot` ones whole once per pass, a new
pass at most every `snapshot_interval_seconds`. What a refusal or a failed request means:
docs/operations-failures.md.

pyspark is optional: only `get_table_schema` needs it, and imports it when called.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import typing as t
from bisect import bisect_right
from itertools import chain
from operator import itemgetter

from singer_sdk.exceptions import ConfigValidationError

from tap_aha.client import processed
from tap_aha.companions import AccountStream
from tap_aha.errors import EndpointRefusedError, SettingsError
from tap_aha.lakeflow_deletes import deleted_rows
from tap_aha.lakeflow_offsets import (
    SNAPSHOT,
    Key,
    Row,
    keyed,
    offset_after,
    parse_offset,
    snapshot_offset,
)
from tap_aha.lakeflow_options import (
    CONNECTION_OPTIONS,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_SNAPSHOT_INTERVAL,
    TABLE_OPTIONS,
    batch_limit,
    interval,
    split_options,
    tap_config,
)
from tap_aha.settings import AhaSettings
from tap_aha.spark_schema import Column, table_columns
from tap_aha.streams import IdeaProxyVotesStream, start_comment_counts
from tap_aha.tap import STREAM_NAMES, TapAha
from tap_aha.timestamps import format_timestamp, later_start, parse_timestamp

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from pyspark.sql.types import StructType

    from tap_aha.client import AhaStream, ChildStream
    from tap_aha.streams import IdeaChildStream, IdeasStream
    from tap_aha.vote_index import ProxyVoteIndex

logger = logging.getLogger(__name__)

PARENT_TABLE = "ideas"
TABLES = STREAM_NAMES
# Deletes come from Aha!'s audit log (tap_aha.deletes); without capture_deletes the tables are plain cdc.
INGESTION_TYPE = "cdc_with_deletes"


_ONE_MS = dt.timedelta(milliseconds=1)
_first = itemgetter(0)


def _now_cap() -> str:
    """A cap every change made so far lies before (1 ms before now, in Aha!'s form)."""
    return format_timestamp(dt.datetime.now(dt.UTC) - _ONE_MS)


@dataclasses.dataclass
class _Pass:
    """A pass over a table or its delete flow: its cap, the ideas it read (max_ideas), where it caught up."""

    cap: str
    ideas_read: int = 0
    caught_up_at: dict[str, t.Any] | None = None  # the offset it returned unchanged, once it has


@dataclasses.dataclass(frozen=True)
class _Listing:
    """What one listing of a table found up to `cap`, after `start`, in key order."""

    cap: str
    start: Key | None
    rows: list[tuple[Key, Row]]


class _EmbeddedTap(TapAha):
    """The tap inside a Spark driver or notebook, whose signals stay the host's.

    The CLI's handler of SIGINT and SIGTERM prints a STATE line and exits the process.
    """

    handles_signals = False


class LakeflowConnect:
    """The Lakeflow community connector contract over the tap's streams.

    Tables: the tap's streams. `options` are strings named like the tap's settings; connection and table
    options arrive in one dict.
    Invalid ones raise the tap's `SettingsError` (a `ValueError`) with the tap's message.
    """

    def __init__(self, options: Mapping[str, t.Any], *, continuous: bool = True) -> None:
        """Validate the options with the tap's own checks and fix the first cap; no request is made.

        `continuous=False` keeps every table to its first pass (an AvailableNow run: it ends with the data
        that existed when it started).
        """
        self._options = dict(options)
        self._cap = _now_cap()
        self._continuous = continuous
        self._passes: dict[str, _Pass] = {}  # by table, and by `_deletes(table)` for its delete flow
        self._setup()

    def _setup(self) -> None:
        settings, table_options = split_options(self._options)
        self._raw_settings = settings
        self._settings = AhaSettings.from_config(settings)
        self._default_batch = batch_limit(table_options, None)
        self._default_poll = interval(table_options, "poll_interval_seconds", DEFAULT_POLL_INTERVAL)
        self._default_snapshot = interval(
            table_options, "snapshot_interval_seconds", DEFAULT_SNAPSHOT_INTERVAL
        )
        self._embedded: TapAha | None = None
        self._listings: dict[str, _Listing] = {}  # by the same names as the passes
        self._votes_listed: tuple[str, Key | None, ProxyVoteIndex | None] | None = None
        self._tap_instance()  # fail now on anything the SDK's own validation rejects

    # Spark pickles what a DataSource holds: keep the options and the passes, not sockets, locks or threads.
    def __getstate__(self) -> dict[str, t.Any]:
        """Options, caps and progress only."""
        return {
            "options": self._options,
            "cap": self._cap,
            "continuous": self._continuous,
            "passes": dict(self._passes),
        }

    def __setstate__(self, state: dict[str, t.Any]) -> None:
        """Rebuild the tap lazily with the same passes."""
        self._options = state["options"]
        self._cap = state["cap"]
        self._continuous = state["continuous"]
        self._passes = dict(state["passes"])
        self._setup()

    @property
    def settings(self) -> AhaSettings:
        """The validated settings (the tap's own checks)."""
        return self._settings

    @property
    def tap(self) -> TapAha:
        """The tap whose streams this connector reads."""
        return self._tap_instance()

    @property
    def cap(self) -> str:
        """No record updated after this moment (Aha!'s form) is read by the first pass of a table."""
        return self._cap

    # ------------------------------------------------------------------ the contract

    def list_tables(self) -> list[str]:
        """The tap's streams."""
        return list(TABLES)

    def get_table_schema(self, table_name: str, table_options: Mapping[str, t.Any]) -> StructType:
        """The Spark schema derived from the stream's JSON schema (see `table_columns`)."""
        schema = table_columns(self._stream(_check_table(table_name))).spark_type()
        return t.cast("StructType", schema)

    def read_table_metadata(self, table_name: str, table_options: Mapping[str, t.Any]) -> dict[str, t.Any]:
        """Primary key and cursor as the stream declares them; `cdc_with_deletes` where deletes are captured.

        Companion tables without a cursor are `snapshot`: each pass reads them whole.
        """
        stream = self._stream(_check_table(table_name))
        if _is_snapshot(stream):
            return {"primary_keys": list(stream.primary_keys or ()), "ingestion_type": SNAPSHOT}
        return {
            "primary_keys": list(stream.primary_keys or ()),
            "cursor_field": _cursor_field(stream),
            "ingestion_type": INGESTION_TYPE if self._has_delete_flow(stream) else "cdc",
        }

    def read_table(
        self, table_name: str, start_offset: Mapping[str, t.Any] | None, table_options: Mapping[str, t.Any]
    ) -> tuple[Iterator[dict[str, t.Any]], dict[str, t.Any]]:
        """Records after `start_offset` up to the pass's cap, in (updated_at, id) order of their idea.

        Returns the records and the offset to pass next; the same offset comes back once the pass has
        caught up, and a read from that offset starts the next pass. With `max_records_per_batch`, a read
        stops after that many records (child tables: after the idea whose records reach it, so an idea's
        records are never split between batches).
        """
        table = _check_table(table_name)
        limit, poll, snapshot_poll = self._table_options(table_options)
        offset = dict(start_offset or {})
        self._start_clean()
        stream = self._stream(table)
        current = self._pass(table, offset, snapshot_poll if _is_snapshot(stream) else poll)
        if current is None:
            return iter([]), offset
        if isinstance(stream, AccountStream):
            records, next_offset = self._read_companion(stream, offset, None, limit, current.cap)
        else:
            start = parse_offset(start_offset)
            records, ideas = self._read(table, start, None, limit, current.cap, quota=self._quota(current))
            current.ideas_read += len(ideas)  # forward reads only: a replay spends no quota
            next_offset = offset_after(offset, start, ideas[-1] if ideas else None)
        if next_offset == offset:
            current.caught_up_at = offset
        return iter(records), next_offset

    def read_table_deletes(
        self, table_name: str, start_offset: Mapping[str, t.Any] | None, table_options: Mapping[str, t.Any]
    ) -> tuple[Iterator[dict[str, t.Any]], dict[str, t.Any]]:
        """Records deleted after `start_offset`, oldest deletion first, and the offset to pass next.

        A record is the key, `idea_id` and the cursor column set to the deletion time; offsets, passes, caps,
        batches and `poll_interval_seconds` behave as read_table's.
        """
        table = _check_table(table_name)
        limit, poll, _ = self._table_options(table_options)
        offset = dict(start_offset or {})
        stream = self._stream(table)
        if not self._has_delete_flow(stream):  # a snapshot table, or deletes not captured: nothing to read
            return iter([]), offset
        self._start_clean()
        current = self._pass(_deletes(table), offset, poll)
        if current is None:
            return iter([]), offset
        start = parse_offset(start_offset)
        records, end = self._read_deletes(stream, start, None, limit, current.cap)
        next_offset = offset_after(offset, start, end)
        if next_offset == offset:
            current.caught_up_at = offset
        return iter(records), next_offset

    # ------------------------------------------------------------------ beyond the contract

    def columns(self, table_name: str) -> Column:
        """The table's compiled columns: its Spark type and the conversion of its records to rows."""
        return table_columns(self._stream(_check_table(table_name)))

    def read_table_between(
        self,
        table_name: str,
        start_offset: Mapping[str, t.Any] | None,
        end_offset: Mapping[str, t.Any],
        table_options: Mapping[str, t.Any],
        *,
        deletes: bool = False,
    ) -> list[dict[str, t.Any]]:
        """Records after `start_offset` up to `end_offset`: a streaming batch replayed after a restart.

        With `deletes`, the delete flow's batch: the deleted keys, as read_table_deletes returns them. A
        replay leaves the passes as they were (max_ideas counts forward reads only).
        """
        table = _check_table(table_name)
        self._table_options(table_options)  # the same option checks as read_table
        stream = self._stream(table)
        self._start_clean()
        if deletes:
            end = parse_offset(end_offset)
            if end is None or not self._has_delete_flow(stream):
                return []
            cap = self._pass_cap(_deletes(table))
            return self._read_deletes(stream, parse_offset(start_offset), end, None, cap)[0]
        cap = self._pass_cap(table)
        if isinstance(stream, AccountStream):
            start_companion, end_companion = dict(start_offset or {}), dict(end_offset or {})
            return self._read_companion(stream, start_companion, end_companion, None, cap)[0]
        end = parse_offset(end_offset)
        if end is None:
            return []
        return self._read(table, parse_offset(start_offset), end, None, cap)[0]

    # ------------------------------------------------------------------ passes and listings

    def _start_clean(self) -> None:
        """Drop what an earlier read left in the prefetcher: after a failure, the next read retries it."""
        self.tap.connection.prefetcher.discard()

    def _pass(self, name: str, offset: dict[str, t.Any], poll: int) -> _Pass | None:
        """The pass a forward read from `offset` belongs to; None while a caught-up table waits for its next.

        The first pass takes the connector's cap. A read from the offset where the last pass caught up starts
        a new pass with a new cap once `poll` seconds have passed since the last cap (never in a one-pass
        connector).
        """
        current = self._passes.get(name)
        if current is None:
            current = self._passes[name] = _Pass(self._cap)
        elif current.caught_up_at == offset:
            if not self._continuous or _waits(current.cap, poll):
                return None
            current = self._passes[name] = _Pass(_now_cap())
        return current

    def _pass_cap(self, name: str) -> str:
        """The current pass's cap, else the first: every batch read so far lies before it."""
        current = self._passes.get(name)
        return self._cap if current is None else current.cap

    def _listed(
        self,
        name: str,
        window: tuple[Key | None, Key | None],
        cap: str,
        listing: Callable[[str | None], Iterable[tuple[Key, Row]]],
    ) -> list[tuple[Key, Row]]:
        """The keyed rows `listing` gives in the window (start, end] (no end: all), in key order.

        Listed from `_since(start)` once per cap for every later start (an earlier start lists again): a pass
        reads a table one batch per call, and without this each batch would list the whole rest of it
        again. Rows changed after the listing are after the cap anyway.
        """
        start, end = window
        listed = self._listings.get(name)
        if (
            listed is None
            or listed.cap != cap
            or (listed.start is not None and (start is None or start < listed.start))
        ):
            listed = self._listings[name] = _Listing(
                cap, start, sorted(listing(self._since(start)), key=_first)
            )
        rows = listed.rows
        low = 0 if start is None else bisect_right(rows, start, key=_first)
        return rows[low : len(rows) if end is None else bisect_right(rows, end, key=_first)]

    def _since(self, start: Key | None) -> str | None:
        """`updated_since` for a read after `start`: 1 ms before its cursor, never before start_date.

        Records that share the start's cursor then come back whether Aha! treats the filter as inclusive.
        """
        since = None if start is None else format_timestamp(parse_timestamp(start[0]) - _ONE_MS)
        return later_start(since, self._settings.start_date)

    # ------------------------------------------------------------------ the idea tables

    def _read(
        self,
        table: str,
        start: Key | None,
        end: Key | None,
        limit: int | None,
        cap: str,
        *,
        quota: int | None = None,
    ) -> tuple[list[dict[str, t.Any]], list[Key]]:
        """The records of the window's ideas after `start` (up to `end`), and the keys of the ideas read.

        At most `limit` records (a child table: through the idea whose records reach it) and `quota` ideas.
        """
        if quota == 0:
            return [], []
        columns = table_columns(self._stream(table))
        parent = t.cast("IdeasStream", self._stream(PARENT_TABLE))
        ideas = self._listed(
            PARENT_TABLE,
            (start, end),
            cap,
            lambda since: keyed(_processed(parent, parent.changed_idea_pages(since)), cap),
        )
        if table == PARENT_TABLE:
            chosen = ideas[: min(limit or len(ideas), quota or len(ideas))]
            return [columns.record(idea) for _, idea in chosen], [key for key, _ in chosen]
        child = t.cast("IdeaChildStream", self._stream(table))
        index = self._vote_index(child) if ideas else None
        # A batch learns what comments_count counts on its own, and makes what it skipped before it returns.
        counts = start_comment_counts(parent.child_streams, [child], self._settings)
        if index is None:
            parent.prefetch_children([idea for _, idea in ideas], [child])
        records: list[dict[str, t.Any]] = []
        read: list[Key] = []
        try:
            for key, idea in ideas:
                context = parent.get_child_context(idea, None)
                rows = (
                    child.records_of_parent(context)
                    if index is None
                    else list(processed(child, index.get(idea["id"]), context))
                )
                records.extend(columns.record(row) for row in rows or ())
                read.append(key)
                if (limit and len(records) >= limit) or (quota and len(read) >= quota):
                    break
        finally:
            child.connection.prefetcher.discard()  # the ideas after the batch's last one
        if counts is not None and child.comment_kind:
            batch = {idea_id for _, idea_id in read}
            for context in counts.deferred(child.comment_kind):
                if context["idea_id"] in batch:
                    rows = child.records_of_parent(dict(context))
                    records.extend(columns.record(row) for row in rows or ())
        return records, read

    def _vote_index(self, child: IdeaChildStream) -> ProxyVoteIndex | None:
        """The proxy votes of the listed window, from one account-wide listing kept with it for later batches.

        None for the other child tables, and where Aha! refuses the listing (per-idea requests then).
        """
        listed = self._listings.get(PARENT_TABLE)
        if not isinstance(child, IdeaProxyVotesStream) or listed is None:
            return None
        if self._votes_listed is None or self._votes_listed[:2] != (listed.cap, listed.start):
            self._votes_listed = (listed.cap, listed.start, child.read_listing(self._since(listed.start)))
        return self._votes_listed[2]

    # ------------------------------------------------------------------ deletes

    def _has_delete_flow(self, stream: AhaStream) -> bool:
        """Deletes are captured and the table has a cursor and records whose destroys Aha! audits."""
        return self._settings.capture_deletes and not _is_snapshot(stream) and bool(stream.delete_audit_types)

    def _read_deletes(
        self, stream: AhaStream, start: Key | None, end: Key | None, limit: int | None, cap: str
    ) -> tuple[list[dict[str, t.Any]], Key | None]:
        """Deleted rows in (start, end] (no end: up to `cap`), at most `limit`, and the last one's key."""
        until = format_timestamp(parse_timestamp(cap) + _ONE_MS)
        cursor = _cursor_field(stream)
        rows = self._listed(
            _deletes(stream.name),
            (start, end),
            cap,
            lambda since: deleted_rows(self.tap, stream, cursor, since, until),
        )[:limit]
        columns = table_columns(stream)
        return [columns.record(row) for _, row in rows], rows[-1][0] if rows else None

    # ------------------------------------------------------------------ companion tables

    def _read_companion(
        self,
        stream: AccountStream,
        start_offset: Mapping[str, t.Any] | None,
        end_offset: Mapping[str, t.Any] | None,
        limit: int | None,
        cap: str,
    ) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
        """A companion table's records after `start_offset` (up to `end_offset`) and the next offset.

        `cdc` tables: in (updated_at, id) order up to the pass's `cap`, `limit` at a time. `snapshot` tables:
        every record once per pass (offset `{"snapshot": cap}`). An endpoint Aha! refuses gives no records,
        with the tap's warning.
        """
        columns = table_columns(stream)
        try:
            if _is_snapshot(stream):
                finished = snapshot_offset(end_offset) if end_offset is not None else {SNAPSHOT: cap}
                if start_offset and snapshot_offset(start_offset) == finished:
                    return [], finished
                return [columns.record(record) for record in self._rows(stream, None)], finished
            start = parse_offset(start_offset)
            end = None if end_offset is None else parse_offset(end_offset)
            if end_offset is not None and end is None:  # a replay up to the very start: nothing
                return [], {}
            if stream.listing_cursor:  # one batch per pass: a pass's records share its listing's moment
                limit = None
            label = None if end is None else end[0]  # a replayed batch keeps the moment it was read with
            after = None if start is None else start[0]
            changed = functools.partial(self._changed, stream, cap=cap, label=label, after=after)
            rows = self._listed(stream.name, (start, end), cap, changed)[:limit]
            next_offset = offset_after(start_offset, start, rows[-1][0] if rows else None)
            return [columns.record(row) for _, row in rows], next_offset
        except EndpointRefusedError as exc:  # the table (or its parent's listing): nothing delivered
            stream.skip_refused(exc, None)
            return [], dict(start_offset or {})

    def _rows(self, stream: AccountStream, since: str | None) -> Iterator[Row]:
        """A companion or roadmap table's full records changed since `since` (None: all of them).

        A child table's (categories, releases, key results, requirements) through its parent's records: a
        parent with a cursor (features) over the same window, one without (workspaces, goals) whole. A parent
        Aha! refuses is skipped alone (`ChildStream.records_of_parent`); any other failure raises, so a read
        is whole or not delivered.
        """
        parent_type = stream.parent_stream_type
        if parent_type is None:
            yield from _processed(stream, stream.pages(None, since))
            return
        parent = t.cast("AccountStream", self._stream(vars(parent_type)["name"]))
        child = t.cast("ChildStream", stream)
        for record in self._rows(parent, since if parent.replication_key else None):
            context = dict(parent.get_child_context(record, None) or {})
            if context:
                pages = stream.pages(context, since)
                yield from child.records_of_parent(context, chain.from_iterable(pages)) or []

    def _changed(
        self, stream: AccountStream, since: str | None, *, cap: str, label: str | None, after: str | None
    ) -> Iterator[tuple[Key, Row]]:
        """A cdc table's records changed since `since`, keyed, up to `cap`.

        Records without a change time (`listing_cursor`) get as their cursor the moment their listing
        started, capped (a version read after the cap comes again, with a later cursor, in the next pass), or
        `label`. Such a table is read one pass per batch, so the next pass lists from that moment. Aha!'s
        clock counts whole seconds: a moment not after the last pass's (`after`) becomes 1 ms after it, still
        before this listing began.
        """
        records = self._rows(stream, since)
        column = stream.listing_cursor
        if column is None:
            yield from keyed(records, cap)
            return
        rows = list(records)
        moment = label or min(cap, stream.listed_at() or cap)
        if label is None and after is not None and moment <= after:
            moment = format_timestamp(parse_timestamp(after) + _ONE_MS)
            if moment > cap:
                return
        for record in rows:
            record[column] = moment
            yield (moment, record["id"]), record

    # ------------------------------------------------------------------ options and streams

    def _stream(self, table: str) -> AhaStream:
        return t.cast("AhaStream", self._tap_instance().streams[table])

    def _tap_instance(self) -> TapAha:
        """The tap whose streams are read (built lazily, so a pickled connector holds no sockets)."""
        if self._embedded is None:
            try:
                self._embedded = _EmbeddedTap(config=tap_config(self._settings), validate_config=True)
            except ConfigValidationError as exc:
                raise SettingsError(f"Invalid settings: {'; '.join(exc.errors) or exc}") from None
        return self._embedded

    def _table_options(self, table_options: Mapping[str, t.Any]) -> tuple[int | None, int, int]:
        """A read's batch size and intervals; connection options may only repeat the connection's."""
        settings, table = split_options(table_options)
        for name, value in settings.items():
            if str(value).strip() != str(self._raw_settings.get(name, "")).strip():
                raise SettingsError(
                    f"Option '{name}' is a connection option: set it on the connection, not per table."
                )
        return (
            batch_limit(table, self._default_batch),
            interval(table, "poll_interval_seconds", self._default_poll),
            interval(table, "snapshot_interval_seconds", self._default_snapshot),
        )

    def _quota(self, current: _Pass) -> int | None:
        """Ideas this pass may still read under `max_ideas` (None: no limit)."""
        if self._settings.max_ideas is None:
            return None
        return max(0, self._settings.max_ideas - current.ideas_read)


def _is_snapshot(stream: AhaStream) -> bool:
    """A companion table without a cursor (nor a listing that stands in for one): read whole once per pass."""
    return isinstance(stream, AccountStream) and not stream.replication_key and not stream.listing_cursor


def _deletes(table: str) -> str:
    """The name of a table's delete flow, for its passes and listings."""
    return f"{table}:deletes"


def _processed(stream: AhaStream, pages: Iterable[Iterable[Row]]) -> Iterator[Row]:
    """The stream's records from its pages, post-processed as the SDK's sync does (`processed`)."""
    for page in pages:
        yield from processed(stream, page)


def _waits(since: str, poll: int) -> bool:
    """Whether a table that caught up at `since` must wait before it lists Aha! again."""
    return dt.datetime.now(dt.UTC) - parse_timestamp(since) < dt.timedelta(seconds=poll)


def _check_table(table_name: str) -> str:
    if table_name not in TABLES:
        raise ValueError(f"Unknown table {table_name!r}; tables: {', '.join(TABLES)}.")
    return table_name


def _cursor_field(stream: AhaStream) -> str:
    """Portal comments have no updated_at; created_at orders their (repeated, identical) rows.

    Idea users have none either, but their listing takes `updated_since`: the moment of the listing that
    read a version (`listing_cursor`) orders them.
    """
    return stream.replication_key or stream.listing_cursor or "created_at"


__all__ = ["CONNECTION_OPTIONS", "TABLES", "TABLE_OPTIONS", "LakeflowConnect"]
