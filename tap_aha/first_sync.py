"""Resumable first syncs: a long ideas read in windows of `created_at`, with a STATE after each window.

A first sync of a large account runs for an hour and is the run a deploy or a timeout kills. The SDK cannot
resume it (Aha! gives the ideas in no useful order, so the bookmark is promoted only at the stream's end).
Here such a read is cut into windows of `created_at` (`created_since` / `created_before` on the listing),
oldest first, each a page or two; after each window, its ideas and their children written, a STATE records
`bookmarks.ideas.first_sync = {"started_at": S, "done_before": T}`. A run started from that state reads
only the windows from T on, and ends with the ideas bookmark at S.

Invariants:

1. Windowed or not is decided by the first listing request, the same unfiltered page 1 as before: a listing
   of at most `WINDOWED_OVER_PAGES` pages is read on as before, with no other request, so an empty or
   one-page account, and an ordinary incremental run, cost what they did. That is what "a bookmark older
   than the data" means here: whatever the bookmark (or none), a run whose `updated_since` listing holds
   more pages is windowed. A state with a marker resumes windowed. `max_ideas` (a trial) never is.
2. The windows cover every `created_at`: the first has no `created_since`, the last no `created_before`
   (it takes the ideas created during the run too). Whether Aha! makes either bound inclusive is not
   documented: a window asks `created_before` its end plus 1 ms and the next starts at that end, so an idea
   created on a boundary is listed whatever the rule; one listed by both windows of a run is written once
   (an Aha! that compares whole seconds lists the ideas of the end's second in both windows: the window's
   ideas created within `STRAY_MS` of its end are remembered for the next one).
3. The marker says: every idea created before T (and updated since the bookmark) was written with its
   children, by runs whose reads all started at or after S. It is written only after the window's last idea
   (the SDK writes an idea's children first, then the idea, then asks for the next one), and T only grows.
4. S is the first windowed run's start on Aha!'s clock (its first listing request) and survives every
   resume. Every idea was read at or after S, so whatever changed later has `updated_at` >= S: when the last
   window is done the ideas bookmark is S, and the next run lists every idea changed, created or moved
   (a `created_at` that jumped into a finished window) during any of the runs. Deletes: a first run writes
   its delete bookmark after its streams, too late for a killed run; so every window's STATE carries it
   already (the run's start on Aha!'s clock, at or before S: `deletes.keep_deletes_bookmark`), and a
   resumed run reads the deletes since then, those of the ideas and votes the killed run wrote included.
5. Window sizes come from counts (`total_records` of each window's first page) and never decide what is
   read: a too-large guess costs one request, then a smaller window is tried. The state stays O(1).
   The listings are read ahead as the run starts (tap_aha.listings): the ideas' read-ahead request is the
   one this module makes first (`first_window`), the unfiltered page 1, or a resumed run's next window.
6. Comment requests skipped for a count of 0 (tap_aha.comment_counts) rely on a reading of
   `comments_count`. Within a run, a contradiction hands them back before the next STATE. Across runs the
   marker's `skipped` = {"before", "kinds", "readings"} keeps them (O(1)): a resumed run drops the readings
   its own evidence contradicts, and when none is left, it lists the windows before `before` again after
   its last window (pages only) and requests those comments of the ideas counted 0, before the bookmark.
   A STATE written in between carries the empty `readings`: the debt outlives another kill.
7. Aha! is assumed to apply `created_since` / `created_before` to each idea's `created_at`, at a precision
   of a millisecond or coarser, with either inclusivity (invariant 2). A listing that holds an idea created
   more than `STRAY_MS` outside the window asked shows the assumption fails (the filters ignored or read
   otherwise), and so does an error answer (HTTP 400) to a window when the unwindowed page 1 had none:
   windows would never shrink, or never be read, so the ideas not done yet (created from T on, or without
   a readable `created_at`) are read in one unwindowed listing after one warning. (A resumed run asks no
   unwindowed page 1: if the error was not the window's, that listing raises it again.) A list item's
   `created_at` that is missing, null or in another form is taken as it comes: only the windows' bounds
   and this check read it, and neither drops an idea for it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
import typing as t
from dataclasses import dataclass

from tap_aha.errors import AhaAPIError, StateError
from tap_aha.timestamps import format_timestamp, is_timestamp, normalize_timestamp, parse_timestamp

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Generator, Iterable, Iterator

    from tap_aha.progress import Progress
    from tap_aha.settings import AhaSettings

Row = dict[str, t.Any]
MARKER = "first_sync"  # state["bookmarks"]["ideas"]["first_sync"]
NOTE = "Note"  # the SDK's remark in an unsorted stream's progress markers
RESUMABLE_NOTE = "Resumable: see first_sync."  # shorter than the SDK's: the state stays small
SKIPPED = "skipped"  # the marker's record of comment requests skipped in its finished windows
GOAL_WINDOW_PAGES = 1  # the size a window is aimed at
MAX_WINDOW_PAGES = 2  # the size a window may have
WINDOWED_OVER_PAGES = 4  # a listing of more pages is read in windows; a smaller one as before
STRAY_MS = 1000  # an idea listed further outside its window means Aha! ignored the window (invariant 7)
STRAYED = f"Aha! listed ideas created more than {STRAY_MS} ms outside it"
_MS = 1
_EPOCH_MS = 0


class _Connection(t.Protocol):
    @property
    def progress(self) -> Progress:
        """The run's progress lines."""


class Comments(t.Protocol):
    """What a first sync uses of the run's comment counts (tap_aha.comment_counts.CommentCounts)."""

    def readings(self) -> frozenset[str]:
        """The readings of `comments_count` no observation contradicted."""
        ...

    def outstanding(self) -> frozenset[str]:
        """The kinds of comment requests skipped and not handed back."""
        ...


class IdeasListing(t.Protocol):
    """What a first sync uses of the ideas stream (tap_aha.streams.IdeasStream, a floor above)."""

    created_window: dict[str, str]  # the `created_at` window of the listing's requests

    @property
    def settings(self) -> AhaSettings:
        """The run's settings."""

    @property
    def connection(self) -> _Connection:
        """The run's connection."""

    @property
    def logger(self) -> logging.Logger:
        """The stream's logger."""

    @property
    def stream_state(self) -> dict[str, t.Any]:
        """The stream's bookmark in the tap's state."""

    @property
    def replication_key(self) -> str | None:
        """`updated_at`."""

    def server_start(self) -> str:
        """The run's first listing request, on Aha!'s clock."""

    def listed_total(self) -> int:
        """`total_records` of the last page read."""

    def walk_pages(self, context: None, since: str | None) -> Iterator[list[Row]]:
        """The listing (in `created_window`) of the ideas updated since `since`."""

    def changed_idea_pages(
        self, since: str | None, listing: Iterable[list[Row]] | None = None
    ) -> Generator[list[Row], None, None]:
        """Full ideas of a listing's pages."""

    def write_state(self) -> None:
        """A STATE message now."""

    def write_signpost(self, value: str, context: None = None) -> None:
        """The bookmark's cap."""


class WindowEnd(list[Row]):
    """An empty page that ends a window: every idea created before `before` has been given."""

    def __init__(self, before: str) -> None:
        """No ideas; only where the finished part now ends."""
        super().__init__()
        self.before = before


def check_marker(value: object) -> None:
    """Raise StateError (one line) unless `value` is a marker this module wrote."""
    problem = 'must be {"started_at": <timestamp>, "done_before": <timestamp>} (and "skipped", if any)'
    required = {"started_at", "done_before"}
    if not isinstance(value, dict) or not required <= set(value) <= {*required, SKIPPED}:
        raise StateError(f"The state bookmark of stream 'ideas' has a '{MARKER}' marker that {problem}.")
    _check_timestamps(value, required, MARKER)
    skipped = value.get(SKIPPED)
    if skipped is None:
        return
    lists = ("kinds", "readings")
    if (
        not isinstance(skipped, dict)
        or set(skipped) != {"before", *lists}
        or not all(isinstance(skipped[key], list) for key in lists)
        or not all(isinstance(item, str) for key in lists for item in skipped[key])
    ):
        raise StateError(
            f"The state bookmark of stream 'ideas' has a '{MARKER}' marker whose '{SKIPPED}' must be "
            '{"before": <timestamp>, "kinds": [<text>], "readings": [<text>]}.'
        )
    _check_timestamps(skipped, {"before"}, f"{MARKER}.{SKIPPED}")


def _check_timestamps(value: dict[str, t.Any], keys: set[str], where: str) -> None:
    for key in sorted(keys):
        if not is_timestamp(value[key]):
            raise StateError(
                f"The state bookmark of stream 'ideas' has a '{where}' marker whose '{key}' is not an "
                "ISO-8601 timestamp."
            )


@dataclass(frozen=True)
class Skipped:
    """Comment requests skipped in finished windows (tap_aha.comment_counts), owed if their reading falls.

    Ideas created before `before` may have had their comments of `kinds` skipped, each for a count of 0 under
    every reading of `comments_count` in `readings` (those no observation contradicted). Empty `readings`:
    later evidence contradicted them all, and the requests are owed before the first sync ends.
    """

    before: str
    kinds: frozenset[str]
    readings: frozenset[str]

    @classmethod
    def of(cls, value: t.Any) -> Skipped | None:
        """From a checked marker's `skipped` (None: nothing skipped)."""
        if not isinstance(value, dict):
            return None
        before = normalize_timestamp(value["before"])
        return cls(before, frozenset(value["kinds"]), frozenset(value["readings"]))

    def as_json(self) -> dict[str, t.Any]:
        """For the marker: O(1), a kind or two and at most three readings."""
        return {"before": self.before, "kinds": sorted(self.kinds), "readings": sorted(self.readings)}

    def joined(self, other: Skipped | None) -> Skipped:
        """Both runs' skipped requests: valid only where both readings hold."""
        if other is None:
            return self
        before = max(self.before, other.before)
        return Skipped(before, self.kinds | other.kinds, self.readings & other.readings)


@dataclass
class _Upper:
    """A known point above the next window's start: the ideas created before `at` (ms), from the origin."""

    at: int
    count: int


class WindowPlanner:
    """Chooses each window's end from the counts Aha! answered so far; needs no request of its own."""

    def __init__(self, *, page_size: int, total: int | None, sample: list[int]) -> None:
        """`total` ideas listed in all (None: unknown, ask), `sample` the created_at (ms) of some of them."""
        self.goal = GOAL_WINDOW_PAGES * page_size
        self.limit = MAX_WINDOW_PAGES * page_size
        self.done = 0  # ideas counted in finished windows
        # All of them, as if none was created after the newest one seen (a guess: the listing's order is
        # not documented; a wrong one costs requests, never ideas).
        self.rest = None if total is None else _Upper(max(sample, default=_now()) + _MS, total)
        self.upper: _Upper | None = None  # the smallest end found too large for the current window
        if _oldest_first(sample):  # page 1 lists the oldest ideas: the first window ends at its newest
            self.upper = _Upper(max(sample) + _MS, len(sample))
        self._sample = sample
        self._gallop = 0  # first-window ends tried below the sample's oldest idea
        self._empty = False  # the last window held nothing: halve rather than interpolate

    def end_for(self, start: int | None) -> int | None:
        """The end (ms) of a window from `start` (None: from the beginning); None: an open last window."""
        low = _EPOCH_MS if start is None else start
        if self.upper is not None and self.upper.at <= low:
            self.upper = None
        if self.rest is not None and self.rest.at <= low + _MS:
            self.rest = None  # the ideas go on past where they were guessed to end: ask again
        known = self.upper or self.rest
        if known is None or (self.upper is None and known.count - self.done <= self.limit):
            return None  # what is left fits in one window, or how much is left is not known yet
        if known.count - self.done <= self.limit:
            return known.at
        if start is None and self._sample:  # the first window: below the sample's oldest idea
            end = self._below_sample(known.count)
            if end > low:
                return end
        share = self.goal / max(known.count - self.done, 1)
        if self._empty:
            share = max(share, 0.5)
        return max(low + _MS, min(known.at - _MS, low + int((known.at - low) * share)))

    def _below_sample(self, total: int) -> int:
        """Where the ideas older than the sample leave `goal` of them, at the sample's own density.

        Exact when Aha! lists the newest first at an even pace; each guess found too large goes twice as
        far down.
        """
        oldest, newest = min(self._sample), max(self._sample)
        span, size = max(newest - oldest, 1000), len(self._sample)
        extrapolated = span * max(total - size - self.goal, 0) // size
        if extrapolated:
            return oldest - extrapolated * (1 << self._gallop)
        return oldest - span * ((1 << self._gallop) - 1)

    def too_big(self, start: int | None, end: int | None, count: int, page: list[int]) -> bool:
        """Whether a window of `count` ideas must be cut smaller; if so, note what the count taught.

        `page` holds the created_at (ms) of the window's first page: its newest is taken as the window's
        (it is, when Aha! lists the newest first), so ideas bunched at the start of a long window are
        found in a few guesses instead of one halving per request. A page listed oldest first (its dates
        ascending) holds the window's oldest ideas instead: the next window ends at its newest.
        """
        low = _EPOCH_MS if start is None else start
        if count <= self.limit or (end is not None and end - low <= _MS):
            return False  # small enough, or a millisecond that cannot be split
        at = _now() if end is None else end
        if _oldest_first(page) and low < max(page) + _MS < at:  # the window's oldest: the next ends there
            if end is None:
                self.rest = _Upper(max(at, low + 2 * _MS), self.done + count)
            self.upper = _Upper(max(max(page) + _MS, low + 2 * _MS), self.done + len(page))
            return True
        if page and low < max(page) + _MS < at:
            at = max(page) + _MS
        if end is None:
            self.rest = _Upper(max(at, low + 2 * _MS), self.done + count)
        else:
            self.upper = _Upper(max(at, low + 2 * _MS), self.done + count)
            self._gallop += 1
        return True

    def taken(self, count: int) -> None:
        """A window was read: the next one starts at its end."""
        self.done += count
        self._empty = count == 0
        self._sample = []


class FirstSync:
    """One run's windowed read of the ideas, its marker and its end; see the module's invariants."""

    def __init__(self, stream: IdeasListing) -> None:
        """A resumed run takes S and T from the state's marker (checked when the state was read)."""
        self.stream = stream
        marker = stream.stream_state.get(MARKER)
        self.started_at: str | None = None
        self.done_before: str | None = None
        if isinstance(marker, dict):
            self.started_at = normalize_timestamp(marker["started_at"])
            self.done_before = normalize_timestamp(marker["done_before"])
        # Earlier runs' skipped comment requests (invariant 6), and this run's not handed back yet.
        self.carried = Skipped.of(marker.get(SKIPPED)) if isinstance(marker, dict) else None
        self.own: Skipped | None = None
        self._since: str | None = None
        self.windowed = False
        self.windows = 0
        self.probes_cut = 0  # window guesses that were too large: a request each
        self._given: set[str] = set()  # ids of the window just finished that the next one may list again

    def readings(self) -> frozenset[str] | None:
        """The readings of `comments_count` earlier runs' skips left standing (None: no skips carried).

        This run's comment counts start from them: a reading their evidence ruled out is not learned anew,
        and once none is left nothing is skipped (the owed requests included).
        """
        return None if self.carried is None else self.carried.readings

    def pages(self, since: str | None) -> Generator[list[Row], None, None]:
        """Pages of full ideas updated since `since`, with a WindowEnd after each finished window."""
        stream = self.stream
        page_size = stream.settings.page_size
        self._since = since
        if self.started_at is None or stream.settings.max_ideas is not None:
            walk = self._walk(since, None, None)
            first = next(walk, None)
            total = stream.listed_total()
            small = first is None or total <= WINDOWED_OVER_PAGES * page_size
            if small or stream.settings.max_ideas is not None:
                yield from stream.changed_idea_pages(since, _chained(first, walk))  # as before: invariant 1
                return
            walk.close()
            self.started_at = stream.server_start()
            stream.connection.progress.listed(total)
            planner = WindowPlanner(page_size=page_size, total=total, sample=_created(first))
            start = None
        else:
            stream.logger.info(
                "Resuming the first sync started at %s: the ideas created before %s are done.",
                self.started_at, self.done_before,
            )  # fmt: skip
            planner = WindowPlanner(page_size=page_size, total=None, sample=[])
            start = _ms(self.done_before) if self.done_before else None
        self.windowed = True
        yield from self._windows(since, planner, start)

    def _windows(
        self, since: str | None, planner: WindowPlanner, start: int | None
    ) -> Generator[list[Row], None, None]:
        stream = self.stream
        ask_left = planner.rest is None  # a resumed run first asks how much is left
        while True:
            end = planner.end_for(start)
            walk = self._walk(since, start, end)
            try:
                first = next(walk, None)
            except AhaAPIError as error:  # a request the unwindowed page 1 passed: the window refused
                yield from self._unwindowed(since, start, end, f"Aha! refused it ({error})")
                return
            count = stream.listed_total()
            if ask_left:
                ask_left = False
                stream.connection.progress.listed(count)
            if _strays(first, start, end):
                walk.close()
                yield from self._unwindowed(since, start, end, STRAYED)
                return
            if planner.too_big(start, end, count, _created(first)):
                walk.close()
                self.probes_cut += 1
                continue
            checked = _Within(start, end)
            yield from self._window_pages(since, end, checked.pages(first, walk))
            if checked.strayed:
                yield from self._unwindowed(since, start, end, STRAYED)
                return
            planner.taken(count)
            self.windows += 1
            if end is None:
                stream.created_window = {}
                return
            self.done_before = _format(end)
            if count:  # an empty window wrote nothing: the next one's STATE records both
                yield WindowEnd(self.done_before)
            start = end

    def _unwindowed(
        self, since: str | None, start: int | None, end: int | None, why: str
    ) -> Generator[list[Row], None, None]:
        """The rest in one unwindowed listing: Aha! did not take the window asked as assumed (invariant 7)."""
        asked = ", ".join(f"{key}={value}" for key, value in window_params(start, end).items())
        self.stream.logger.warning(
            "Windowed ideas listing (%s): %s. Aha! does not apply created_since / created_before as this "
            "tap assumes: reading the ideas not done yet in one unwindowed listing instead; a kill during it "
            "resumes at the last window done.",
            asked, why,
        )  # fmt: skip
        done = None if self.done_before is None else _ms(self.done_before)
        pages = self._walk(since, None, None)
        yield from self._window_pages(since, None, (_not_before(page, done) for page in pages))
        self.stream.created_window = {}

    def _walk(
        self, since: str | None, start: int | None, end: int | None
    ) -> Generator[list[Row], None, None]:
        """The listing of one window (all ideas when both ends are open), requested once iterated."""
        self.stream.created_window = window_params(start, end)
        yield from self.stream.walk_pages(None, since)

    def _window_pages(
        self, since: str | None, end: int | None, raw: Iterator[list[Row]]
    ) -> Iterator[list[Row]]:
        """A window's full ideas, less those the previous window already gave (near its end: invariant 2).

        They are dropped from the list items, before a compact one costs a detail request.
        """
        given, self._given = self._given, set()

        def fresh() -> Iterator[list[Row]]:
            for items in raw:
                new = [item for item in items if item["id"] not in given]
                if end is not None:
                    self._given.update(item["id"] for item in new if _on_or_after(item, end - STRAY_MS))
                yield new

        return self.stream.changed_idea_pages(since, fresh())

    def window_done(self, end: WindowEnd, comments: Comments | None) -> None:
        """Every idea of the window and its children are written: record it in a STATE message now."""
        stream = self.stream
        self.note_comments(comments, end.before)
        marker: dict[str, t.Any] = {"started_at": self.started_at, "done_before": end.before}
        skipped = self.carried.joined(self.own) if self.carried else self.own
        if skipped is not None:
            marker[SKIPPED] = skipped.as_json()
        stream.stream_state[MARKER] = marker
        markers = stream.stream_state.get("progress_markers")
        if isinstance(markers, dict) and NOTE in markers:  # the SDK's "not resumable": not true of a window
            markers[NOTE] = RESUMABLE_NOTE
        stream.write_state()

    def note_comments(self, comments: Comments | None, before: str | None) -> None:
        """What this run's comment counts say now: the earlier runs' readings that still hold, its own skips.

        None: no comment counts this run (no comment stream, or none skipped): nothing learned or skipped.
        """
        if comments is None:
            return
        fits = comments.readings()
        if self.carried is not None and self.carried.readings:
            self.carried = Skipped(self.carried.before, self.carried.kinds, self.carried.readings & fits)
        outstanding = comments.outstanding()
        if not outstanding:
            self.own = None  # never skipped, or handed back and fetched after a contradiction
        elif before is not None:
            self.own = Skipped(before, outstanding, fits)

    def owed(self, comments: Comments | None) -> tuple[frozenset[str], Iterator[list[Row]]] | None:
        """After the last window: the kinds and the ideas whose comments earlier runs skipped, if now owed.

        Owed when this run's evidence contradicts every reading those skips relied on: the finished windows
        are listed again (ideas created before `before`, updated since the run's bookmark: pages only) for
        the caller to request the comments of those counted 0. None: nothing owed.
        """
        self.note_comments(comments, None)
        carried = self.carried
        if not self.windowed or carried is None or carried.readings:
            return None
        self.carried = None
        self.stream.logger.warning(
            "comments_count contradicts the reading an interrupted run relied on to skip comment requests: "
            "listing the ideas created before %s again for the comments of those counted 0.",
            carried.before,
        )
        walk = self._walk(self._since, None, _ms(carried.before))
        return carried.kinds, self._pages_then_no_window(walk)

    def _pages_then_no_window(self, walk: Iterator[list[Row]]) -> Iterator[list[Row]]:
        try:
            yield from self.stream.changed_idea_pages(self._since, walk)
        finally:
            self.stream.created_window = {}

    def finish(self) -> None:
        """All windows read: the ideas bookmark becomes S, and the marker goes (invariant 4).

        The bookmark is set directly too, so a STATE written from here on (a SIGTERM) already holds it.
        """
        if not self.windowed or self.started_at is None:
            return
        stream = self.stream
        state = stream.stream_state
        key = stream.replication_key
        state.update(replication_key=key, replication_key_value=self.started_at)
        state["progress_markers"] = {"replication_key": key, "replication_key_value": self.started_at}
        stream.write_signpost(self.started_at)
        state.pop(MARKER, None)
        stream.logger.info(
            "First sync done in %d windows (%d guesses cut smaller); the ideas bookmark is its start, %s.",
            self.windows, self.probes_cut, self.started_at,
        )  # fmt: skip


def window_params(start: int | None, end: int | None) -> dict[str, str]:
    """The listing's `created_at` parameters of the window from `start` to `end` (ms; None: open)."""
    window: dict[str, str] = {}
    if start is not None:
        window["created_since"] = _format(start)
    if end is not None:
        window["created_before"] = _format(end + _MS)  # see invariant 2
    return window


def first_window(marker: object, max_ideas: int | None) -> dict[str, str]:
    """The `created_at` window of a run's first ideas request: a resumed first sync's next one, else none.

    The tap reads that request ahead (tap_aha.listings), so it is the one `FirstSync.pages` makes first:
    a resumed run's first window starts at `done_before` and is left open (how much is left is not known).
    """
    if not isinstance(marker, dict) or max_ideas is not None:
        return {}
    return window_params(_ms(marker["done_before"]), None)


def _chained(first: list[Row] | None, rest: Iterator[list[Row]]) -> Iterator[list[Row]]:
    return itertools.chain([] if first is None else [first], rest)


class _Within:
    """A window's pages until one lists an idea outside it (`strayed`): Aha! ignored the window."""

    def __init__(self, start: int | None, end: int | None) -> None:
        self.start, self.end = start, end
        self.strayed = False

    def pages(self, first: list[Row] | None, walk: Generator[list[Row], None, None]) -> Iterator[list[Row]]:
        """`first` as the caller checked it, then the rest of the walk, each page checked."""
        if first is not None:
            yield first
        for page in walk:
            if _strays(page, self.start, self.end):
                walk.close()
                self.strayed = True
                return
            yield page


def _strays(page: list[Row] | None, start: int | None, end: int | None) -> bool:
    """Whether the page lists an idea created more than STRAY_MS outside the window `start`..`end`."""
    for idea in page or []:
        created = _created_ms(idea)
        if created is None:
            continue
        if start is not None and created < start - STRAY_MS:
            return True
        if end is not None and created > end + STRAY_MS:
            return True
    return False


def _not_before(page: list[Row], done: int | None) -> list[Row]:
    """The ideas of a page not created before `done` (those are written: invariant 3)."""
    return page if done is None else [idea for idea in page if _on_or_after(idea, done)]


def _on_or_after(idea: Row, end: int) -> bool:
    created = _created_ms(idea)
    return created is None or created >= end


def _oldest_first(page: list[int]) -> bool:
    """Whether a page's dates (in listing order) ascend: Aha! lists the oldest first."""
    return len(page) > 1 and page[0] < page[-1] and all(a <= b for a, b in itertools.pairwise(page))


def _created(page: list[Row] | None) -> list[int]:
    return [ms for ms in map(_created_ms, page or []) if ms is not None]


def _created_ms(idea: Row) -> int | None:
    """An idea's `created_at` in ms; None when it has none Python reads (the window still lists it)."""
    created = idea.get("created_at")
    if not isinstance(created, str):
        return None
    try:
        return _ms(created)
    except (ValueError, OverflowError):
        return None


def _now() -> int:
    return int(time.time() * 1000)


def _ms(value: str) -> int:
    return int(parse_timestamp(value).timestamp() * 1000)


def _format(ms: int) -> str:
    return format_timestamp(dt.datetime.fromtimestamp(ms / 1000, dt.UTC))
