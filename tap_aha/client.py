"""The base REST stream: where every Aha! request is built, paged, throttled, retried and parsed."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import time
import typing as t
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cached_property
from http import HTTPStatus
from urllib.parse import urlsplit

import msgspec
import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import PageNumberPaginator

from tap_aha import prefetch
from tap_aha.errors import AhaAPIError, AuthError, EndpointRefusedError, NotFoundError
from tap_aha.listings import FanOut, Listings, Walk
from tap_aha.prefetch import Abandoned, Prefetcher
from tap_aha.progress import Progress
from tap_aha.ratelimit import RateLimiter
from tap_aha.sdk import SdkStream, tap_of
from tap_aha.timestamps import format_timestamp, later_start, normalize_timestamp
from tap_aha.vote_index import RunVotes

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_aha.settings import AhaSettings

RequestFunc = t.Callable[[requests.PreparedRequest, "Context | None"], requests.Response]

_PAYLOAD = "_aha_payload"
_TRANSIENT = (
    RetriableAPIError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    ConnectionResetError,
)
_decoder = msgspec.json.Decoder()


class RateLimitedError(RetriableAPIError):
    """HTTP 429, with the server's Retry-After in seconds when it sent one."""

    def __init__(self, message: str, response: requests.Response, retry_after: float | None) -> None:
        """Keep the wait the server asked for."""
        super().__init__(message, response)
        self.retry_after = retry_after


@dataclass
class AhaConnection:
    """What every stream of a run shares: settings, one pooled HTTP session, one rate limiter."""

    settings: AhaSettings
    session: requests.Session = field(default_factory=requests.Session)
    limiter: RateLimiter = field(init=False)
    prefetcher: Prefetcher[list[dict[str, t.Any]]] = field(init=False)
    listings: Listings = field(init=False)
    progress: Progress = field(init=False)
    started_at: str = field(default_factory=lambda: format_timestamp(dt.datetime.now(dt.UTC)))
    votes: RunVotes = field(default_factory=RunVotes)  # the run's one account-wide vote listing
    _server_started_at: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        """Size the pool for the prefetch threads and build the limiter from the settings."""
        # The main thread, the children's workers and the listings' workers each hold a connection.
        adapter = HTTPAdapter(pool_maxsize=2 * self.settings.parallel_requests + 1, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # requests re-reads proxy and CA settings from the environment on every request, a fifth of the
        # tap's CPU at low latency: read them once per run instead, honouring the same variables.
        self.session.proxies.update(get_environ_proxies(self.settings.api_url))
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.session.trust_env = False
        self.limiter = RateLimiter(
            per_minute=self.settings.requests_per_minute,
            per_second=self.settings.requests_per_second,
            api_url=self.settings.api_url,
        )
        self.prefetcher = Prefetcher(self.settings.parallel_requests)
        self.listings = Listings(self.settings.parallel_requests)
        self.progress = Progress(
            per_minute=self.settings.requests_per_minute,
            per_second=self.settings.requests_per_second,
            logger=logging.getLogger("tap-aha.progress"),
        )

    def answered(self, response: requests.Response) -> None:
        """Note Aha!'s clock from the run's first answer (`server_started_at`)."""
        if self._server_started_at is None:
            theirs = sent_on_server_clock(response)
            self._server_started_at = self.started_at if theirs is None else min(theirs, self.started_at)

    @property
    def server_started_at(self) -> str:
        """The run's start on Aha!'s clock once an answer came (Date less the round trip), else ours."""
        return self._server_started_at or self.started_at


class HasConnection(t.Protocol):
    """A tap that holds the run's connection (TapAha), as the streams see it."""

    @property
    def connection(self) -> AhaConnection:
        """The run's shared connection."""


def connection_of(tap: Tap) -> AhaConnection:
    """The run's connection, from the tap that holds it."""
    return t.cast("HasConnection", tap).connection


def payload_of(response: requests.Response) -> t.Any:
    """The response body as JSON, decoded once (validate_response caches it on the response)."""
    if _PAYLOAD not in response.__dict__:
        response.__dict__[_PAYLOAD] = _decoder.decode(response.content)
    return response.__dict__[_PAYLOAD]


class AhaPaginator(PageNumberPaginator):
    """Aha!'s 1-indexed pages: go on while `current_page < total_pages` (0 pages for no results)."""

    def __init__(self, page_size: int) -> None:
        """Start at page 1; the page size decides what a full page is when pagination is missing."""
        super().__init__(start_value=1)
        self._per_page = page_size

    def has_more(self, response: requests.Response) -> bool:
        """Trust the envelope; without one, a full page means there may be more."""
        payload = payload_of(response)
        pagination = payload.get("pagination") if isinstance(payload, dict) else None
        if isinstance(pagination, dict):
            current, total = pagination.get("current_page"), pagination.get("total_pages")
            if isinstance(current, int) and isinstance(total, int):
                return current < total
        items = next((v for v in payload.values() if isinstance(v, list)), [])
        return len(items) >= self._per_page


class AhaStream(SdkStream):
    """Common plumbing for all Aha! streams."""

    root_key: t.ClassVar[str]
    string_fields: t.ClassVar[tuple[str, ...]] = ()
    # An endpoint the account's plan or the key's role may refuse (403, or 404 for a missing feature): the
    # stream is then skipped with one warning, and the run goes on without it.
    optional_endpoint: t.ClassVar[bool] = False
    # Aha! classes whose destroy audits are deletes of this stream's records (tap_aha.deletes reads them);
    # a stream with an `idea_id` column gets the audit's associated idea in its tombstones.
    delete_audit_types: t.ClassVar[tuple[str, ...]] = ()
    # Records without a change time whose listing takes `updated_since` (idea users): the Lakeflow connector
    # reads them incrementally, each with this column set to when its listing started (the table's cursor).
    listing_cursor: t.ClassVar[str | None] = None
    # A blip costs half a second; 7 retries still wait about a minute in all. A 429 without Retry-After
    # waits longer from the start: the account's window has to move on.
    backoff_base_seconds: t.ClassVar[float] = 0.5
    rate_limit_backoff_seconds: t.ClassVar[float] = 2.0
    max_backoff_seconds: t.ClassVar[float] = 60.0
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Not refused until Aha! says so."""
        super().__init__(*args, **kwargs)
        self.refused = False

    @property
    def connection(self) -> AhaConnection:
        """The run's shared connection, owned by the tap."""
        return connection_of(tap_of(self))

    @property
    def settings(self) -> AhaSettings:
        """The validated settings."""
        return self.connection.settings

    @property
    def url_base(self) -> str:
        """`https://{subdomain}.aha.io/api/v1` or the `api_url` override."""
        return self.settings.api_url

    @property
    def requests_session(self) -> requests.Session:
        """One pooled session for every stream and thread."""
        return self.connection.session

    @cached_property
    def http_headers(self) -> dict[str, str]:
        """Bearer auth, JSON and a descriptive User-Agent."""
        return {
            "Authorization": f"Bearer {self.settings.api_key}",
            "Accept": "application/json",
            "User-Agent": self.settings.user_agent,
        }

    @property
    def timeout(self) -> int:
        """Per-request timeout in seconds (requests accepts a float here)."""
        return t.cast("int", self.settings.request_timeout)

    def get_replication_key_signpost(self, context: Context | None = None) -> str:
        """Cap bookmarks at the run's start, in Aha!'s timestamp form so string comparison holds."""
        return self.connection.started_at

    def get_new_paginator(self) -> AhaPaginator:
        """Page numbers from 1."""
        return AhaPaginator(self.settings.page_size)

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """Page number and the configured page size (200, the API maximum, by default)."""
        return {"page": next_page_token or 1, "per_page": self.settings.page_size}

    def validate_response(self, response: requests.Response) -> None:
        """Map statuses to retry, stop or skip; decode the body once so a broken one is retried too."""
        status = response.status_code
        where = f"GET {urlsplit(response.request.path_url).path}" if response.request else self.path
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            raise RateLimitedError(f"HTTP 429 for {where}", response, _retry_after(response))
        if self.optional_endpoint and status in {HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND}:
            raise EndpointRefusedError(self._refusal(status, where), status=status, where=where)
        if status in {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN}:
            raise AuthError(_auth_message(status, self.settings.api_url))
        if status == HTTPStatus.NOT_FOUND:
            raise NotFoundError(
                f"Aha! answered HTTP 404 for {where}: check 'subdomain' and 'api_url' ({self.url_base})."
            )
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise RetriableAPIError(f"HTTP {status} {response.reason} for {where}", response)
        if status >= HTTPStatus.BAD_REQUEST:
            raise AhaAPIError(f"Aha! answered HTTP {status} {response.reason} for {where}.")
        try:
            payload = payload_of(response)
        except msgspec.DecodeError:
            msg = f"HTTP {status} for {where} with a body that is not JSON ({len(response.content)} bytes)"
            raise RetriableAPIError(msg, response) from None
        if not isinstance(payload, dict):
            msg = f"HTTP {status} for {where} with JSON that is not an object"
            raise RetriableAPIError(msg, response)

    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        """The records under the endpoint's root key."""
        return records_of(response, self.root_key)

    def skip_sync(self, context: Context | None) -> bool:
        """A stream Aha! refused this run syncs no more (no request for its other parents either)."""
        return self.refused

    def on_refused(self, exc: EndpointRefusedError, context: Context | None) -> None:
        """An optional endpoint Aha! refuses ends this stream or this parent, not the run (`skip_refused`)."""
        self.skip_refused(exc, context)

    def skip_refused(self, exc: EndpointRefusedError, context: Context | None) -> None:
        """The one place that decides what a refusal skips, for the tap and the Lakeflow connector alike.

        Inside a per-parent fan-out (a child stream's read for one parent), that parent alone, with one
        warning naming it: every other parent's records arrive. Anywhere else, the stream for this run.
        """
        if self.parent_stream_type is not None and context:
            ids = {key: value for key, value in context.items() if key.endswith("_id")} or context
            parent = ", ".join(f"{key} {value}" for key, value in ids.items())  # not a nested record list
            kind = vars(self.parent_stream_type).get("name", self.parent_stream_type.__name__)
            self.logger.warning(
                "Aha! refused %s (HTTP %s) for %s (%s): skipping the %s of that one; every other %s "
                "record's arrive.",
                exc.where or self.path, exc.status or "?", parent, kind, self.name, kind,
            )  # fmt: skip
            return
        self.refused = True
        self.stream_state.pop("progress_markers", None)  # its bookmark stays where it was
        self.logger.warning("%s", exc)

    def _refusal(self, status: int, where: str) -> str:
        skipped = ", ".join(f"'{name}'" for name in (self.name, *(c.name for c in self.child_streams)))
        return (
            f"Aha! refused {where} (HTTP {status}): the account's plan or the key's role does not allow "
            f"it. Skipping {skipped}; the other streams go on. Deselect it to silence this warning "
            f"(meltano.yml: select '!{self.name}.*'; a catalog: \"selected\": false; Lakeflow: leave the "
            "table out of the pipeline)."
        )

    def post_process(self, row: dict[str, t.Any], context: Context | None = None) -> dict[str, t.Any] | None:
        """Fields the schema types as strings, as strings: Aha! sends some as numbers now and then."""
        for key in self.string_fields:
            value = row.get(key)
            if value is not None and not isinstance(value, str):
                row[key] = str(value)
        return row

    def walks_ahead(self) -> list[Walk]:
        """The account-wide walks this stream's sync will make, known before any stream syncs.

        The tap starts them all at once (tap_aha.listings); none by default.
        """
        return []

    def get_object(self, path: str, root: str, params: dict[str, t.Any] | None = None) -> t.Any:
        """One GET outside the stream's own listing (an idea's detail), through the same path."""
        return payload_of(self.get_response(path, params, root))[root]

    def get_response(
        self, path: str, params: dict[str, t.Any] | None = None, root: str | None = None
    ) -> requests.Response:
        """One GET through the limiter and retries; `root` names an object root, else the stream's list."""
        prepared = self.build_prepared_request(
            method="GET", url=self.url_base + path, params=params or {}, headers=self.http_headers
        )
        return self.request_decorator(self._send, root=root)(prepared, None)

    def _send(self, prepared: requests.PreparedRequest, context: Context | None) -> requests.Response:
        return self.send(prepared)

    def request_decorator(self, func: RequestFunc, root: str | None = None) -> RequestFunc:
        """Throttle every attempt through the shared limiter; retry transient failures.

        Replaces the SDK's backoff decorator, which neither honours Retry-After nor knows the
        shared limiter. A 429 is Aha! saying "wait": it is waited out for up to `max_rate_limit_wait`
        seconds, however many answers that takes; other failures get `max_retries` retries.
        A 200 whose body lacks the endpoint's root (`root`, else the stream's list) is retried too.
        """
        expected = root or self.root_key
        want_list = root is None

        def send(prepared: requests.PreparedRequest, context: Context | None) -> requests.Response:
            failures = rate_limited = 0
            first_429 = 0.0
            while True:
                if prefetch.abandoned():
                    raise Abandoned
                self.connection.limiter.acquire()
                self.connection.progress.request_sent()
                try:
                    response = func(prepared, context)
                    _check_root(response, expected, want_list=want_list)
                except RateLimitedError as exc:
                    rate_limited += 1
                    wait = exc.retry_after
                    if wait is None:
                        wait = self._backoff(rate_limited, self.rate_limit_backoff_seconds)
                    now = time.monotonic()
                    first_429 = first_429 or now
                    if now - first_429 + wait > self.settings.max_rate_limit_wait:
                        raise self._rate_limit_exhausted(exc, now - first_429) from None
                    self.connection.limiter.pause(wait)
                    self._log_retry(exc, rate_limited, wait)
                except _TRANSIENT as exc:
                    failures += 1
                    if failures > self.settings.max_retries:
                        raise self._gave_up(exc, failures) from None
                    wait = self._backoff(failures, self.backoff_base_seconds)
                    self._log_retry(exc, failures, wait)
                    prefetch.backoff(wait)
                else:
                    self.connection.answered(response)
                    return response

        return send

    def _backoff(self, attempt: int, first: float) -> float:
        base = min(self.max_backoff_seconds, first * 2.0 ** (attempt - 1))
        return base + random.uniform(0, base / 4)  # noqa: S311 - jitter, not cryptography

    def _log_retry(self, exc: Exception, attempt: int, wait: float) -> None:
        self.logger.warning("%s (attempt %d); retrying in %.1f s", _describe(exc), attempt, wait)

    def _gave_up(self, exc: Exception, attempts: int) -> AhaAPIError:
        return AhaAPIError(f"Gave up after {attempts} attempts: {_describe(exc)}.")

    def _rate_limit_exhausted(self, exc: RateLimitedError, waited: float) -> AhaAPIError:
        return AhaAPIError(
            f"Gave up after {waited:.0f} s of {exc} (Aha!'s rate limit; max_rate_limit_wait is "
            f"{self.settings.max_rate_limit_wait:g} s): other integrations are using this account's "
            "300 requests a minute; run again later or raise max_rate_limit_wait."
        )


@dataclass
class _Walk:
    """One pass over a paged listing, and what tells whether the pages shifted under it."""

    totals: set[int] = field(default_factory=set)
    seen: set[int | str] = field(default_factory=set)
    last_total: int = 0

    def page(self, total: object) -> None:
        """Note a page's `total_records`."""
        if isinstance(total, int):
            self.totals.add(total)
            self.last_total = total

    def shifted(self) -> bool:
        """A total that changed, or fewer distinct records than listed, means a page boundary moved."""
        return len(self.totals) > 1 or len(self.seen) < self.last_total


def _compact(record_id: str) -> int | str:
    """An id as an int when it is digits (Aha!'s are): half the memory of a str in the run's id sets."""
    return int(record_id) if record_id.isdigit() else record_id


class ListingStream(AhaStream):
    """A paged listing read whole however it shifts, filtered by `updated_since`, bookmarked on Aha!'s clock.

    Aha! pages by number, so a record created, changed or deleted during a walk moves the page boundaries:
    a walk that saw the listing shift is walked again (up to `max_listing_passes` times) for records not yet
    given, and one a shift skipped in one walk is found by the next.
    """

    max_listing_passes = 4
    # Whether `since_ahead` tells this stream's first walk before any stream syncs: it is then read ahead.
    read_ahead: t.ClassVar[bool] = False
    pages_ahead: t.ClassVar[int] = 2  # pages read ahead of the one the walk reads (0: only the first)
    # Keys every full record carries. A list item missing any of them is a stub, completed with one GET of
    # `detail_path` (its `{id}` filled in; answer root `detail_root`): decided per item from what came back,
    # so a listing that honours `fields=` costs no request more, one that ignores it one per record listed.
    detail_markers: t.ClassVar[tuple[str, ...]] = ()
    detail_path: t.ClassVar[str] = ""
    detail_root: t.ClassVar[str] = ""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Per-run listing state."""
        super().__init__(*args, **kwargs)
        self._updated_since: str | None = None
        self._walk = _Walk()
        self._signpost: str | None = None
        self._signpost_unwritten = False
        self._listed_at: str | None = None

    def get_replication_key_signpost(self, context: Context | None = None) -> str:
        """A bookmark's cap: `server_start`; a full table keeps the run's start, which never changes.

        (The SDK writes the signpost into the state at every sync: one that moved between a child's syncs
        would add STATE messages depending on timing.)
        """
        return self.server_start() if self.replication_key else super().get_replication_key_signpost(context)

    def server_start(self) -> str:
        """The run's start, lowered to Aha!'s own clock once this listing's first answer arrived."""
        return self._signpost or super().get_replication_key_signpost(None)

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """Paging and the change window."""
        params = super().get_url_params(context, next_page_token)
        if self._updated_since:
            params["updated_since"] = self._updated_since
        return params

    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        """Yield each non-empty page whole, its total noted, so a walk knows whether the listing shifted."""
        payload = payload_of(response)
        pagination = payload.get("pagination")
        self._walk.page(pagination.get("total_records") if isinstance(pagination, dict) else None)
        if self._signpost is None:
            self._lower_signpost_to_server_clock(response)
        if self._listed_at is None:
            self._listed_at = sent_on_server_clock(response) or format_timestamp(dt.datetime.now(dt.UTC))
        if records_of(response, self.root_key):
            yield payload

    def walk_pages(self, context: Context | None, since: str | None) -> Iterator[list[dict[str, t.Any]]]:
        """Pages of the records updated since `since` (all when None), each record once."""
        self._updated_since = since
        self._listed_at = None
        given: set[int | str] = set()
        for walk_number in range(1, self.max_listing_passes + 1):
            self._walk = _Walk()
            for page in self.request_records(context):
                items = page[self.root_key]
                keys = [_compact(item["id"]) for item in items]
                self._walk.seen.update(keys)
                yield [item for item, key in zip(items, keys, strict=True) if key not in given]
                given.update(keys)
            if not self._walk.shifted():
                return
            self.logger.warning(
                "The %s listing changed while it was read (walk %d: %d distinct of %s listed); "
                "reading it again so no record is skipped.",
                self.name, walk_number, len(self._walk.seen), sorted(self._walk.totals),
            )  # fmt: skip
        # Records are being edited all the time. One missed by every walk would need a shift at its page
        # boundary during each of them; holding the window instead would make a busy account re-read
        # everything on every run.
        self.logger.warning(
            "The %s listing kept changing during %d walks; going on with the union of what they read.",
            self.name, self.max_listing_passes,
        )  # fmt: skip

    def listed_at(self) -> str | None:
        """When the last `walk_pages` sent its first request, on Aha!'s clock (None before an answer)."""
        return self._listed_at

    def request_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The SDK's paged requests, unless this walk's pages were read ahead (tap_aha.listings)."""
        pages = self.connection.listings.take(
            self.name, self.get_url(context), self.get_url_params(context, None)
        )
        if pages is None:
            yield from super().request_records(context)
            return
        for response in pages:
            yield from self.parse_response(response)

    # ------------------------------------------------------------------ read ahead (tap_aha.listings)

    def walks_ahead(self) -> list[Walk]:
        """The first walk of a stream that syncs on its own (not per parent) and knows its window ahead."""
        syncs = self.selected or self.has_selected_descendents
        if not self.read_ahead or self.parent_stream_type is not None or not syncs:
            return []
        return [self.walk_ahead(None, self.since_ahead())]

    def since_ahead(self) -> str | None:
        """The `updated_since` of this stream's first walk: its window's start (None: everything)."""
        return self.bookmark_ahead() if self.replication_key else None

    def bookmark_ahead(self) -> str | None:
        """Where the SDK will start this stream's window: the later of the bookmark and start_date.

        Read without writing the state (the SDK's own way writes it): walks are planned before the SDK sends
        the state it was given.
        """
        state = self.state_as_given()
        stored = (
            state.get("replication_key_value")
            if state.get("replication_key") == self.replication_key
            else None
        )
        return later_start(
            normalize_timestamp(stored) if isinstance(stored, str) and stored else None,
            self.settings.start_date,
        )

    def state_as_given(self) -> Mapping[str, t.Any]:
        """The stream's state as given, read without creating it (the SDK's `stream_state` would)."""
        state: Mapping[str, t.Any] = tap_of(self).state.get("bookmarks", {}).get(self.name, {})
        return state

    def walk_ahead(self, context: Context | None, since: str | None) -> Walk:
        """The walk `walk_pages(context, since)` will make, with the listings of its selected children."""
        params = self._first_params(context, since)
        return Walk(self, self.listing_url(context), params, self.pages_ahead, self._fan_outs())

    def _first_params(self, context: Context | None, since: str | None) -> dict[str, t.Any]:
        """The first page's parameters of a walk from `since` (`get_url_params` reads the walk's window)."""
        saved, self._updated_since = self._updated_since, since
        try:
            return self.get_url_params(context, None)
        finally:
            self._updated_since = saved

    def _fan_outs(self) -> tuple[FanOut, ...]:
        """A listing per record for each selected child listing (its parameters must not need the context)."""
        return tuple(
            FanOut(
                child, child._first_params(None, child.since_ahead()), child.pages_ahead, child._fan_outs()
            )
            for child in self.child_streams
            if isinstance(child, ListingStream)
            and child.read_ahead
            and (child.selected or child.has_selected_descendents)
        )

    def listing_url(self, context: Mapping[str, t.Any] | None) -> str:
        """The listing's URL for a parent's context."""
        return self.get_url(dict(context) if context else None)

    def fetch_page(self, url: str, params: Mapping[str, t.Any]) -> requests.Response:
        """One page through the limiter and retries (from a worker: the stream's state is not touched)."""
        prepared = self.build_prepared_request(
            method="GET", url=url, params=dict(params), headers=self.http_headers
        )
        return self.request_decorator(self._send)(prepared, None)

    def page_items(self, response: requests.Response) -> list[dict[str, t.Any]]:
        """The page's records."""
        return records_of(response, self.root_key)

    def has_more(self, response: requests.Response) -> bool:
        """Whether a page follows this one."""
        return self.get_new_paginator().has_more(response)

    def child_contexts(self, item: dict[str, t.Any]) -> Iterable[Mapping[str, t.Any]]:
        """The contexts of a record's children, as the SDK will make them."""
        return [context for context in self.generate_child_contexts(item, None) if context is not None]

    def complete(self, items: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
        """Full records for a page: items that carry `detail_markers` as they are, the others' details.

        A record deleted between its listing and its detail (404) is left out with a warning.
        """
        missing = [item for item in items if not all(key in item for key in self.detail_markers)]
        if not missing:
            return items
        details = self.connection.prefetcher.map(self._detail, missing)
        by_id = {item["id"]: detail for item, detail in zip(missing, details, strict=True)}
        return [record for record in (by_id.get(item["id"], item) for item in items) if record is not None]

    def _detail(self, item: dict[str, t.Any]) -> dict[str, t.Any] | None:
        path = self.detail_path.format(id=item["id"])
        try:
            detail: dict[str, t.Any] = self.get_object(path, self.detail_root)
        except (NotFoundError, EndpointRefusedError) as exc:
            if isinstance(exc, EndpointRefusedError) and exc.status != HTTPStatus.NOT_FOUND:
                raise
            self.logger.warning(
                "%s %s was deleted while it was read; skipping it.", self.detail_root.capitalize(), item["id"]
            )
            return None
        if str(detail.get("id")) != item["id"]:
            raise AhaAPIError(f"Aha! answered GET {path} with another record's id.")
        detail["id"] = item["id"]
        return detail

    def _lower_signpost_to_server_clock(self, response: requests.Response) -> None:
        """Never let the bookmark pass the moment, on Aha!'s clock, this run's first request left.

        The answer may arrive in the listing's thread: the state is written later, by `settle_signpost`.
        """
        ours = super().get_replication_key_signpost(None)
        theirs = sent_on_server_clock(response)
        lowered = theirs is not None and theirs < ours
        self._signpost = theirs if theirs is not None and lowered else ours
        self._signpost_unwritten = lowered

    def settle_signpost(self) -> None:
        """Write a signpost lowered to Aha!'s clock into the state, on the sync's thread (before it ends)."""
        if self._signpost_unwritten and self._signpost:
            self._signpost_unwritten = False
            if self.replication_key and self.selected:  # a listing read for another stream keeps no state
                self.write_signpost(self._signpost)


class ChildStream(AhaStream):
    """A stream synced once per parent record (an idea, a workspace), with one flat bookmark.

    The SDK would keep one state partition per parent: state would grow with every parent.
    """

    state_partitioning_keys: t.ClassVar[list[str]] = []  # one small bookmark, not one per parent

    def records_of_parent(
        self, context: Context, records: t.Iterable[dict[str, t.Any]] | None = None
    ) -> list[dict[str, t.Any]] | None:
        """One parent's records, post-processed; None where Aha! refuses that parent (`skip_refused`).

        `records`: that parent's records read another way than `get_records` (lazily, so a refusal surfaces
        here), e.g. over a Lakeflow table's window. All or nothing: a failure after the retries raises, so
        no caller can deliver part of a parent.
        """
        try:
            rows = list(self.get_records(context) if records is None else records)
        except EndpointRefusedError as exc:
            self.skip_refused(exc, context)
            return None
        return list(processed(self, rows, context))

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never, whatever the config says: a version per parent would drop every other parent's rows.

        A full-table child is synced once per parent; ACTIVATE_VERSION tells a target to drop the rows of
        older versions.
        """
        return False


def processed(
    stream: AhaStream, records: t.Iterable[dict[str, t.Any]], context: Context | None = None
) -> Iterator[dict[str, t.Any]]:
    """The stream's records post-processed as the SDK's sync does; those it drops left out."""
    for record in records:
        kept = stream.post_process(record, context)
        if kept is not None:
            yield kept


def records_of(response: requests.Response, root: str) -> list[dict[str, t.Any]]:
    """A list answer's records, each with a string `id` (ids are keys: one without is fatal)."""
    items: list[t.Any] = payload_of(response)[root]
    for item in items:
        if not isinstance(item, dict) or item.get("id") in {None, ""}:
            raise AhaAPIError(
                f"Aha! sent a '{root}' item without an id for GET {response.request.path_url}; "
                "stopping without advancing the bookmark."
            )
        if not isinstance(item["id"], str):
            item["id"] = str(item["id"])
    return items


def sent_on_server_clock(response: requests.Response) -> str | None:
    """When this request left, on Aha!'s clock (its Date header less the round trip); None without a Date.

    Date is truncated to the second, so the value is at or before the moment the request was sent.
    """
    try:
        server_now = parsedate_to_datetime(response.headers["Date"])
    except (KeyError, TypeError, ValueError):
        return None
    sent = server_now.timestamp() - response.elapsed.total_seconds()
    return format_timestamp(dt.datetime.fromtimestamp(sent, dt.UTC))


def _check_root(response: requests.Response, root: str, *, want_list: bool) -> None:
    value = payload_of(response).get(root)
    if not isinstance(value, list if want_list else dict):
        kind = "list" if want_list else "object"
        msg = f"HTTP {response.status_code} for GET {response.request.path_url} without a '{root}' {kind}"
        raise RetriableAPIError(msg, response)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _auth_message(status: int, api_url: str) -> str:
    if status == HTTPStatus.UNAUTHORIZED:
        return (
            f"Aha! rejected the API key (HTTP 401) at {api_url}: check 'api_key' and that it "
            "belongs to this account and has not been revoked."
        )
    return (
        f"Aha! refused access (HTTP 403) at {api_url}: the key's user lacks permission to read "
        "ideas, or 'subdomain' names another account."
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, RetriableAPIError):
        return str(exc)
    return f"{type(exc).__name__} calling Aha!"
