"""`tap-aha --doctor`: measure, on the user's own account, what the selected streams assume about Aha!'s API.

Read-only (GET only) and bounded (`MAX_REQUESTS`, whatever the account's size and however many streams are
selected). What it checks comes from the streams' own declarations, so a new stream is covered without a
change here: the endpoints are the selected streams' paths (and their parents'), a listing relies on
`fields=` when its own URL parameters name fields (`detail_markers`, else those names, mark the full
record), a listing is incremental when it has a replication key or a `bookmark_key`, and the audit types are
the streams' `delete_audit_types`.

The budget goes first to the key, then to one request per endpoint and per `updated_since` probe up to what
the audit log and the `comments_count` sample need (`reserve`), then to those two, then to the probes left.
A probe the budget does not reach is reported as not checked, never guessed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from tap_aha.client import ListingStream, connection_of, payload_of
from tap_aha.comment_counts import INTERNAL, PORTAL, READINGS, CommentCounts
from tap_aha.deletes import AuditsStream, audit_type
from tap_aha.errors import TapAhaError
from tap_aha.streams import IdeaChildStream, IdeaProxyVotesStream
from tap_aha.timestamps import format_timestamp, parse_timestamp

if t.TYPE_CHECKING:
    from collections.abc import Callable

    import requests
    from singer_sdk import Tap

    from tap_aha.client import AhaConnection, AhaStream
    from tap_aha.settings import AhaSettings

MAX_REQUESTS = 60
IDEAS_PAGE = 50  # ideas listed once: the fields= check and the comments_count sample come from them
PAGE = 5  # records asked of the other listings
SAMPLE_WITH_COMMENTS = 12  # ideas counted > 0 whose two comment lists are read
SAMPLE_WITHOUT = 4  # and ideas counted 0
AUDIT_REQUESTS = 3  # an unfiltered page of /audits, then one per auditable_type spelling
RECENT = dt.timedelta(minutes=1)  # the `updated_since` asked: this long before Aha!'s own clock
CLOCK_SKEW_WARN = 60.0  # seconds
RATE_HEADERS = ("X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Retry-After")
Row = dict[str, t.Any]


@dataclass
class Check:
    """One line of the report.

    `level` is ok, warn (a sync runs, with the consequence said), fail (it cannot) or skip (not checked: the
    request budget did not reach it).
    """

    name: str
    level: str
    detail: str

    def as_json(self) -> dict[str, t.Any]:
        """`{"name", "ok", "level", "detail"}`."""
        return {"name": self.name, "ok": self.level == "ok", "level": self.level, "detail": self.detail}


class BudgetSpent(Exception):
    """The doctor's request budget (or the part of it a phase may use) is used up."""


@dataclass
class Listed:
    """What one listing's first page told: its records (a sample for its children), total and parameters."""

    items: list[Row]
    total: int
    params: dict[str, t.Any]


@dataclass
class Doctor:
    """The checks of one `--doctor` run and the facts they established."""

    tap: Tap
    budget: int = MAX_REQUESTS
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, t.Any] = field(default_factory=dict)
    server_now: dt.datetime | None = None
    limit: int = MAX_REQUESTS  # the requests the current phase may reach (`budget` less what is reserved)
    listed: dict[str, Listed | None] = field(default_factory=dict)  # probed listings (None: refused)
    probes: list[tuple[str, Callable[[], None]]] = field(default_factory=list)  # one request each, in order
    _first: int = field(default=-1, init=False)

    @property
    def connection(self) -> AhaConnection:
        """The tap's connection: its limiter, retries and request count serve the doctor too."""
        return connection_of(self.tap)

    @property
    def settings(self) -> AhaSettings:
        """The run's settings."""
        return self.connection.settings

    @property
    def sent(self) -> int:
        """Requests made by the doctor, retries included."""
        requests = self.connection.progress.requests
        if self._first < 0:
            self._first = requests
        return requests - self._first

    # ------------------------------------------------------------------ requests

    def get(self, stream: AhaStream, path: str, params: dict[str, t.Any], root: str | None = None) -> Row:
        """One GET through the tap's own client (limiter, retries, error messages), within the budget."""
        if self.sent >= min(self.limit, self.budget):
            raise BudgetSpent
        response = stream.get_response(path, params, root)
        self._note_clock(response)
        payload: Row = payload_of(response)
        return payload

    def _note_clock(self, response: requests.Response) -> None:
        try:
            server = parsedate_to_datetime(response.headers["Date"])
        except (KeyError, TypeError, ValueError):
            return
        self.server_now = server

    # ------------------------------------------------------------------ the run

    def run(self) -> int:
        """Every check; the exit status (0: a sync can run, 1: it cannot)."""
        started = time.monotonic()
        _ = self.sent  # counting starts here
        selected = [t.cast("AhaStream", s) for s in self.tap.streams.values() if s.selected]
        self.facts = {"listings": {}, "refused": [], "not_checked": []}
        self.check_account()
        self.plan_probes(selected)
        self.take_probes(max(self.budget - self.reserve(selected), self.sent + 1))  # the first: ideas
        self.limit = self.budget
        self.check_audits(selected)
        self.check_comments_count(selected, (self.listed.get("ideas") or Listed([], 0, {})).items)
        self.take_probes(self.budget)
        for name, _probe in self.probes:
            self._not_checked(name)
        self.facts["requests"] = self.sent
        self.facts["seconds"] = round(time.monotonic() - started, 2)
        fatal = [check for check in self.checks if check.level == "fail"]
        return 1 if fatal else 0

    def _not_checked(self, name: str) -> None:
        self.facts["not_checked"].append(name)
        self.checks.append(
            Check(name, "skip", f"not checked: the doctor's {self.budget} requests went to the checks above.")
        )

    def reserve(self, selected: list[AhaStream]) -> int:
        """The requests kept from the endpoint probes for the audit log and the comments_count sample."""
        audits = AUDIT_REQUESTS if self._audit_types(selected) else 0
        comments = any(isinstance(s, IdeaChildStream) and s.comment_kind for s in selected)
        return audits + (2 * (SAMPLE_WITH_COMMENTS + SAMPLE_WITHOUT) if comments else 0)

    def check_account(self) -> None:
        """GET /me: the key works (else the doctor stops: nothing can be read), the clock, rate headers."""
        ideas = t.cast("AhaStream", self.tap.streams["ideas"])
        sent = dt.datetime.now(dt.UTC)
        try:
            response = ideas.get_response("/me", {}, "user")
        except TapAhaError as exc:
            raise TapAhaError(f"--doctor: a sync cannot run: {exc}") from None
        received = dt.datetime.now(dt.UTC)
        self._note_clock(response)
        user = payload_of(response).get("user") or {}
        who = f" as {user['name']}" if isinstance(user, dict) and user.get("name") else ""
        skew = None
        if self.server_now is not None:
            # Date counts whole seconds: compare with the middle of the round trip, truncated likewise.
            local = sent + (received - sent) / 2
            skew = round((local.replace(microsecond=0) - self.server_now).total_seconds(), 1)
        self.facts["clock_skew_seconds"] = skew
        clock = (
            "Aha! sent no Date header: bookmarks follow this machine's clock"
            if skew is None
            else f"this machine's clock is {abs(skew):g} s {'ahead of' if skew >= 0 else 'behind'} Aha!'s "
            "(bookmarks follow Aha!'s clock, so a skew costs nothing)"
        )
        level = "warn" if skew is not None and abs(skew) > CLOCK_SKEW_WARN else "ok"
        self.checks.append(Check("key and account", level, f"GET /me answered{who}; {clock}."))
        headers = {name: response.headers[name] for name in RATE_HEADERS if name in response.headers}
        self.facts["rate_limit_headers"] = headers
        self.checks.append(
            Check(
                "rate-limit headers",
                "ok",
                (", ".join(f"{k}: {v}" for k, v in headers.items()) if headers else "none sent")
                + f"; the tap keeps to its own limits ({self.settings.requests_per_minute}/min, "
                f"{self.settings.requests_per_second}/s) and waits out any 429 (Retry-After honoured).",
            )
        )

    # ------------------------------------------------------------------ endpoint probes

    def plan_probes(self, selected: list[AhaStream]) -> None:
        """A probe per listing the selection reads (ideas first), per child endpoint, per `updated_since`."""
        listings: list[ListingStream] = []
        for stream in selected:
            top = stream
            while top.parent_stream_type is not None:
                top = t.cast("AhaStream", self.tap.streams[vars(top.parent_stream_type)["name"]])
            if isinstance(top, ListingStream) and top not in listings:
                listings.append(top)
            if isinstance(stream, IdeaProxyVotesStream):  # it reads the account-wide vote listing
                votes = t.cast("ListingStream", self.tap.streams["idea_votes"])
                if votes not in listings:
                    listings.append(votes)
        listings.sort(key=lambda s: s.name != "ideas")  # the comments_count sample comes from its page
        for listing in listings:
            self.facts["listings"][listing.name] = {"fields_honoured": None, "updated_since_honoured": None}
        self.probes = [
            *((f"GET {s.path}", lambda s=s: self._check_listing(s)) for s in listings),
            *((f"GET {s.path}", lambda s=s: self._check_child(s)) for s in selected if s.parent_stream_type),
            *(
                (f"{s.name}: updated_since", lambda s=s: self._check_updated_since(s))
                for s in listings
                if s.replication_key or getattr(s, "bookmark_key", None)
            ),
        ]

    def take_probes(self, limit: int) -> None:
        """The probes the requests up to `limit` reach, in order; the others are kept for later."""
        self.limit = limit
        left: list[tuple[str, Callable[[], None]]] = []
        for name, probe in self.probes:
            try:
                probe()
            except BudgetSpent:
                left.append((name, probe))
        self.probes = left

    def _check_listing(self, stream: ListingStream) -> None:
        params = stream.get_url_params(None, None)
        params["per_page"] = IDEAS_PAGE if stream.name == "ideas" else PAGE
        params.pop("updated_since", None)
        try:
            payload = self.get(stream, stream.path, params)
        except TapAhaError as exc:
            self.listed[stream.name] = None
            self._refused(stream, exc)
            return
        items: list[Row] = payload.get(stream.root_key) or []
        total = _total(payload, items)
        self.listed[stream.name] = Listed(items, total, params)
        self.checks.append(Check(f"GET {stream.path}", "ok", f"answered: {_records(total)} listed."))
        if "fields" in params:
            self.facts["listings"][stream.name]["fields_honoured"] = self._check_fields(
                stream, params["fields"], items
            )

    def _check_fields(self, stream: ListingStream, fields: str, items: list[Row]) -> bool | None:
        markers = tuple(getattr(stream, "detail_markers", ()) or (f for f in fields.split(",") if f != "*"))
        name = f"{stream.name}: fields="
        if not items:
            self.checks.append(Check(name, "ok", "cannot tell: the listing is empty."))
            return None
        if stream.detail_path:  # the tap completes each item lacking a marker with one GET of its record
            complete = sum(all(m in item for m in markers) for item in items)
            honoured = complete == len(items)
            detail = (
                f"honoured: all {len(items)} items listed carry the full record ({', '.join(markers)}): no "
                "detail request per record."
                if honoured
                else f"{len(items) - complete} of {len(items)} items lack detail fields: the tap reads each "
                f"such record with GET {stream.detail_path}, one more request per changed record."
            )
        else:
            absent = [m for m in markers if not any(m in item for item in items)]
            honoured = not absent
            detail = (
                f"honoured: the items carry {', '.join(markers)}."
                if honoured
                else f"ignored: no item carries {', '.join(absent)}; those columns arrive empty."
            )
        self.checks.append(Check(name, "ok" if honoured else "warn", detail))
        return honoured

    def _check_updated_since(self, stream: ListingStream) -> None:
        if stream.name not in self.listed:
            raise BudgetSpent  # its listing is not probed yet
        listed = self.listed[stream.name]
        if listed is None:
            return  # refused: said once, on its GET line
        name = f"{stream.name}: updated_since"
        now = self.server_now or dt.datetime.now(dt.UTC)
        since = format_timestamp(now - RECENT)
        if listed.total == 0:
            self.checks.append(Check(name, "ok", "cannot tell: the listing is empty."))
            return
        payload = self.get(stream, stream.path, {**listed.params, "updated_since": since})
        items: list[Row] = payload.get(stream.root_key) or []
        newer, total = _total(payload, items), listed.total
        stamps = [parse_timestamp(i["updated_at"]) for i in items if isinstance(i.get("updated_at"), str)]
        older = [stamp for stamp in stamps if stamp < now - RECENT]
        honoured = not older and (newer < total or len(stamps) == len(items))
        if honoured:
            detail = (
                f"honoured: asked for changes since {since} (a minute before Aha!'s clock), {newer:,} of "
                f"{total:,} records came, none older: each run reads only what changed."
            )
        else:
            detail = (
                f"ignored: asked for changes since {since}, {newer:,} of {total:,} records came"
                + (f", {len(older)} of them older" if older else "")
                + ": each run reads this whole listing again (correct, but every run costs a full read)."
            )
        self.facts["listings"][stream.name]["updated_since_honoured"] = honoured
        self.checks.append(Check(name, "ok" if honoured else "warn", detail))

    def _refused(self, stream: AhaStream, exc: Exception) -> None:
        """A refused endpoint: a warning for an optional stream, else a failure (the sync stops on it)."""
        self.facts["refused"].append(stream.name)
        level = "warn" if stream.optional_endpoint else "fail"
        self.checks.append(Check(f"GET {stream.path}", level, f"refused: {exc}"))

    def _check_child(self, stream: AhaStream) -> None:
        """One request to a per-record endpoint of the selection, for a record its parent's listing gave."""
        parent_name = vars(stream.parent_stream_type)["name"]
        parent = t.cast("AhaStream", self.tap.streams[parent_name])
        top = parent
        while top.parent_stream_type is not None:  # a grandchild: its parent's records are not listed here
            top = t.cast("AhaStream", self.tap.streams[vars(top.parent_stream_type)["name"]])
        if top.name not in self.listed:
            raise BudgetSpent  # the listing its sample comes from is not probed yet
        records = (self.listed.get(parent_name) or Listed([], 0, {})).items
        if not records:
            self.checks.append(Check(f"GET {stream.path}", "ok", f"not tried: no {parent_name} record."))
            return
        context = parent.get_child_context(records[0], None)
        path = stream.path.format(**(context or {}))
        params = stream.get_url_params(context, None)
        params["per_page"] = PAGE
        try:
            payload = self.get(stream, path, params)
        except TapAhaError as exc:
            self._refused(stream, exc)
            return
        listed = _total(payload, payload.get(stream.root_key) or [])
        self.checks.append(Check(f"GET {stream.path}", "ok", f"answered: {_records(listed)} for {path}."))

    def check_audits(self, selected: list[AhaStream]) -> None:
        """The audit log (deletes): answered, its order, and which `auditable_type` spelling filters."""
        types = self._audit_types(selected)
        if not types:
            return
        self.facts["audit_type_filter"] = None
        self.facts["audit_order"] = None
        audits = AuditsStream(self.tap, None, format_timestamp(dt.datetime.now(dt.UTC)))
        try:
            every = self.get(audits, audits.path, {"per_page": IDEAS_PAGE})
        except BudgetSpent:
            self._not_checked("GET /audits")
            return
        except TapAhaError as exc:
            self.facts["refused"].append("audits")
            self.checks.append(
                Check("GET /audits", "warn", f"refused ({exc}): deletes are not captured; the sync runs.")
            )
            return
        items: list[Row] = every.get("audits") or []
        total = _total(every, items)
        ids = [int(a["id"]) for a in items if str(a.get("id", "")).isdigit()]
        order = (
            "id ascending"
            if ids == sorted(ids)
            else "id descending"
            if ids == sorted(ids, reverse=True)
            else "unordered"
        )
        self.facts["audit_order"] = order if len(ids) > 1 else None
        self.checks.append(
            Check(
                "GET /audits",
                "ok",
                f"answered: {total:,} audits, {order if len(ids) > 1 else 'order unknown (under 2 audits)'}; "
                "the tap walks it with after_id and falls back to numbered pages, so any order works.",
            )
        )
        declared = {audit_type(kind): kind for kind in types}
        seen = Counter(audit_type(str(a.get("auditable_type", ""))) for a in items)
        kind = next((declared[name] for name, _ in seen.most_common() if name in declared), types[0])
        if total == 0:
            detail = "cannot tell which auditable_type spelling filters: the log is empty"
        else:
            try:
                working = [
                    spelling
                    for spelling in (kind, audit_type(kind))
                    if self._filters(audits, spelling, every)
                ]
            except BudgetSpent:
                self._not_checked("audit type spelling")
                return
            self.facts["audit_type_filter"] = working[0] if working else None
            detail = (
                f"auditable_type={' and ='.join(working)} filter{'s' if len(working) == 1 else ''}"
                if working
                else f"neither auditable_type={kind} nor ={audit_type(kind)} filters"
            )
        self.checks.append(
            Check(
                "audit type spelling",
                "ok",
                f"{detail}; the tap reads every destroy audit and matches either spelling itself.",
            )
        )

    def _audit_types(self, selected: list[AhaStream]) -> list[str]:
        """The audit types whose deletes the selection captures (none without `capture_deletes`)."""
        if not self.settings.capture_deletes:
            return []
        return [kind for stream in selected for kind in stream.delete_audit_types]

    def _filters(self, audits: AuditsStream, spelling: str, every: Row) -> bool:
        """Whether `auditable_type=spelling` gives only that type, fewer than unfiltered unless all are."""
        try:
            page = self.get(audits, audits.path, {"per_page": IDEAS_PAGE, "auditable_type": spelling})
        except TapAhaError:
            return False
        found: list[Row] = page.get("audits") or []
        unfiltered: list[Row] = every.get("audits") or []
        wanted = audit_type(spelling)
        own = bool(found) and all(audit_type(str(a.get("auditable_type", ""))) == wanted for a in found)
        all_of_it = all(audit_type(str(a.get("auditable_type", ""))) == wanted for a in unfiltered)
        return own and (_total(page, found) < _total(every, unfiltered) or all_of_it)

    def check_comments_count(self, selected: list[AhaStream], ideas: list[Row]) -> None:
        """What comments_count counts, from a sample of ideas with and without comments (both lists each)."""
        streams = {s.comment_kind: s for s in selected if isinstance(s, IdeaChildStream) and s.comment_kind}
        if not streams:
            return
        all_comment = {
            s.comment_kind: s
            for s in t.cast("list[AhaStream]", list(self.tap.streams.values()))
            if isinstance(s, IdeaChildStream) and s.comment_kind
        }
        counted = [i for i in ideas if isinstance(i.get("comments_count"), int)]
        sample = [i for i in counted if i["comments_count"] > 0][:SAMPLE_WITH_COMMENTS]
        sample += [i for i in counted if i["comments_count"] == 0][:SAMPLE_WITHOUT]
        sample = sample[: max(0, (self.budget - self.sent) // 2)]
        learner = CommentCounts({INTERNAL, PORTAL}, skipping=False, min_agreeing=3, min_ruled_out=1)
        parent = self.tap.streams["ideas"]
        contexts = [dict(parent.get_child_context(idea, None) or {}) for idea in sample]

        def read(context: Row) -> Row | None:
            if self.sent + 2 > self.budget:  # a list longer than a page, or a retry, took the rest
                return None
            for kind in (INTERNAL, PORTAL):
                learner.observe(kind, context, all_comment[kind].fetch_all(context))
            return None

        self.facts["comments_count_counts"] = "unknown"
        try:
            self.connection.prefetcher.map(read, contexts)
        except TapAhaError as exc:
            self.checks.append(Check("comments_count", "warn", f"not checked: {exc}"))
            return
        verdict = learner.verdict
        self.facts["comments_count_counts"] = verdict
        with_comments = sum(1 for i in sample if i["comments_count"] > 0)
        readings = [
            f"'{name}' "
            + ("fits all" if name in learner.fitting else f"contradicted by {learner.ruled_out[name]}")
            for name in READINGS
        ]
        found = f"{len(sample)} ideas ({with_comments} counted > 0) against both comment lists: " + ", ".join(
            readings
        )
        if verdict == "unknown":
            does = "no reading is proven, so every changed idea costs one request per comment kind"
        else:
            covered = sorted(READINGS[verdict])
            if len(learner.fitting) > 1:
                found += f" (the sample did not tell {' from '.join(sorted(learner.fitting))} apart)"
            does = (
                f"it counts {' and '.join(covered)} comments; a run proves this again on its own ideas (10 "
                f"with comments) and then skips the {' and '.join(covered)} requests of ideas counted 0"
            )
        self.checks.append(
            Check("comments_count", "warn" if verdict == "unknown" else "ok", f"{found}: {does}.")
        )


def _records(count: int) -> str:
    return f"{count:,} record{'' if count == 1 else 's'}"


def _total(payload: Row, items: list[Row]) -> int:
    pagination = payload.get("pagination")
    total = pagination.get("total_records") if isinstance(pagination, dict) else None
    return total if isinstance(total, int) else len(items)


def report(doctor: Doctor, output_format: str | None) -> str:
    """The checks as a table a person reads, or (`json`) one object `{"checks": [...], "facts": {...}}`."""
    if output_format == "json":
        return json.dumps({"checks": [c.as_json() for c in doctor.checks], "facts": doctor.facts}, indent=2)
    width = max(len(c.name) for c in doctor.checks)
    warnings = sum(c.level == "warn" for c in doctor.checks)
    failures = sum(c.level == "fail" for c in doctor.checks)
    skipped = sum(c.level == "skip" for c in doctor.checks)
    lines = [
        f"tap-aha --doctor: {doctor.settings.api_url}; {doctor.sent} read-only requests in "
        f"{doctor.facts.get('seconds', 0):g} s.",
        "",
        f"{'CHECK'.ljust(width)}  RESULT  FOUND, AND WHAT THE TAP DOES",
        *(f"{c.name.ljust(width)}  {c.level.upper().ljust(6)}  {c.detail}" for c in doctor.checks),
        "",
        (
            f"A sync cannot run: {failures} check(s) failed."
            if failures
            else f"A sync can run ({warnings} warning{'s' if warnings != 1 else ''}"
            + (f"; {skipped} not checked within the budget" if skipped else "")
            + ")."
        ),
    ]
    return "\n".join(lines)


def run_doctor(tap: Tap, output_format: str | None) -> int:
    """Check the account, print the report on stdout, return the exit status.

    Fewer retries than a sync: an unreachable host is said in seconds, not after a minute of back-offs.
    """
    connection = connection_of(tap)
    connection.settings = dataclasses.replace(
        connection.settings,
        max_retries=min(connection.settings.max_retries, 2),
        max_rate_limit_wait=min(connection.settings.max_rate_limit_wait, 60.0),
    )
    doctor = Doctor(tap)
    status = doctor.run()
    print(report(doctor, output_format))
    return status
