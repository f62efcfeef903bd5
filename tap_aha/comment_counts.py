"""What an idea's `comments_count` counts, learned during a run, and the comment requests it makes unneeded.

Aha! does not document whether `comments_count` counts internal comments, portal comments or both. A run
learns it from the ideas whose comment lists it reads anyway: each such idea is an observation
(count, internal comments, portal comments), and each of three readings ("internal", "portal", "both")
either predicts the count exactly or is contradicted. A kind of comment becomes skippable once

* every reading that still fits all observations counts that kind (a count of 0 then means none of it),
* each reading that does not count it was contradicted by at least `MIN_RULED_OUT` ideas, and
* at least `MIN_AGREEING` ideas with a non-zero count matched.

From then on an idea whose count is 0 gets no request for that kind. Every request still made is checked
against the readings kept: one contradiction turns skipping off for the rest of the run, and the ideas skipped
so far are handed back (`deferred`) for the caller to fetch before it moves its bookmark or offset past them.

A comment written between the listing and the comment request is not in the listed count: comments created
after the idea's listed `updated_at` are left out of the comparison (adding a comment bumps the idea). A
comment deleted in between makes the count too high: that is a contradiction, which only costs requests.
"""

from __future__ import annotations

import logging
import threading
import typing as t

from tap_aha.timestamps import parse_timestamp

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

INTERNAL = "internal"
PORTAL = "portal"
KINDS = (INTERNAL, PORTAL)
# The readings of comments_count and the kinds each counts.
READINGS: dict[str, frozenset[str]] = {
    INTERNAL: frozenset({INTERNAL}),
    PORTAL: frozenset({PORTAL}),
    "both": frozenset(KINDS),
}
MIN_AGREEING = 10  # ideas with a non-zero count that matched before any request is skipped
MIN_RULED_OUT = 3  # ideas that contradict each reading that does not count a kind, before it is skipped
SAMPLE_IDEAS = 50  # ideas read only to learn or check: counted 0, or the other kind of a table read alone
CHECK_FIRST = 10  # the first check is the 10th idea counted 0 once skipping began, then every 25 % more
CHECK_GROWTH = 1.25

Row = dict[str, t.Any]
Context = t.Mapping[str, t.Any]
Fetch = t.Callable[[Context], list[Row]]
logger = logging.getLogger("tap-aha.comment_counts")


def counted(kind: str, context: Context, rows: Iterable[Row]) -> int:
    """The rows `comments_count` could have counted: not spam, not created after the idea's listed change."""
    listed = context.get("updated_at")
    cutoff = parse_timestamp(listed) if isinstance(listed, str) and listed else None  # parsed once per idea
    total = 0
    for row in rows:
        if kind == PORTAL and row.get("spam") is True:
            continue
        created = row.get("created_at")
        if cutoff is not None and isinstance(created, str) and created and parse_timestamp(created) > cutoff:
            continue
        total += 1
    return total


def listed_count(context: Context) -> int | None:
    """The idea's `comments_count` as listed; None when it is missing or not a whole number."""
    value = context.get("comments_count")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class CommentCounts:
    """The evidence of one run (or one Lakeflow batch), its verdict and the ideas it skipped.

    `active` are the kinds whose comments are read for every idea in this scope. While something is left to
    learn, an idea read for one kind alone has its other kind fetched through `fetchers` (at most
    `SAMPLE_IDEAS` ideas); those rows are only counted, never emitted. Thread-safe: prefetch workers call it.
    """

    def __init__(
        self,
        active: Iterable[str],
        fetchers: Mapping[str, Fetch] | None = None,
        *,
        skip_portal: bool = True,
        skipping: bool = True,
        readings: Iterable[str] | None = None,
        min_agreeing: int = MIN_AGREEING,
        min_ruled_out: int = MIN_RULED_OUT,
        log: logging.Logger = logger,
    ) -> None:
        """No evidence yet.

        `skip_portal` False (spam wanted) never skips portal comments; `skipping` False skips nothing (the
        evidence alone, as `--doctor` gathers it). `readings`: the readings earlier runs' evidence left (a
        resumed first sync's, tap_aha.first_sync), None: all; none left means no skipping.
        """
        self.active = frozenset(active)
        self._fetchers = dict(fetchers or {})
        self._skip_portal = skip_portal
        self._skipping = skipping
        self._min_agreeing = min_agreeing
        self._min_ruled_out = min_ruled_out
        self._log = log
        self._lock = threading.Lock()
        self.fitting = set(READINGS) if readings is None else set(READINGS) & set(readings)  # uncontradicted
        self.ruled_out = dict.fromkeys(READINGS, 0)  # observations that contradicted each reading
        self.agreeing = 0  # observations with a non-zero count that every fitting reading matched
        self.sampled = 0  # ideas whose other kind was fetched only to learn
        self.skippable: frozenset[str] = frozenset()
        self.off = False  # a contradiction after skipping began: no more skipping in this scope
        self.skipped = dict.fromkeys(KINDS, 0)
        self._zeros_read = dict.fromkeys(KINDS, 0)  # ideas counted 0 read (learning, checks)
        self._chances = dict.fromkeys(KINDS, 0)  # ideas counted 0 since skipping began
        self._next_check = dict.fromkeys(KINDS, CHECK_FIRST)
        self._skipped: dict[str, list[Context]] = {kind: [] for kind in KINDS}
        self._pending: dict[str, dict[str, int]] = {}  # idea id -> kind -> counted rows, until both are in

    # ------------------------------------------------------------------ decisions

    def skips(self, kind: str, context: Context) -> bool:
        """Whether this idea's `kind` request is unneeded: the verified count says it is empty.

        Some are made all the same, as checks spread over the run (`CHECK_FIRST`, `CHECK_GROWTH`) while the
        ideas counted 0 read stay within `SAMPLE_IDEAS`: a count that goes wrong only on later ideas (say,
        imported ones counted 0) is then found out too.
        """
        with self._lock:
            if self.off or listed_count(context) != 0:
                return False
            if kind not in self.skippable:
                self._zeros_read[kind] += 1
                return False
            self._chances[kind] += 1
            if self._chances[kind] >= self._next_check[kind] and self._zeros_read[kind] < SAMPLE_IDEAS:
                self._zeros_read[kind] += 1
                after = self._next_check[kind]
                self._next_check[kind] = max(after + 1, int(after * CHECK_GROWTH))
                return False
            self._skipped[kind].append(dict(context))
            self.skipped[kind] += 1
            return True

    def deferred(self, kind: str) -> list[Context]:
        """The ideas skipped for `kind` that must be fetched after all (skipping was turned off), once."""
        with self._lock:
            if not self.off:
                return []
            contexts, self._skipped[kind] = self._skipped[kind], []
            return contexts

    def outstanding(self) -> frozenset[str]:
        """The kinds with requests skipped and not handed back: ideas whose comments rely on the count."""
        with self._lock:
            return frozenset(kind for kind, contexts in self._skipped.items() if contexts)

    def readings(self) -> frozenset[str]:
        """The readings no observation contradicted yet: a resumed first sync checks earlier runs by them."""
        with self._lock:
            return frozenset(self.fitting)

    @property
    def verdict(self) -> str:
        """`internal`, `portal` or `both`: the kinds the count is proven to cover; else `unknown`."""
        with self._lock:
            covered = {kind for kind in KINDS if self._covers(kind)}
            return next((name for name, kinds in READINGS.items() if kinds == covered), "unknown")

    # ------------------------------------------------------------------ evidence

    def observe(self, kind: str, context: Context, rows: list[Row]) -> None:
        """Check and learn from one idea's `kind` comments, fetched in full."""
        count = listed_count(context)
        if count is None:
            return
        idea_id = str(context["idea_id"])
        found = counted(kind, context, rows)
        other = PORTAL if kind == INTERNAL else INTERNAL
        with self._lock:
            self._check_alone(kind, count, found, idea_id)
            if not self.fitting or (count == 0 and self.skippable):
                return  # nothing to learn (an idea counted 0 may have had its other kind skipped)
            seen = self._pending.setdefault(idea_id, {})
            seen[kind] = found
            if other not in seen:
                if other in self.active:
                    return  # the other kind's request completes the observation
                if self.off or other not in self._fetchers or self.sampled >= SAMPLE_IDEAS:
                    self._pending.pop(idea_id, None)
                    return
                self.sampled += 1
        if other not in seen:  # the learning sample, outside the lock: it is a request
            seen[other] = counted(other, context, self._fetchers[other](context))
        with self._lock:
            self._pending.pop(idea_id, None)
            self._learn(count, seen[INTERNAL], seen[PORTAL], idea_id)

    def _learn(self, count: int, internal: int, portal: int, idea_id: str) -> None:
        """One full observation: drop the readings it contradicts, then recompute what may be skipped."""
        predicted = {INTERNAL: internal, PORTAL: portal, "both": internal + portal}
        observation = (
            f"idea {idea_id}: comments_count {count}, {internal} internal and {portal} portal comments"
        )
        self._drop([name for name, value in predicted.items() if value != count], observation)
        if self.off:
            return
        if not self.fitting:
            self._log.info("comments_count fits no reading (%s): every comment request is made.", observation)
            return
        if count:
            self.agreeing += 1
        before = self.skippable
        self.skippable = frozenset(
            kind
            for kind in KINDS
            if self._skipping and self._covers(kind) and (kind == INTERNAL or self._skip_portal)
        )
        if self.skippable != before:
            self._log.info(
                "comments_count counts %s comments (%d ideas with comments agree; other readings "
                "contradicted by %s ideas): no %s request for an idea whose count is 0.",
                " and ".join(sorted(self.skippable)), self.agreeing,
                ", ".join(f"{name} {n}" for name, n in self.ruled_out.items() if name not in self.fitting),
                " or ".join(sorted(self.skippable)),
            )  # fmt: skip

    def _covers(self, kind: str) -> bool:
        """Every fitting reading counts `kind`, each one that does not was ruled out enough, enough agreed."""
        if not self.fitting or self.agreeing < self._min_agreeing:
            return False
        return all(kind in READINGS[name] for name in self.fitting) and all(
            self.ruled_out[name] >= self._min_ruled_out
            for name, kinds in READINGS.items()
            if kind not in kinds
        )

    def _check_alone(self, kind: str, count: int, found: int, idea_id: str) -> None:
        """Once skipping began, one kind alone: it contradicts a reading that counts it with a lower count.

        A reading that counts that kind alone is contradicted by any other count.
        """
        if self.off or not self.skippable:
            return
        contradicted = [
            name
            for name in self.fitting
            if kind in READINGS[name] and (found > count or (READINGS[name] == {kind} and found != count))
        ]
        self._drop(contradicted, f"idea {idea_id}: comments_count {count}, {found} {kind} comments")

    def _drop(self, names: Iterable[str], why: str) -> None:
        """Rule these readings out; a kind being skipped that is no longer proven turns skipping off."""
        for name in names:
            self.ruled_out[name] += 1
            self.fitting.discard(name)
        if self.skippable and not self.off and not all(self._covers(kind) for kind in self.skippable):
            self._turn_off(why)

    def _turn_off(self, why: str) -> None:
        self.off = True
        self._log.warning(
            "comments_count no longer matches the comments read (%s): every comment request is made from now "
            "on, and the %d skipped ones are made before the run ends.",
            why, sum(len(contexts) for contexts in self._skipped.values()),
        )  # fmt: skip
