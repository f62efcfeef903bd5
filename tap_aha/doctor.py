"""`tap-aha --doctor`: measure, on the user's own account, what the selected streams assume about Aha!'s API.

Read-only (GET only) and bounded (`MAX_REQUESTS`, whatever the account's size). What it checks comes from the
streams' own declarations, so a new stream is covered without a change here: the endpoints are the selected
streams' paths (and their parents'), a listing relies on `fields=` when its own URL parameters name fields
(`detail_markers`, else those names, mark the full record), a listing is incremental when it has a
replication key or a `bookmark_key`, and the audit types are the streams' `delete_audit_types`.
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

from tap_aha.client import ListingStream, payload_of
from tap_aha.comment_counts import INTERNAL, PORTAL, READINGS, CommentCounts
from tap_aha.deletes import AuditsStream, audit_type
from tap_aha.errors import TapAhaError
from tap_aha.streams import IdeaChildStream, IdeaProxyVotesStream
from tap_aha.timestamps import format_timestamp, parse_timestamp

if t.TYPE_CHECKING:
    import requests

    from tap_aha.client import AhaStream
    from tap_aha.tap import TapAha

MAX_REQUESTS = 60
IDEAS_PAGE = 50  # ideas listed once: the fields= check and the comments_count sample come from them
PAGE = 5  # records asked of the other listings
SAMPLE_WITH_COMMENTS = 12  # ideas counted > 0 whose two comment lists are read
SAMPLE_WITHOUT = 4  # and ideas counted 0
RECENT = dt.timedelta(minutes=1)  # the `updated_since` asked: this long before Aha!'s own clock
CLOCK_SKEW_WARN = 60.0  # seconds
RATE_HEADERS = ("X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Retry-After")
Row = dict[str, t.Any]


@dataclass
class Check:
    """One line of the report: `level` is ok, warn (a sync runs, with the consequence said) or fail."""

    name: str
    level: str
    detail: str

    def as_json(self) -> dict[str, t.Any]:
        """`{"name", "ok", "level", "detail"}`."""
        return {"name": self.name, "ok": self.level == "ok", "level": self.level, "detail": self.detail}


class BudgetSpent(Exception):
    """The doctor's request budget is used up: the checks left say so instead of asking."""


@dataclass
class Doctor:
    """The checks of one `--doctor` run and the facts they established."""

    tap: TapAha
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, t.Any] = field(default_factory=dict)
    sent: int = 0  # requests made
    server_now: dt.datetime | None = None

    # ------------------------------------------------------------------ requests

    def get(self, stream: AhaStream, path: str, params: dict[str, t.Any], root: str | None = None) -> Row:
        """One GET through the tap's own client (limiter, retries, error messages), counted."""
        if self.sent >= MAX_REQUESTS:
            raise BudgetSpent
        self.sent += 1
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
        selected = [t.cast("AhaStream", s) for s in self.tap.streams.values() if s.selected]
        self.facts = {"listings": {}, "refused": []}
        self.check_account()
        samples = self.check_listings(selected)
        self.check_children(selected, samples)
        self.check_audits(selected)
        self.check_comments_count(selected, samples.get("ideas", []))
        self.facts["requests"] = self.sent
        self.facts["seconds"] = round(time.monotonic() - started, 2)
        fatal = [check for check in self.checks if check.level == "fail"]
        return 1 if fatal else 0

    def check_account(self) -> None:
        """GET /me: the key works (else the doctor stops: nothing can be read), the clock, rate headers."""
        ideas = t.cast("AhaStream", self.tap.streams["ideas"])
        sent = dt.datetime.now(dt.UTC)
        try:
            self.sent += 1
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
                + f"; the tap keeps to its own limits ({self.tap.settings.requests_per_minute}/min, "
                f"{self.tap.settings.requests_per_second}/s) and waits out any 429 (Retry-After honoured).",
            )
        )

    def check_listings(self, selected: list[AhaStream]) -> dict[str, list[Row]]:
        """Each listing the selection reads: answered or refused, `fields=` and `updated_since` honoured."""
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
        samples: dict[str, list[Row]] = {}
        for stream in listings:
            try:
                samples[stream.name] = self._check_listing(stream)
            except BudgetSpent:
                self.checks.append(
                    Check(f"{stream.name} listing", "warn", "not checked: request budget spent")
                )
        return samples

    def _check_listing(self, stream: ListingStream) -> list[Row]:
        params = stream.get_url_params(None, None)
        params["per_page"] = IDEAS_PAGE if stream.name == "ideas" else PAGE
        params.pop("updated_since", None)
        facts: dict[str, t.Any] = {"fields_honoured": None, "updated_since_honoured": None}
        self.facts["listings"][stream.name] = facts
        try:
            payload = self.get(stream, stream.path, params)
        except TapAhaError as exc:
            self._refused(stream, exc)
            return []
        items: list[Row] = payload.get(stream.root_key) or []
        total = _total(payload, items)
        self.checks.append(Check(f"GET {stream.path}", "ok", f"answered: {_records(total)} listed."))
        if "fields" in params:
            facts["fields_honoured"] = self._check_fields(stream, params["fields"], items)
        if stream.replication_key or getattr(stream, "bookmark_key", None):
            facts["updated_since_honoured"] = self._check_updated_since(stream, params, total)
        return items

    def _check_fields(self, stream: ListingStream, fields: str, items: list[Row]) -> bool | None:
        markers = tuple(getattr(stream, "detail_markers", ()) or (f for f in fields.split(",") if f != "*"))
        name = f"{stream.name}: fields="
        if not items:
            self.checks.append(Check(name, "ok", "cannot tell: the listing is empty."))
            return None
        if stream.name == "ideas":  # the tap completes each item lacking a marker with GET /ideas/{id}
            complete = sum(all(m in item for m in markers) for item in items)
            honoured = complete == len(items)
            detail = (
                f"honoured: all {len(items)} items listed carry the full idea ({', '.join(markers)}): no "
                "detail request per idea."
                if honoured
                else f"{len(items) - complete} of {len(items)} items lack detail fields: the tap reads each "
                "such idea with GET /ideas/{id}, one more request per changed idea."
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

    def _check_updated_since(
        self, stream: ListingStream, params: dict[str, t.Any], total: int
    ) -> bool | None:
        name = f"{stream.name}: updated_since"
        now = self.server_now or dt.datetime.now(dt.UTC)
        since = format_timestamp(now - RECENT)
        if total == 0:
            self.checks.append(Check(name, "ok", "cannot tell: the listing is empty."))
            return None
        payload = self.get(stream, stream.path, {**params, "updated_since": since})
        items: list[Row] = payload.get(stream.root_key) or []
        newer = _total(payload, items)
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
        self.checks.append(Check(name, "ok" if honoured else "warn", detail))
        return honoured

    def _refused(self, stream: AhaStream, exc: Exception) -> None:
        """A refused endpoint: a warning for an optional stream, else a failure (the sync stops on it)."""
        self.facts["refused"].append(stream.name)
        level = "warn" if stream.optional_endpoint else "fail"
        self.checks.append(Check(f"GET {stream.path}", level, f"refused: {exc}"))

    def check_children(self, selected: list[AhaStream], samples: dict[str, list[Row]]) -> None:
        """One request to each per-record endpoint of the selection, for a record the listings gave."""
        for stream in selected:
            parent = stream.parent_stream_type
            if parent is None:
                continue
            parent_name = vars(parent)["name"]
            records = samples.get(parent_name, [])
            if not records:
                self.checks.append(Check(f"GET {stream.path}", "ok", f"not tried: no {parent_name} record."))
                continue
            context = t.cast("AhaStream", self.tap.streams[parent_name]).get_child_context(records[0], None)
            path = stream.path.format(**(context or {}))
            params = stream.get_url_params(context, None)
            params["per_page"] = PAGE
            try:
                payload = self.get(stream, path, params)
            except BudgetSpent:
                self.checks.append(Check(f"GET {stream.path}", "warn", "not checked: request budget spent"))
                continue
            except TapAhaError as exc:
                self._refused(stream, exc)
                continue
            listed = _total(payload, payload.get(stream.root_key) or [])
            self.checks.append(Check(f"GET {stream.path}", "ok", f"answered: {_records(listed)} for {path}."))

    def check_audits(self, selected: list[AhaStream]) -> None:
        """The audit log (deletes): answered, its order, and which `auditable_type` spelling filters."""
        types = [kind for stream in selected for kind in stream.delete_audit_types]
        if not self.tap.settings.capture_deletes or not types:
            return
        self.facts["audit_type_filter"] = None
        self.facts["audit_order"] = None
        audits = AuditsStream(self.tap, None, format_timestamp(dt.datetime.now(dt.UTC)))
        try:
            every = self.get(audits, audits.path, {"per_page": IDEAS_PAGE})
        except BudgetSpent:
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
            working = [
                spelling for spelling in (kind, audit_type(kind)) if self._filters(audits, spelling, every)
            ]
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

    def _filters(self, audits: AuditsStream, spelling: str, every: Row) -> bool:
        """Whether `auditable_type=spelling` gives only that type, fewer than unfiltered unless all are."""
        try:
            page = self.get(audits, audits.path, {"per_page": IDEAS_PAGE, "auditable_type": spelling})
        except (BudgetSpent, TapAhaError):
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
        sample = sample[: max(0, (MAX_REQUESTS - self.sent) // 2)]
        learner = CommentCounts({INTERNAL, PORTAL}, skipping=False, min_agreeing=3, min_ruled_out=1)
        parent = self.tap.streams["ideas"]
        contexts = [dict(parent.get_child_context(idea, None) or {}) for idea in sample]

        def read(context: Row) -> Row | None:
            for kind in (INTERNAL, PORTAL):
                learner.observe(kind, context, all_comment[kind].fetch_all(context))
            return None

        self.sent += 2 * len(contexts)
        self.facts["comments_count_counts"] = "unknown"
        try:
            self.tap.connection.prefetcher.map(read, contexts)
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
    lines = [
        f"tap-aha --doctor: {doctor.tap.settings.api_url}; {doctor.sent} read-only requests in "
        f"{doctor.facts.get('seconds', 0):g} s.",
        "",
        f"{'CHECK'.ljust(width)}  RESULT  FOUND, AND WHAT THE TAP DOES",
        *(f"{c.name.ljust(width)}  {c.level.upper().ljust(6)}  {c.detail}" for c in doctor.checks),
        "",
        (
            f"A sync cannot run: {failures} check(s) failed."
            if failures
            else f"A sync can run ({warnings} warning{'s' if warnings != 1 else ''})."
        ),
    ]
    return "\n".join(lines)


def run_doctor(tap: TapAha, output_format: str | None) -> int:
    """Check the account, print the report on stdout, return the exit status.

    Fewer retries than a sync: an unreachable host is said in seconds, not after a minute of back-offs.
    """
    tap.__dict__["settings"] = dataclasses.replace(
        tap.settings,
        max_retries=min(tap.settings.max_retries, 2),
        max_rate_limit_wait=min(tap.settings.max_rate_limit_wait, 60.0),
    )
    doctor = Doctor(tap)
    status = doctor.run()
    print(report(doctor, output_format))
    return status
