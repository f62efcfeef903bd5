"""A fake Aha! REST API v1 server for tap-aha's tests, benchmarks and offline simulator.

It reproduces the behaviour described in ``shared/reference/aha-api.md``, including the awkward
parts a tap must survive: compact list items versus full detail records, pages computed per
request (so writes during a walk shift page boundaries), ``total_pages`` 0 for empty results,
nested ids whose type drifts between int and str, portal comments without ``updated_at``,
per-account rate limits and injectable transport faults.

Standard library only, so it runs anywhere the tap's tests run.

Conventions worth knowing (the real service leaves them undocumented):

* ``RequestLog.path`` is the full path without query (``/api/v1/ideas``); ``count(prefix)`` counts
  logged requests whose path starts with ``"/api/v1" + prefix``; ``inject(path_prefix=...)`` matches
  the path *after* ``/api/v1``.
* What the real ``comments_count`` counts is unverified, so ``comments_count`` (the constructor's and the
  CLI's) picks one of ``COMMENTS_COUNT_MODES``: ``internal`` (internal comments only), ``portal`` (non-spam
  portal comments only), ``both``, ``unreliable`` (both, but 0 on every third idea that has comments: by
  ``int(id) % 3``), or the default ``mixed``: internal comments only for some ideas and internal plus
  non-spam portal comments for others (``comments_count_includes_portal(idea_id)`` tells which).
* Nested id types (``categories[].parent_id/project_id``, ``custom_fields[].id``) are mixed int/str
  across ideas in the stored data. With ``nested_id_drift=True`` detail responses also flip them on
  every second request of the same idea (off by default so a tap's output can be compared exactly
  with ``ideas()`` even when an idea is fetched twice).
* ``add_idea``/``update_idea`` accept ``created_at``/``updated_at`` as strings or datetimes.
* Rate limits count only authenticated, non-faulted requests that were answered (not the rejected
  ones), in sliding 1 s / 60 s windows shared by all keys (one account).
  ``X-Ratelimit-Limit`` is the per-minute limit (300 when none is enforced), ``-Remaining`` what is
  left of it in the current 60 s window, ``-Reset`` the epoch second (by ``clock``) when the oldest
  counted request leaves that window.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import json
import math
import random
import signal
import socket
import struct
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

JSON = dict[str, Any]

API_PREFIX = "/api/v1"
HOST = "https://fakeco.aha.io"
PORTAL_HOST = "https://fakeco.ideas.aha.io"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 200
DEFAULT_MINUTE_LIMIT = 300
SLOW_SECONDS = 5.0
FORBIDDEN_KEY = "forbidden-key"
ORDERS = ("created_desc", "updated_desc", "updated_asc", "id")
COMMENTS_COUNT_MODES = ("mixed", "internal", "portal", "both", "unreliable")
RANDOM_FAULTS = ("500", "502", "503", "reset")  # what a request fails with at random (`fault_share`)
FAULTS = frozenset(
    {
        "429",
        "500",
        "502",
        "503",
        "401",
        "403",
        "404",
        "truncated",
        "invalid_json",
        "reset",
        "slow",
        "empty_200",
    }
)
COMPACT_KEYS = (
    "id",
    "reference_num",
    "name",
    "created_at",
    "updated_at",
    "workflow_status",
    "description",
    "url",
    "resource",
)
_STATUS_KEYS = ("id", "name", "position", "complete", "color")
_DESCRIPTION_KEYS = ("id", "body", "created_at", "updated_at", "attachments")
# Audited types as Aha! answers them (paths) and as its query examples spell them (class names).
_AUDIT_CLASSES = {
    "ideas/idea": "Ideas::Idea",
    "ideas/idea_endorsement": "Ideas::IdeaEndorsement",
    "ideas/idea_comment": "Ideas::IdeaComment",
    "comment": "Comment",
    "feature": "Feature",
    "epic": "Epic",
    "release": "Release",
    "release_phase": "ReleasePhase",
    "initiative": "Initiative",
    "strategic_imperative": "StrategicImperative",
    "key_result": "KeyResult",
    "requirement": "Requirement",
    "task": "Task",
    "user": "User",
    "ideas/idea_theme": "Ideas::IdeaTheme",
    "page": "Page",
}
_AUDIT_PATHS = {name: path for path, name in _AUDIT_CLASSES.items()}
_TRUE_VALUES = frozenset({"true", "1", "t", "yes", "on"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DESC_FRAGMENTS = (
    "<p>As a product manager I want to export the roadmap so I can share it with executives.</p>",
    "<p>Customers keep asking for this &mdash; see the thread from ACME Corp.</p>",
    "<p>Ünïcödé check: naïve café, Zürich, São Paulo, 東京, Ελληνικά — emoji 🚀🔥👍.</p>",
    "<p>They said: \"we can't live without it\" and 'it should be the default'.</p>",
    "\n<ul>\n<li>Step one: open the report</li>\n<li>Step two: click export</li>\n</ul>\n",
    "<p>Line one<br>\nLine two\nLine three with a tab\tand a backslash \\ in it.</p>",
    "<blockquote>Original request: &lt;script&gt; tags must be escaped &amp; shown.</blockquote>",
    "<p><strong>Impact:</strong> 12 enterprise accounts, ~$1.2M ARR at stake.</p>",
    '<p><a href="https://example.com/spec?id=1&amp;v=2">Spec link</a> for details.</p>',
    "<p>日本語のテキストと中文文本, 以及 한국어 텍스트.</p>",
)
_COMMENT_BODIES = (
    "<p>+1, we need this too.</p>",
    "<p>Discussed with engineering — maybe next quarter.</p>",
    '<p>Customer "Globex" mentioned it again 🙏</p>',
    "<p>Duplicate of an older request?\nPlease check.</p>",
    "<p>Merci beaucoup ! Ça serait génial.</p>",
    "<p>Workaround: use the CSV export &amp; a macro.</p>",
)
_VERBS = ("Allow", "Support", "Add", "Improve", "Enable", "Let users use", "Provide", "Show")
_OBJECTS = (
    "export of roadmaps",
    "bulk editing of ideas",
    "SSO login",
    "dark mode",
    "CSV import",
    "custom dashboards",
    "Slack notifications",
    "the Jira sync",
    "offline mode",
    "multi-currency invoices",
    "audit logs",
    "saved filters",
)
_SUFFIXES = (
    "",
    "",
    "",
    " for admins",
    " in the portal",
    " — urgent",
    " (Café team)",
    " für Teams",
    " 🚀",
    ' with "quotes"',
    " on iOS/Android",
    " 日本語",
)
_TAGS = ("api", "export", "ux", "mobile", "security", "billing", "integrations", "performance")
_COLORS = ("#dce7c6", "#f6d8a8", "#c7dbf0", "#e5c7f0", "#f0c7c7", "#d0d0d0")
_PEOPLE = (
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Zoë Bränd",
    "Jürgen Müller",
    "Siobhán O'Neill",
    "李小龙",
    "Björk Guðmundsdóttir",
    "Chidi Anagonye",
    "María José García",
)
_ORGS = ("ACME Corp", "Globex", "Initech", "Umbrella GmbH", "Soylent & Co", "Hooli", "Café Ltd")


@dataclass
class RequestLog:
    """One request as the fake received it, so tests can assert what the tap sent."""

    method: str
    path: str
    query: dict[str, str]
    status: int = 0  # 0 until the response is built; stays 0 for the "reset" fault
    headers: dict[str, str] = field(default_factory=dict)
    time: float = 0.0  # time.monotonic() at arrival, for pacing assertions
    fault: str | None = None  # the injected fault served instead of a normal answer, if any


@dataclass
class _Response:
    """What the handler must write; ``mode`` covers the faults that break HTTP itself."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    mode: str = "normal"  # "normal" | "truncated" | "reset"


@dataclass
class _Fault:
    """A pending injected fault; ``times`` counts down as matching requests consume it."""

    kind: str
    path_prefix: str
    times: int
    retry_after: float | None


class _BadRequest(Exception):
    """Raised for unparseable filter values so the request is answered with 400."""


def fmt_ts(dt: datetime) -> str:
    """Format like Aha! does (milliseconds, ``Z``), because bookmarks compare these strings."""
    dt = dt.astimezone(UTC) if dt.tzinfo else dt
    return dt.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_ts(value: str) -> datetime:
    """Parse the ISO-8601 forms clients send; a '+' lost to form-decoding is restored."""
    text = value.strip()
    if len(text) > 19 and text[-6] == " " and text[-3] == ":":
        text = text[:-6] + "+" + text[-5:]
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _micros(dt: datetime) -> int:
    """Exact integer microseconds, so inclusive/exclusive comparisons have no float error."""
    return (dt - _EPOCH) // timedelta(microseconds=1)


def _ms(dt: datetime) -> datetime:
    """Truncate to milliseconds so stored datetimes equal what the JSON says."""
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def _error(message: str) -> bytes:
    """Aha!-style error body (clients must key off the status, but it should look real)."""
    return json.dumps({"errors": [{"message": message}]}).encode()


def _html(title: str) -> bytes:
    """An HTML page as a proxy or maintenance screen would return instead of JSON."""
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head>"
        f"<body><center><h1>{title}</h1></center><hr><center>nginx</center></body></html>"
    ).encode()


def _dumps(obj: Any) -> str:
    """Compact UTF-8 JSON like Rails emits (non-ASCII not escaped)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _copy(obj: Any) -> Any:
    """Deep copy via JSON: faster than copy.deepcopy and proves the data is JSON-clean."""
    return json.loads(json.dumps(obj))


def _flip(value: Any) -> Any:
    """Swap an id between int and str to mimic the real service's nested id type drift."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _select_fields(record: JSON, fields: list[str], default: JSON) -> JSON:
    """Apply Aha!'s ``fields``: ``*,a,b`` is the default set plus a, b; ``a,b`` is id plus a, b."""
    if "*" in fields:
        out = dict(default)
        for name in fields:
            if name != "*" and name in record and name not in out:
                out[name] = record[name]
        return out
    out = {"id": record["id"]}
    for name in fields:
        if name in record:
            out[name] = record[name]
    return out


class _RateLimiter:
    """Sliding 1 s and 60 s windows per account, as Aha! enforces (20/s and 300/min)."""

    def __init__(self, per_minute: int | None, per_second: int | None) -> None:
        self.per_minute = per_minute
        self.per_second = per_second
        self._minute: deque[float] = deque()
        self._second: deque[float] = deque()
        self._lock = threading.Lock()
        self.peak_per_minute = 0  # the most requests counted in any 60 s / 1 s window so far
        self.peak_per_second = 0

    def _prune(self, now: float) -> None:
        while self._minute and self._minute[0] <= now - 60.0:
            self._minute.popleft()
        while self._second and self._second[0] <= now - 1.0:
            self._second.popleft()

    def acquire(self) -> float | None:
        """Count a request, or return the seconds to wait when a window is full."""
        with self._lock:
            now = time.monotonic()
            self._prune(now)
            waits: list[float] = []
            if self.per_second is not None and len(self._second) >= self.per_second:
                waits.append(self._second[-self.per_second] + 1.0 - now)
            if self.per_minute is not None and len(self._minute) >= self.per_minute:
                waits.append(self._minute[-self.per_minute] + 60.0 - now)
            if waits:
                return max(*waits, 0.001)
            self._minute.append(now)
            self._second.append(now)
            self.peak_per_minute = max(self.peak_per_minute, len(self._minute))
            self.peak_per_second = max(self.peak_per_second, len(self._second))
            return None

    def headers(self, epoch_now: float) -> dict[str, str]:
        """The X-Ratelimit-* headers every response carries."""
        with self._lock:
            now = time.monotonic()
            self._prune(now)
            limit = self.per_minute if self.per_minute is not None else DEFAULT_MINUTE_LIMIT
            remaining = max(limit - len(self._minute), 0)
            until = (self._minute[0] + 60.0 - now) if self._minute else 60.0
        return {
            "X-Ratelimit-Limit": str(limit),
            "X-Ratelimit-Remaining": str(remaining),
            "X-Ratelimit-Reset": str(math.ceil(epoch_now + until)),
        }


class _Server(ThreadingHTTPServer):
    """Threaded server that never blocks on idle keep-alive connections and stays quiet."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], fake: FakeAha) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client aborts and injected resets are expected; do not print tracebacks."""


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP adapter: all behaviour lives in FakeAha so it can be locked and observed."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real service behind its proxy
    server_version = "nginx"

    def version_string(self) -> str:
        """Look like the real front end rather than advertising Python."""
        return self.server_version

    @property
    def fake(self) -> FakeAha:
        return cast(_Server, self.server).fake

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without NODELAY, Nagle + delayed ACK add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and benchmarks must not drown in access logs."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header comes from the fake's clock so tests can control server time."""
        return self.fake.http_date()

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_GET
    do_PUT = do_GET
    do_PATCH = do_GET
    do_DELETE = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        resp = self.fake._handle(self.command, self.path, dict(self.headers.items()))
        if resp.mode == "reset":
            # SO_LINGER 0 makes close() send RST: the client sees a reset, not a clean EOF.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if resp.mode == "truncated":
            self.wfile.write(resp.body[: len(resp.body) // 2])
            self.close_connection = True
            return
        self.wfile.write(resp.body)


class FakeAha:
    """In-process fake of Aha!'s API; see the module docstring for undocumented conventions."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        rng_seed: int = 42,
        order: str = "created_desc",
        list_honours_fields: bool = True,
        updated_since_inclusive: bool = True,
        latency: float = 0.0,
        rate_limit_per_minute: int | None = None,
        rate_limit_per_second: int | None = None,
        send_retry_after: bool = True,
        port: int = 0,
        nested_id_drift: bool = False,
        comments_count: str = "mixed",
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}")
        if comments_count not in COMMENTS_COUNT_MODES:
            raise ValueError(f"comments_count must be one of {COMMENTS_COUNT_MODES}")
        self.comments_count_mode = comments_count
        self.api_key = api_key
        self.order = order
        self.list_honours_fields = list_honours_fields
        self.updated_since_inclusive = updated_since_inclusive
        self.latency = latency
        self.send_retry_after = send_retry_after
        self.port = port
        self.nested_id_drift = nested_id_drift
        self.url = ""
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.requests: list[RequestLog] = []
        self.on_request: list[Callable[[RequestLog], None]] = []
        self.errors: list[str] = []  # tracebacks of fake bugs / hook failures (answered 500)
        self._limiter = _RateLimiter(rate_limit_per_minute, rate_limit_per_second)
        self._faults: list[_Fault] = []
        self.fault_share = 0.0  # share of requests answered with one of RANDOM_FAULTS (the benchmark's)
        self.slow_seconds = SLOW_SECONDS  # how long the "slow" fault holds its answer
        self._fault_rng = random.Random(rng_seed + 1)  # noqa: S311 - apart from the data's, reproducible
        self._failed_once: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self._lock = threading.RLock()
        self._log_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._rng = random.Random(rng_seed)  # noqa: S311 - fake data, reproducible by seed
        self._next_id = 6_700_000_000_000_000_000 + self._rng.randrange(10**15)
        # data
        self._ideas: dict[str, JSON] = {}
        self._refs: dict[str, str] = {}
        self._ts: dict[str, tuple[int, int]] = {}
        self._votes: dict[str, list[JSON]] = {}
        self._comments: dict[str, list[JSON]] = {}
        self._portal: dict[str, list[JSON]] = {}
        self._cc_portal: dict[str, bool] = {}
        self._compact_json: dict[str, str] = {}
        self._order_cache: dict[str, list[str]] = {}
        self._detail_serves: dict[str, int] = {}
        self._ref_counters: dict[str, int] = {}
        self._feature_counter = 0
        # the audit log (GET /audits): destroy audits of ideas and their children, an update per restore
        self._audits: list[JSON] = []
        self._audit_seq = 9_000_000_000_000_000_000
        self._recycle_bin: dict[str, tuple[JSON, list[JSON], list[JSON], list[JSON], bool]] = {}
        self.audits_refused: int | None = None  # 403 or 404: GET /audits is refused with that status
        self.account_votes_refused: int | None = None  # 403 or 404: GET /ideas/endorsements is refused
        self.account_votes_honour_proxy = True  # False: GET /ideas/endorsements ignores `proxy=true`
        self.ideas_honour_updated_since = True  # False: GET /ideas ignores `updated_since` (lists every idea)
        self.audit_child_destroys = True  # whether deleting an idea also audits its children's destroys
        self.audit_order = "id"  # "id" (ascending) or "newest" (newest first: after_id walks fall short)
        self.audit_type_spelling = "path"  # "path" (ideas/idea) or "class" (Ideas::Idea) in answers
        self._build_catalogue()
        from tests.fake_companions import Companions  # noqa: PLC0415 - it imports this module's helpers

        self.companions = Companions(self, rng_seed)
        from tests.fake_roadmap import Roadmap  # noqa: PLC0415 - it imports this module's helpers

        self.roadmap = Roadmap(self, rng_seed)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeAha:
        """Bind 127.0.0.1 (port 0 = any free port) and serve in a daemon thread."""
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}{API_PREFIX}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections, release the port, join the thread."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._log_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeAha:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        """Remember live connections so stop() can close keep-alive sockets."""
        with self._log_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def http_date(self) -> str:
        """RFC 7231 date from ``clock``, for the Date header."""
        now = self.clock()
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
        return email.utils.format_datetime(now.astimezone(UTC), usegmt=True)

    # ------------------------------------------------------------------ observation / control

    def clear_requests(self) -> None:
        """Forget logged requests, e.g. between phases of a test."""
        with self._log_lock:
            self.requests.clear()

    def requests_to(self, path: str) -> list[RequestLog]:
        """Logged requests to exactly `path`, as logged (``/api/v1/audits``), any status."""
        with self._log_lock:
            return [r for r in self.requests if r.path == path]

    def count(self, path_prefix: str = "") -> int:
        """Logged requests whose path starts with ``/api/v1`` + ``path_prefix`` (any status)."""
        prefix = API_PREFIX + path_prefix
        with self._log_lock:
            return sum(1 for r in self.requests if r.path.startswith(prefix))

    def inject(
        self,
        fault: str,
        *,
        path_prefix: str = "",
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Make the next ``times`` requests under ``path_prefix`` fail with ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._log_lock:
            self._faults.append(_Fault(fault, path_prefix, times, retry_after))

    def peak_rates(self) -> tuple[int, int]:
        """The most answered requests seen in any 60 s and in any 1 s sliding window."""
        return self._limiter.peak_per_minute, self._limiter.peak_per_second

    def clear_faults(self) -> None:
        """Drop faults not yet consumed."""
        with self._log_lock:
            self._faults.clear()

    def _take_fault(self, sub_path: str) -> _Fault | None:
        with self._log_lock:
            for fault in self._faults:
                if sub_path.startswith(fault.path_prefix):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _random_fault(self, sub_path: str, query: dict[str, str]) -> _Fault | None:
        """One of RANDOM_FAULTS for `fault_share` of the requests; one that failed once then succeeds."""
        key = (sub_path, tuple(sorted(query.items())))
        with self._log_lock:
            if self.fault_share <= 0 or key in self._failed_once:
                return None
            if self._fault_rng.random() >= self.fault_share:
                return None
            self._failed_once.add(key)
            return _Fault(self._fault_rng.choice(RANDOM_FAULTS), sub_path, 1, None)

    # ------------------------------------------------------------------ catalogue

    def _new_id(self) -> str:
        """19-digit, increasing string ids like Aha!'s."""
        self._next_id += self._rng.randint(1, 999_999)
        return str(self._next_id)

    def _build_catalogue(self) -> None:
        """Fixed products, statuses, users and organisations shared by all ideas."""
        rng = self._rng
        base = datetime(2018, 3, 1, 9, 30, tzinfo=UTC)

        def ts(days: int) -> str:
            return fmt_ts(base + timedelta(days=days, milliseconds=rng.randrange(86_400_000)))

        self._products: list[JSON] = []
        for prefix, name in (("PRJ1", "Project One"), ("PRJ2", "Project Two"), ("APP", "Mobile")):
            self._products.append(
                {
                    "id": self._new_id(),
                    "reference_prefix": prefix,
                    "name": name,
                    "product_line": False,
                    "created_at": ts(rng.randrange(30)),
                    "workspace_type": "product_workspace",
                    "url": f"{HOST}/products/{prefix}",
                }
            )
        self._statuses: list[JSON] = []
        for pos, (name, complete) in enumerate(
            (
                ("Needs review", False),
                ("Under consideration", False),
                ("Future consideration", False),
                ("Planned", False),
                ("Shipped", True),
                ("Will not implement", True),
            ),
            start=1,
        ):
            self._statuses.append(
                {
                    "id": self._new_id(),
                    "name": name,
                    "position": pos,
                    "complete": complete,
                    "color": _COLORS[pos - 1],
                }
            )
        self._status_weights = (30, 25, 15, 10, 10, 10)

        def email(name: str, domain: str) -> str:
            ascii_name = "".join(c for c in name.lower().replace(" ", ".") if c.isascii())
            return f"{ascii_name.strip('.') or 'user'}{rng.randrange(100)}@{domain}"

        self._users: list[JSON] = []
        for name in _PEOPLE[:6]:
            self._users.append(
                {
                    "id": self._new_id(),
                    "name": name,
                    "email": email(name, "fakeco.com"),
                    "created_at": ts(rng.randrange(60)),
                    "updated_at": ts(100 + rng.randrange(200)),
                }
            )
        self._portal_users: list[tuple[JSON, JSON]] = []
        for i in range(24):
            name = f"{_PEOPLE[i % len(_PEOPLE)]} {i}"
            mail = email(name, rng.choice(("acme.com", "globex.io", "example.org")))
            created = ts(rng.randrange(300))
            portal_user = {"id": self._new_id(), "name": name, "email": mail, "created_at": created}
            idea_user: JSON = {
                "id": self._new_id(),
                "name": name,
                "email": mail,
                "created_at": created,
            }
            if i % 3:
                idea_user["title"] = rng.choice(("CTO", "Product Owner", "Analyst", ""))
            self._portal_users.append((portal_user, idea_user))
        self._orgs: list[JSON] = []
        for name in _ORGS:
            org_id = self._new_id()
            self._orgs.append(
                {
                    "id": org_id,
                    "name": name,
                    "created_at": ts(rng.randrange(300)),
                    "url": f"{HOST}/idea_organizations/{org_id}",
                    "resource": f"{HOST}/api/v1/idea_organizations/{org_id}",
                }
            )
        self._tag_ids = {tag: 1_000 + i * 7 for i, tag in enumerate(_TAGS)}
        self._categories: list[tuple[str, str, int | None, int]] = []
        rng.randrange(10**12)  # drawn as before, so the seeded data stays the same
        project = int(self._products[0]["id"])  # the first workspace's categories
        parent: int | None = None
        for i, name in enumerate(("Reporting", "Exports", "Auth", "Mobile", "Billing")):
            cat_id = self._new_id()
            self._categories.append((cat_id, name, parent, project))
            parent = int(cat_id) if i == 0 else parent
        self._me: JSON = dict(self._users[0])
        self._me["product_roles"] = [
            {
                "role": 20,
                "role_description": "Owner",
                "product_id": p["id"],
                "product_name": p["name"],
            }
            for p in self._products
        ]

    # ------------------------------------------------------------------ record builders

    def _body(self, chars: int) -> str:
        rng = self._rng
        parts: list[str] = []
        size = 0
        while size < chars:
            part = rng.choice(_DESC_FRAGMENTS)
            parts.append(part)
            size += len(part)
        return "".join(parts)

    def _between(self, lo: datetime, hi: datetime) -> datetime:
        if hi <= lo:
            return lo
        return _ms(lo + (hi - lo) * self._rng.random())

    def _attachment(self, created: datetime) -> JSON:
        rng = self._rng
        att_id = self._new_id()
        size = rng.randint(1_000, 5_000_000)
        name, ctype = rng.choice(
            (
                ("mockup.png", "image/png"),
                ("spec final (2).pdf", "application/pdf"),
                ("données.csv", "text/csv"),
            )
        )
        return {
            "id": att_id,
            "download_url": f"{HOST}/attachments/{att_id}/token/{rng.getrandbits(64):016x}",
            "created_at": fmt_ts(created),
            "updated_at": fmt_ts(created),
            "original_file_size": size,
            "content_type": ctype,
            "file_name": name,
            "file_size": size,
        }

    def _custom_fields(self, created: datetime, updated: datetime) -> list[JSON]:
        rng = self._rng
        out: list[JSON] = []
        specs: tuple[tuple[int, str, str, str], ...] = (
            (801, "customer_tier", "Customer tier", "string"),
            (802, "arr_impact", "ARR impact", "number"),
            (803, "platforms", "Platforms", "array"),
            (804, "requested_by", "Requested by", "record"),
            (805, "mockups", "Mockups", "attachment"),
            (806, "notes", "Internal notes", "note"),
            (807, "target_date", "Target date", "date"),
        )
        for fid, key, name, ftype in rng.sample(specs, rng.randint(0, 5)):
            cf: JSON = {"id": fid if rng.random() < 0.5 else str(fid), "key": key, "name": name}
            if ftype == "string":
                cf["value"] = rng.choice(("Enterprise", "SMB", "Mid-market", ""))
            elif ftype == "number":
                cf["value"] = rng.choice((rng.randint(0, 500_000), round(rng.uniform(0, 1e5), 2)))
            elif ftype == "array":
                cf["value"] = rng.sample(["Web", "iOS", "Android", "Desktop"], rng.randint(0, 3))
            elif ftype == "record":
                org = rng.choice(self._orgs)
                cf["value"] = {"id": org["id"], "name": org["name"], "type": "IdeaOrganization"}
            elif ftype == "note":
                cf["value"] = rng.choice(_COMMENT_BODIES)
            elif ftype == "date":
                cf["value"] = self._between(created, updated).date().isoformat()
            # attachment fields carry no "value" key at all
            cf["type"] = ftype
            cf["updatedAt"] = fmt_ts(self._between(created, updated))
            out.append(cf)
        return out

    def _build_idea(self, created: datetime, updated: datetime, description_chars: int) -> JSON:
        """A full idea record shaped like ``GET /ideas/{id}`` on the real service."""
        rng = self._rng
        product = rng.choice(self._products)
        prefix = product["reference_prefix"]
        self._ref_counters[prefix] = self._ref_counters.get(prefix, 0) + 1
        ref = f"{prefix}-I-{self._ref_counters[prefix]}"
        idea_id = self._new_id()
        status = rng.choices(self._statuses, self._status_weights)[0]
        status_changed = self._between(created, updated)
        desc_updated = self._between(created, updated)
        url = f"{HOST}/ideas/ideas/{ref}"
        idea: JSON = {
            "id": idea_id,
            "reference_num": ref,
            "name": f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_SUFFIXES)}",
            "created_at": fmt_ts(created),
            "updated_at": fmt_ts(updated),
            "workflow_status": dict(status),
            "description": {
                "id": self._new_id(),
                "body": self._body(description_chars),
                "created_at": fmt_ts(created),
                "updated_at": fmt_ts(desc_updated),
                "attachments": [self._attachment(created)] if rng.random() < 0.1 else [],
            },
            "url": url,
            "resource": f"{HOST}/api/v1/ideas/{ref}",
            "product_id": product["id"],
            "score": rng.randint(0, 100),
            "votes": 0,
            "initial_votes": rng.choice((0, 0, 0, 1, 2, 5)),
            "endorsements_count": 0,
            "comments_count": 0,
            "status_changed_at": fmt_ts(status_changed),
            "visibility": rng.choice(
                ("Visible to all portal users", "Not visible to portal users", "Visible to creator")
            ),
            "admin_response": None,
            "product": dict(product),
        }
        if rng.random() < 0.2:
            idea["admin_response"] = {
                "id": self._new_id(),
                "body": "<p>Thanks! We are looking into it.</p>",
                "created_at": fmt_ts(status_changed),
                "updated_at": fmt_ts(status_changed),
            }
        from_portal = rng.random() < 0.6
        if from_portal:
            portal_user, idea_user = rng.choice(self._portal_users)
            idea["created_by_portal_user"] = dict(portal_user)
            idea["created_by_idea_user"] = dict(idea_user)
        else:
            idea["created_by_user"] = dict(rng.choice(self._users))
        idea["assigned_to_user"] = dict(rng.choice(self._users)) if rng.random() < 0.5 else None
        feature = None
        if rng.random() < 0.25:
            self._feature_counter += 1
            fref = f"{prefix}-{self._feature_counter}"
            feature = {
                "id": self._new_id(),
                "reference_num": fref,
                "name": f"Feature for {ref}",
                "created_at": fmt_ts(status_changed),
                "url": f"{HOST}/features/{fref}",
                "resource": f"{HOST}/api/v1/features/{fref}",
                "product_id": product["id"],
            }
        idea["feature"] = feature
        idea["score_facts"] = (
            [
                {"name": "Value", "value": rng.randint(1, 10)},
                {"name": "Effort", "value": rng.randint(1, 10)},
            ]
            if rng.random() < 0.4
            else []
        )
        tags = sorted(rng.sample(_TAGS, rng.choice((0, 0, 1, 2, 3))))
        idea["tags"] = tags
        idea["full_tags"] = [
            {"id": self._tag_ids[t], "name": t, "color": _COLORS[self._tag_ids[t] % 6]} for t in tags
        ]
        cats: list[JSON] = []
        for cat_id, name, parent, project in rng.sample(self._categories, rng.choice((0, 1, 1, 2))):
            cats.append(
                {
                    "id": cat_id,
                    "name": name,
                    "parent_id": parent if parent is None or rng.random() < 0.5 else str(parent),
                    "project_id": project if rng.random() < 0.5 else str(project),
                    "created_at": fmt_ts(created - timedelta(days=30)),
                }
            )
        idea["categories"] = cats
        idea["custom_fields"] = self._custom_fields(created, updated)
        idea["custom_object_links"] = (
            [
                {
                    "key": "customers",
                    "name": "Customers",
                    "record_type": "CustomObjectRecord",
                    "record_ids": [self._new_id()],
                }
            ]
            if rng.random() < 0.15
            else []
        )
        path = [s for s in self._statuses if s["position"] <= status["position"]][-3:]
        times: list[JSON] = []
        start = created
        for i, st in enumerate(path):
            last = i == len(path) - 1
            end = status_changed if i == len(path) - 2 else self._between(start, status_changed)
            times.append(
                {
                    "status_id": st["id"],
                    "status_name": st["name"],
                    "started_at": fmt_ts(start),
                    "ended_at": None if last else fmt_ts(end),
                }
            )
            start = end
        idea["workflow_status_times"] = times
        idea["submitted_idea_portal_record_url"] = f"{PORTAL_HOST}/ideas/{ref}" if from_portal else None
        idea["integration_fields"] = (
            [
                {
                    "id": self._new_id(),
                    "name": "key",
                    "value": f"JIRA-{rng.randint(1, 9999)}",
                    "integration_id": rng.randint(10**6, 10**7),
                    "service_name": "jira",
                    "created_at": fmt_ts(status_changed),
                }
            ]
            if rng.random() < 0.2
            else []
        )
        if rng.random() < 0.05 and self._ideas:
            other = self._ideas[next(reversed(self._ideas))]
            idea["duplicate_of"] = {
                "id": other["id"],
                "reference_num": other["reference_num"],
                "name": other["name"],
                "created_at": other["created_at"],
                "url": other["url"],
                "resource": other["resource"],
            }
        if rng.random() < 0.3:
            idea["watchers"] = [dict(u) for u in rng.sample(self._users, rng.randint(1, 3))]
        return idea

    def _build_vote(self, idea: JSON, created: datetime, *, proxy: bool) -> JSON:
        """A vote; proxy votes are the ones carrying an ``idea_organization``."""
        rng = self._rng
        vote: JSON = {
            "id": self._new_id(),
            "idea_id": idea["id"],
            "created_at": fmt_ts(created),
            "updated_at": fmt_ts(created),
            "value": rng.choice(("1.0", "2.0", "3.0", "5.0", None)),
            "link": rng.choice(("", None, f"https://crm.example.com/opp/{rng.randint(1, 99999)}")),
            "weight": rng.choice((1, 1, 1, 2, 3)),
        }
        if proxy:
            vote["idea_organization"] = dict(rng.choice(self._orgs))
        elif rng.random() < 0.5:
            vote["idea_organization"] = None
        if rng.random() < 0.6:
            portal_user, idea_user = rng.choice(self._portal_users)
            vote["endorsed_by_portal_user"] = dict(portal_user)
            vote["endorsed_by_idea_user"] = dict(idea_user)
        else:
            vote["endorsed_by_user"] = dict(rng.choice(self._users))
        return vote

    def _build_comment(self, idea: JSON, created: datetime, edited_by: datetime | None = None) -> JSON:
        """An internal comment: no ``idea_id``, the idea is only in ``commentable``.

        Some comments were edited after creation (no later than ``edited_by``).
        """
        rng = self._rng
        cid = self._new_id()
        updated = created
        if edited_by is not None and rng.random() < 0.2:
            updated = self._between(created, edited_by)
        return {
            "id": cid,
            "body": rng.choice(_COMMENT_BODIES),
            "created_at": fmt_ts(created),
            "updated_at": fmt_ts(updated),
            "user": dict(rng.choice(self._users)),
            "attachments": [self._attachment(created)] if rng.random() < 0.1 else [],
            "url": f"{HOST}/comments/{cid}",
            "resource": f"{HOST}/api/v1/comments/{cid}",
            "commentable": {
                "type": "Ideas::Idea",
                "id": idea["id"],
                "product_id": idea.get("product_id"),
                "url": idea.get("url"),
                "resource": idea.get("resource"),
            },
        }

    def _build_portal_comment(
        self, idea: JSON, created: datetime, *, spam: bool, parent_id: int | None
    ) -> JSON:
        """A portal comment: has ``idea_id`` but no ``updated_at``; ``spam`` only sometimes."""
        rng = self._rng
        pc: JSON = {
            "id": self._new_id(),
            "idea_id": idea["id"],
            "body": rng.choice(_COMMENT_BODIES),
            "created_at": fmt_ts(created),
            "visibility": rng.choice(("public", "public", "private")),
            "parent_idea_comment_id": parent_id,
        }
        if rng.random() < 0.3:
            pc["idea_commenter_user"] = dict(rng.choice(self._users))
        else:
            portal_user, idea_user = rng.choice(self._portal_users)
            pc["idea_commenter_portal_user"] = dict(portal_user)
            pc["idea_commenter_idea_user"] = dict(idea_user)
        pc["idea"] = {
            "id": idea["id"],
            "reference_num": idea.get("reference_num"),
            "name": idea.get("name"),
            "created_at": idea.get("created_at"),
            "url": idea.get("url"),
            "resource": idea.get("resource"),
        }
        pc["attachments"] = [self._attachment(created)] if rng.random() < 0.05 else []
        if spam or rng.random() < 0.4:
            pc["spam"] = spam
        return pc

    # ------------------------------------------------------------------ data internals

    def _register(self, idea: JSON, *, comments_count_includes_portal: bool) -> str:
        iid = str(idea["id"])
        self._ideas[iid] = idea
        self._refs[str(idea["reference_num"])] = iid
        self._votes.setdefault(iid, [])
        self._comments.setdefault(iid, [])
        self._portal.setdefault(iid, [])
        self._cc_portal[iid] = comments_count_includes_portal
        self._index(iid)
        return iid

    def _index(self, iid: str) -> None:
        """Refresh cached timestamps/serialisations after ``iid`` changed."""
        idea = self._ideas[iid]
        self._ts[iid] = (
            _micros(parse_ts(idea["created_at"])),
            _micros(parse_ts(idea["updated_at"])),
        )
        self._compact_json.pop(iid, None)
        self._order_cache.clear()

    def _recount(self, iid: str) -> None:
        """Keep the idea's counters consistent with its children."""
        idea = self._ideas[iid]
        votes = self._votes[iid]
        idea["endorsements_count"] = len(votes)
        idea["votes"] = int(idea.get("initial_votes") or 0) + sum(int(v.get("weight") or 1) for v in votes)
        internal = len(self._comments[iid])
        portal = sum(1 for pc in self._portal[iid] if not pc.get("spam"))
        mode = self.comments_count_mode
        if mode == "mixed":
            count = internal + (portal if self._cc_portal[iid] else 0)
        elif mode == "unreliable" and int(iid) % 3 == 0:
            count = 0
        else:
            count = {"internal": internal, "portal": portal}.get(mode, internal + portal)
        idea["comments_count"] = count

    def _resolve(self, key: str) -> str | None:
        if key in self._ideas:
            return key
        return self._refs.get(key) or self._refs.get(key.upper())

    def _must(self, key: str) -> str:
        iid = self._resolve(str(key))
        if iid is None:
            raise KeyError(f"no idea {key!r}")
        return iid

    def _now(self) -> datetime:
        now = self.clock()
        return _ms(now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC))

    def _bump(self, iid: str, now: datetime) -> None:
        self._ideas[iid]["updated_at"] = fmt_ts(now)
        self._recount(iid)
        self._index(iid)

    # ------------------------------------------------------------------ data API

    def seed(
        self,
        n_ideas: int,
        *,
        vote_share: float = 0.15,
        comment_share: float = 0.30,
        portal_comment_share: float = 0.30,
        max_votes: int = 6,
        max_comments: int = 5,
        description_chars: int = 600,
        start: str = "2023-01-01T00:00:00.000Z",
    ) -> None:
        """Create ``n_ideas`` realistic ideas created and updated within [start, start + n minutes).

        Children lie between the idea's created_at and updated_at (adding them bumped it), and
        groups of ideas share an updated_at millisecond because ties break naive bookmarks.
        """
        rng = self._rng
        t0 = parse_ts(start)
        end = t0 + timedelta(minutes=n_ideas)
        span_ms = max(n_ideas * 60_000, 1)
        created_all = sorted(_ms(t0 + timedelta(milliseconds=rng.randrange(span_ms))) for _ in range(n_ideas))
        with self._lock:
            seeded: list[tuple[str, datetime]] = []
            for created in created_all:
                updated = (
                    created if rng.random() < 0.25 else _ms(created + (end - created) * rng.random() ** 2)
                )
                idea = self._build_idea(created, updated, description_chars)
                iid = self._register(idea, comments_count_includes_portal=rng.random() < 0.5)
                plan: list[tuple[str, int]] = []
                if rng.random() < vote_share:
                    plan.append(("proxy", rng.randint(1, max(max_votes, 1))))
                if rng.random() < 0.2:  # plain (non-proxy) votes, so proxy=true filtering matters
                    plan.append(("plain", rng.randint(1, 3)))
                if max_comments > 0 and rng.random() < comment_share:
                    plan.append(("comment", rng.randint(1, max_comments)))
                if max_comments > 0 and rng.random() < portal_comment_share:
                    plan.append(("portal", rng.randint(1, max_comments)))
                self._seed_children(iid, created, updated, plan)
                seeded.append((iid, updated))
            self._tie_groups(seeded)
        self.companions.grow(n_ideas)
        self.roadmap.grow(n_ideas)

    def _seed_children(
        self, iid: str, created: datetime, updated: datetime, plan: list[tuple[str, int]]
    ) -> None:
        """Create children in time order between created and updated (adding them bumped the idea)."""
        rng = self._rng
        idea = self._ideas[iid]
        events = sorted((self._between(created, updated), kind) for kind, n in plan for _ in range(n))
        for when, kind in events:
            if kind in ("proxy", "plain"):
                self._votes[iid].append(self._build_vote(idea, when, proxy=kind == "proxy"))
            elif kind == "comment":
                self._comments[iid].append(self._build_comment(idea, when, edited_by=updated))
            else:
                earlier = self._portal[iid]
                parent = int(rng.choice(earlier)["id"]) if earlier and rng.random() < 0.3 else None
                spam = rng.random() < 0.1
                self._portal[iid].append(self._build_portal_comment(idea, when, spam=spam, parent_id=parent))
        self._recount(iid)

    def _tie_groups(self, seeded: list[tuple[str, datetime]]) -> None:
        """Give runs of 2-4 consecutive ideas one shared updated_at millisecond (the first run always)."""
        rng = self._rng
        i = 0
        while i < len(seeded):
            size = rng.randint(2, 4) if i == 0 or rng.random() < 0.12 else 1
            group = seeded[i : i + size]
            top = max(latest for _, latest in group)
            for iid, _ in group:
                self._ideas[iid]["updated_at"] = fmt_ts(top)
                self._index(iid)
            i += size

    def add_idea(self, **overrides: Any) -> JSON:
        """Create an idea now (server clock); ``overrides`` replace top-level keys; returns a copy."""
        with self._lock:
            now = self._now()
            idea = self._build_idea(now, now, 600)
            cc_portal = self._rng.random() < 0.5
            idea.update(self._normalise(overrides))
            iid = self._register(idea, comments_count_includes_portal=cc_portal)
            self._recount(iid)
            for key in ("votes", "endorsements_count", "comments_count"):
                if key in overrides:
                    idea[key] = overrides[key]
            return cast(JSON, _copy(idea))

    def _normalise(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Let tests pass datetimes for timestamps and a status name or id for workflow_status."""
        out = dict(changes)
        for key in ("created_at", "updated_at", "status_changed_at"):
            if isinstance(out.get(key), datetime):
                out[key] = fmt_ts(out[key])
        if isinstance(out.get("workflow_status"), str):
            out["workflow_status"] = self._status(out["workflow_status"])
        return out

    def _status(self, name_or_id: str) -> JSON:
        for st in self._statuses:
            if name_or_id in (st["id"], st["name"]):
                return dict(st)
        raise KeyError(f"no workflow status {name_or_id!r}")

    def update_idea(self, idea_id: str, **changes: Any) -> JSON:
        """Apply top-level ``changes`` and bump updated_at to now (unless given). Returns a copy.

        ``workflow_status`` may be given as a status name or id.
        """
        with self._lock:
            iid = self._must(idea_id)
            idea = self._ideas[iid]
            old_ref = idea.get("reference_num")
            idea.update(self._normalise(changes))
            if "updated_at" not in changes:
                idea["updated_at"] = fmt_ts(self._now())
            if idea.get("reference_num") != old_ref:
                self._refs.pop(str(old_ref), None)
                self._refs[str(idea["reference_num"])] = iid
            self._index(iid)
            return cast(JSON, _copy(idea))

    def delete_idea(self, idea_id: str) -> None:
        """Remove an idea and its children to the recycle bin; they 404 from now on. Audited as destroys
        (the children too while ``audit_child_destroys``)."""
        with self._lock:
            iid = self._must(idea_id)
            self._recycle_bin[iid] = (
                self._ideas[iid],
                self._votes[iid],
                self._comments[iid],
                self._portal[iid],
                self._cc_portal[iid],
            )
            self.record_audit("destroy", "ideas/idea", iid)
            if self.audit_child_destroys:
                for kind, records in (
                    ("ideas/idea_endorsement", self._votes[iid]),
                    ("comment", self._comments[iid]),
                    ("ideas/idea_comment", self._portal[iid]),
                ):
                    for record in records:
                        self.record_audit("destroy", kind, record["id"], idea_id=iid)
            idea = self._ideas.pop(iid)
            self._refs.pop(str(idea.get("reference_num")), None)
            self._votes.pop(iid, None)
            self._comments.pop(iid, None)
            self._portal.pop(iid, None)
            self._ts.pop(iid, None)
            self._compact_json.pop(iid, None)
            self._cc_portal.pop(iid, None)
            self._detail_serves.pop(iid, None)
            self._order_cache.clear()

    def add_vote(self, idea_id: str, *, proxy: bool = True, **overrides: Any) -> JSON:
        """Add a vote now; bumps the idea's updated_at, votes and endorsements_count."""
        with self._lock:
            iid = self._must(idea_id)
            now = self._now()
            vote = self._build_vote(self._ideas[iid], now, proxy=proxy)
            vote.update(overrides)
            self._votes[iid].append(vote)
            self._bump(iid, now)
            return cast(JSON, _copy(vote))

    def edit_vote(self, vote_id: str, **changes: Any) -> JSON:
        """Edit a vote now without bumping its idea (whether Aha! bumps it is unknown)."""
        with self._lock:
            vote = next(v for votes in self._votes.values() for v in votes if v["id"] == vote_id)
            vote.update(changes, updated_at=fmt_ts(self._now()))
            return cast(JSON, _copy(vote))

    def add_comment(self, idea_id: str, **overrides: Any) -> JSON:
        """Add an internal comment now; bumps updated_at and comments_count."""
        with self._lock:
            iid = self._must(idea_id)
            now = self._now()
            comment = self._build_comment(self._ideas[iid], now)
            comment.update(overrides)
            self._comments[iid].append(comment)
            self._bump(iid, now)
            return cast(JSON, _copy(comment))

    def add_portal_comment(
        self, idea_id: str, *, spam: bool = False, parent_id: int | None = None, **overrides: Any
    ) -> JSON:
        """Add a portal comment now; bumps updated_at (and comments_count where it counts them)."""
        with self._lock:
            iid = self._must(idea_id)
            now = self._now()
            pc = self._build_portal_comment(self._ideas[iid], now, spam=spam, parent_id=parent_id)
            pc.update(overrides)
            self._portal[iid].append(pc)
            self._bump(iid, now)
            return cast(JSON, _copy(pc))

    # ------------------------------------------------------------------ deletes, restores and the audit log

    def record_audit(
        self, action: str, auditable_type: str, auditable_id: str, *, idea_id: str | None = None
    ) -> JSON:
        """Write an audit now, as Aha! does for every change (``auditable_type`` as a path, e.g. ``comment``);
        ``idea_id`` makes the idea its associated record. Returns a copy."""
        with self._lock:
            self._audit_seq += self._rng.randint(1, 99)
            now = self._now()
            audit: JSON = {
                "id": str(self._audit_seq),
                "audit_action": action,
                "created_at": fmt_ts(now),
                "interesting": action == "destroy",
                "user": dict(self._users[0]),
                "contributors": [],
                "auditable_type": auditable_type,
                "auditable_id": int(auditable_id),  # a number, as in Aha!'s documented example
                "associated_type": None if idea_id is None else "ideas/idea",
                "associated_id": None if idea_id is None else int(idea_id),
                "description": f"{auditable_type} {auditable_id} {action}ed",
                "auditable_url": f"{HOST}/{auditable_type}s/{auditable_id}",
                "changes": [{"field_name": "Id", "value": str(auditable_id)}],
            }
            self._audits.append(audit)
            return cast(JSON, _copy(audit))

    def _delete_child(self, store: dict[str, list[JSON]], kind: str, record_id: str) -> JSON:
        """Remove one vote or comment (its idea's updated_at is left alone) and audit the destroy."""
        with self._lock:
            for iid, records in store.items():
                for record in records:
                    if record["id"] == record_id:
                        records.remove(record)
                        self._recount(iid)
                        self._compact_json.pop(iid, None)
                        self.record_audit("destroy", kind, record_id, idea_id=iid)
                        return cast(JSON, _copy(record))
        raise KeyError(f"no {kind} {record_id!r}")

    def delete_vote(self, vote_id: str) -> JSON:
        """Delete a vote (proxy or not); returns it."""
        return self._delete_child(self._votes, "ideas/idea_endorsement", vote_id)

    def delete_comment(self, comment_id: str) -> JSON:
        """Delete an internal comment; returns it."""
        return self._delete_child(self._comments, "comment", comment_id)

    def delete_portal_comment(self, comment_id: str) -> JSON:
        """Delete a portal comment; returns it."""
        return self._delete_child(self._portal, "ideas/idea_comment", comment_id)

    def restore_idea(self, idea_id: str) -> JSON:
        """Bring a deleted idea and its children back from the recycle bin: an update (updated_at bumped,
        audited as an update). Returns a copy of the idea."""
        with self._lock:
            idea, votes, comments, portal, cc_portal = self._recycle_bin.pop(idea_id)
            iid = self._register(idea, comments_count_includes_portal=cc_portal)
            self._votes[iid], self._comments[iid], self._portal[iid] = votes, comments, portal
            self._bump(iid, self._now())
            self.record_audit("update", "ideas/idea", iid)
            return cast(JSON, _copy(idea))

    def audits(self) -> list[JSON]:
        """Copies of every audit written, oldest first."""
        with self._lock:
            return cast(list[JSON], _copy(self._audits))

    def _list_audits(self, query: dict[str, str]) -> _Response:
        """``GET /audits``: filters, ``after_id``, pages, the 12-month window, both type spellings."""
        if self.audits_refused is not None:
            return _Response(self.audits_refused, _error("Forbidden"))
        page, per_page = self._paging(query)
        since, before = self._since(query, "created_since"), self._since(query, "created_before")
        oldest = _micros(self._now() - timedelta(days=365))
        action = query.get("audit_action") or None
        kind = _AUDIT_PATHS.get(query.get("auditable_type") or "", query.get("auditable_type") or None)
        after = query.get("after_id") or None
        if after is not None and not after.isdigit():
            raise _BadRequest(f"Invalid after_id: {after!r}")
        with self._lock:
            found = []
            for audit in self._audits:
                created = _micros(parse_ts(audit["created_at"]))
                if (
                    created < oldest
                    or (since is not None and created < since)
                    or (before is not None and created >= before)
                    or (action is not None and audit["audit_action"] != action)
                    or (kind is not None and audit["auditable_type"] != kind)
                    or (after is not None and int(audit["id"]) <= int(after))
                ):
                    continue
                found.append(audit)
            found.sort(key=lambda a: int(a["id"]), reverse=self.audit_order == "newest")
            if self.audit_type_spelling == "class":
                found = [
                    {
                        **a,
                        "auditable_type": _AUDIT_CLASSES[a["auditable_type"]],
                        "associated_type": "Ideas::Idea",
                    }
                    for a in found
                ]
            chunk = found[(page - 1) * per_page : page * per_page]
            return self._envelope("audits", [_dumps(a) for a in chunk], len(found), page, per_page)

    def idea_ids(self) -> list[str]:
        """Ids of live ideas in creation order."""
        with self._lock:
            return list(self._ideas)

    def ideas(self) -> list[JSON]:
        """Copies of the full live ideas in creation order (stored nested id types, no drift)."""
        with self._lock:
            return cast(list[JSON], _copy(list(self._ideas.values())))

    def idea(self, idea_id: str) -> JSON:
        """Copy of one full idea (by id or reference_num)."""
        with self._lock:
            return cast(JSON, _copy(self._ideas[self._must(idea_id)]))

    def votes(self, idea_id: str, *, proxy_only: bool = True) -> list[JSON]:
        """Copies of an idea's votes (only proxy ones by default), in listing order."""
        with self._lock:
            votes = self._votes[self._must(idea_id)]
            return cast(
                list[JSON],
                _copy([v for v in votes if not proxy_only or v.get("idea_organization")]),
            )

    def comments(self, idea_id: str) -> list[JSON]:
        """Copies of an idea's internal comments, in listing order."""
        with self._lock:
            return cast(list[JSON], _copy(self._comments[self._must(idea_id)]))

    def portal_comments(self, idea_id: str, *, include_spam: bool = True) -> list[JSON]:
        """Copies of an idea's portal comments (spam included unless asked otherwise)."""
        with self._lock:
            items = self._portal[self._must(idea_id)]
            return cast(list[JSON], _copy([p for p in items if include_spam or not p.get("spam")]))

    def comments_count_includes_portal(self, idea_id: str) -> bool:
        """Whether this idea's comments_count also counts non-spam portal comments."""
        with self._lock:
            return self._cc_portal[self._must(idea_id)]

    # ------------------------------------------------------------------ HTTP

    def _handle(self, method: str, target: str, headers: dict[str, str]) -> _Response:
        """Log, run hooks, then answer (fault, auth, rate limit, route) one request."""
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        logged = {k: ("REDACTED" if k.lower() == "authorization" else v) for k, v in headers.items()}
        log = RequestLog(method, path, query, 0, logged, time.monotonic())
        with self._log_lock:
            self.requests.append(log)
        for hook in list(self.on_request):
            try:
                hook(log)
            except Exception:
                self.errors.append(traceback.format_exc())
        if self.latency > 0:
            self._stopping.wait(self.latency)
        try:
            resp = self._answer(method, path, query, headers, log)
        except Exception:
            self.errors.append(traceback.format_exc())
            resp = _Response(500, _error("Internal server error"))
        resp.headers.update(self._limiter.headers(self.clock().timestamp()))
        log.status = 0 if resp.mode == "reset" else resp.status
        return resp

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        log: RequestLog,
    ) -> _Response:
        sub = path[len(API_PREFIX) :] if path == API_PREFIX or path.startswith(API_PREFIX + "/") else None
        fault = (self._take_fault(sub) or self._random_fault(sub, query)) if sub is not None else None
        truncate = False
        if fault is not None:
            log.fault = fault.kind
            if fault.kind == "slow":
                self._stopping.wait(self.slow_seconds)
            elif fault.kind == "truncated":
                truncate = True
            else:
                return self._fault_response(fault)
        denied = self._auth_error(headers)
        if denied is not None:
            return denied
        if sub is None or method != "GET":
            return _Response(404, _error("Record not found"))
        wait = self._limiter.acquire()
        if wait is not None:
            return self._rate_limited(wait if self.send_retry_after else None, wait)
        try:
            resp = self._route(sub, query)
        except _BadRequest as exc:
            resp = _Response(400, _error(str(exc)))
        if truncate:
            resp.mode = "truncated"
        return resp

    def _auth_error(self, headers: dict[str, str]) -> _Response | None:
        """401 for a missing/wrong bearer key, 403 for the reserved "forbidden-key", else None."""
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, key = auth.strip().partition(" ")
        key = key.strip()
        if key == FORBIDDEN_KEY and scheme.lower() == "bearer":
            return _Response(403, _error("Forbidden"))
        if scheme.lower() != "bearer" or key != self.api_key:
            return _Response(401, _error("Unauthorized"))
        return None

    def _rate_limited(self, retry_after: float | None, wait: float) -> _Response:
        seconds = max(math.ceil(wait), 1)
        headers = {} if retry_after is None else {"Retry-After": str(seconds)}
        return _Response(
            429, _error(f"Rate limit exceeded. Try again in {seconds} seconds."), headers=headers
        )

    def _fault_response(self, fault: _Fault) -> _Response:
        """The canned answer for an injected fault (all but "slow" and "truncated")."""
        if fault.kind == "429":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            seconds = max(math.ceil(fault.retry_after or 60), 1)
            return _Response(
                429, _error(f"Rate limit exceeded. Try again in {seconds} seconds."), headers=headers
            )
        canned: dict[str, tuple[int, bytes, str]] = {
            "500": (500, _error("Internal server error"), "application/json; charset=utf-8"),
            "502": (502, _html("502 Bad Gateway"), "text/html"),
            "503": (503, _html("503 Service Temporarily Unavailable"), "text/html"),
            "401": (401, _error("Unauthorized"), "application/json; charset=utf-8"),
            "403": (403, _error("Forbidden"), "application/json; charset=utf-8"),
            "404": (404, _error("Record not found"), "application/json; charset=utf-8"),
            "invalid_json": (
                200,
                _html("Aha! is down for scheduled maintenance"),
                "text/html; charset=utf-8",
            ),
            "empty_200": (200, b"", "application/json; charset=utf-8"),
        }
        if fault.kind in canned:
            status, body, ctype = canned[fault.kind]
            return _Response(status, body, ctype)
        return _Response(0, b"", mode="reset")

    def _route(self, sub: str, query: dict[str, str]) -> _Response:
        """Dispatch a GET under /api/v1; anything unknown is a 404 like on the real service."""
        parts = sub.strip("/").split("/")
        resp: _Response | None = None
        if parts == ["me"]:
            resp = self._json({"user": self._me})
        elif parts == ["ideas"]:
            resp = self._list_ideas(query, None)
        elif parts == ["audits"]:
            resp = self._list_audits(query)
        elif parts == ["ideas", "endorsements"]:
            resp = self._account_votes(query)
        elif len(parts) == 3 and parts[0] == "products" and parts[2] == "ideas":
            product = next((p for p in self._products if parts[1] in (p["id"], p["reference_prefix"])), None)
            if product is not None:
                resp = self._list_ideas(query, product["id"])
        elif parts[0] == "ideas" and len(parts) in (2, 3):
            resp = self._idea_route(parts[1], parts[2] if len(parts) == 3 else None, query)
        if resp is None:
            resp = self._companion_route(parts, query)
        if resp is None:
            resp = self.roadmap.route(parts, query)  # tests/fake_roadmap.py
        return resp if resp is not None else _Response(404, _error("Record not found"))

    def _companion_route(self, parts: list[str], query: dict[str, str]) -> _Response | None:
        """Organizations, idea users, portals, workspaces and categories (tests/fake_companions.py)."""
        since = self._since(query, "updated_since")
        with self._lock:
            found = self.companions.listing(parts, query, since)
            if found is None:
                return None
            if isinstance(found, int):
                return _Response(found, _error("Forbidden"))
            root, records = found
            return self._child_page(root, records, query, None)

    @staticmethod
    def _json(obj: Any, status: int = 200) -> _Response:
        return _Response(status, _dumps(obj).encode())

    @staticmethod
    def _paging(query: dict[str, str]) -> tuple[int, int]:
        """page 1-indexed (bad or < 1 means 1); per_page default 30, clamped to 1..200."""
        try:
            page = max(int(query.get("page", "1")), 1)
        except ValueError:
            page = 1
        try:
            per_page = int(query.get("per_page", str(DEFAULT_PER_PAGE)))
        except ValueError:
            per_page = DEFAULT_PER_PAGE
        if per_page < 1:
            per_page = DEFAULT_PER_PAGE
        return page, min(per_page, MAX_PER_PAGE)

    @staticmethod
    def _envelope(root: str, items: list[str], total: int, page: int, per_page: int) -> _Response:
        """Build the list body from pre-serialised items (fast path for big pages)."""
        pagination = {
            "total_records": total,
            "total_pages": math.ceil(total / per_page),
            "current_page": page,
        }
        body = f'{{"{root}":[{",".join(items)}],"pagination":{_dumps(pagination)}}}'
        return _Response(200, body.encode())

    @staticmethod
    def _since(query: dict[str, str], name: str) -> int | None:
        value = query.get(name)
        if value is None or value == "":
            return None
        try:
            return _micros(parse_ts(value))
        except ValueError:
            raise _BadRequest(f"Invalid {name}: {value!r}") from None

    @staticmethod
    def _fields(query: dict[str, str]) -> list[str] | None:
        raw = query.get("fields")
        if not raw:
            return None
        names = [f.strip() for f in raw.split(",") if f.strip()]
        return names or None

    def _sorted_ids(self) -> list[str]:
        cached = self._order_cache.get(self.order)
        if cached is not None:
            return cached
        ts = self._ts
        if self.order == "created_desc":
            ids = sorted(self._ideas, key=lambda i: (ts[i][0], len(i), i), reverse=True)
        elif self.order == "updated_desc":
            ids = sorted(self._ideas, key=lambda i: (ts[i][1], len(i), i), reverse=True)
        elif self.order == "updated_asc":
            ids = sorted(self._ideas, key=lambda i: (ts[i][1], len(i), i))
        else:
            ids = sorted(self._ideas, key=lambda i: (len(i), i))
        self._order_cache[self.order] = ids
        return ids

    def _compact(self, idea: JSON) -> JSON:
        out: JSON = {k: idea[k] for k in COMPACT_KEYS if k in idea}
        status = out.get("workflow_status")
        if isinstance(status, dict):
            out["workflow_status"] = {k: status.get(k) for k in _STATUS_KEYS}
        desc = out.get("description")
        if isinstance(desc, dict):
            out["description"] = {k: desc.get(k) for k in _DESCRIPTION_KEYS}
        return out

    def _list_ideas(self, query: dict[str, str], product_id: str | None) -> _Response:
        page, per_page = self._paging(query)
        updated_since = self._since(query, "updated_since") if self.ideas_honour_updated_since else None
        created_since = self._since(query, "created_since")
        created_before = self._since(query, "created_before")
        status = query.get("workflow_status") or None
        q = (query.get("q") or "").lower() or None
        fields = self._fields(query) if self.list_honours_fields else None
        inclusive = self.updated_since_inclusive
        with self._lock:
            ids = self._sorted_ids()
            ideas, ts = self._ideas, self._ts
            if updated_since is not None or created_since is not None or created_before is not None:
                selected = []
                for i in ids:
                    created, updated = ts[i]
                    if updated_since is not None and (
                        updated < updated_since or (not inclusive and updated == updated_since)
                    ):
                        continue
                    if created_since is not None and created < created_since:
                        continue
                    if created_before is not None and created >= created_before:
                        continue
                    selected.append(i)
                ids = selected
            if product_id is not None:
                ids = [i for i in ids if ideas[i].get("product_id") == product_id]
            if status is not None:
                low = status.lower()
                ids = [
                    i
                    for i in ids
                    if status == str((ideas[i].get("workflow_status") or {}).get("id"))
                    or low == str((ideas[i].get("workflow_status") or {}).get("name", "")).lower()
                ]
            if q is not None:
                ids = [i for i in ids if q in str(ideas[i].get("name", "")).lower()]
            chunk = ids[(page - 1) * per_page : page * per_page]
            items: list[str] = []
            for i in chunk:
                if fields is None:
                    text = self._compact_json.get(i)
                    if text is None:
                        text = self._compact_json[i] = _dumps(self._compact(ideas[i]))
                    items.append(text)
                else:
                    idea = ideas[i]
                    items.append(_dumps(_select_fields(idea, fields, self._compact(idea))))
            return self._envelope("ideas", items, len(ids), page, per_page)

    def _drifted(self, iid: str, idea: JSON) -> JSON:
        """With nested_id_drift, every second detail response of an idea flips nested id types."""
        if not self.nested_id_drift:
            return idea
        n = self._detail_serves.get(iid, 0)
        self._detail_serves[iid] = n + 1
        if n % 2 == 0:
            return idea
        out = dict(idea)
        out["categories"] = [
            {**c, "parent_id": _flip(c.get("parent_id")), "project_id": _flip(c.get("project_id"))}
            for c in idea.get("categories") or []
        ]
        out["custom_fields"] = [{**cf, "id": _flip(cf.get("id"))} for cf in idea.get("custom_fields") or []]
        return out

    def _idea_route(self, key: str, child: str | None, query: dict[str, str]) -> _Response:
        fields = self._fields(query)
        with self._lock:
            iid = self._resolve(key)
            if iid is None or child not in (None, "endorsements", "comments", "idea_comments"):
                return _Response(404, _error("Record not found"))
            if child is None:
                idea = self._drifted(iid, self._ideas[iid])
                if fields is not None:
                    idea = _select_fields(idea, fields, idea)
                return self._json({"idea": idea})
            if child == "endorsements":
                root = "idea_endorsements"
                proxy = query.get("proxy", "").lower() in _TRUE_VALUES
                records = [v for v in self._votes[iid] if not proxy or v.get("idea_organization")]
            elif child == "comments":
                root = "comments"
                records = self._comments[iid]
            else:
                root = "idea_comments"
                spam = query.get("spam", "").lower() in _TRUE_VALUES
                records = [p for p in self._portal[iid] if spam or not p.get("spam")]
            return self._child_page(root, records, query, fields)

    def _child_page(
        self, root: str, records: list[JSON], query: dict[str, str], fields: list[str] | None
    ) -> _Response:
        page, per_page = self._paging(query)
        chunk = records[(page - 1) * per_page : page * per_page]
        items = [_dumps(r if fields is None else _select_fields(r, fields, r)) for r in chunk]
        return self._envelope(root, items, len(records), page, per_page)

    def _account_votes(self, query: dict[str, str]) -> _Response:
        """``GET /ideas/endorsements``: every vote of the account, oldest first."""
        if self.account_votes_refused is not None:
            return _Response(self.account_votes_refused, _error("Forbidden"))
        updated_since = self._since(query, "updated_since")
        created_since = self._since(query, "created_since")
        created_before = self._since(query, "created_before")
        proxy = self.account_votes_honour_proxy and query.get("proxy", "").lower() in _TRUE_VALUES
        with self._lock:
            records: list[tuple[int, str, JSON]] = []
            for votes in self._votes.values():
                for v in votes:
                    if proxy and not v.get("idea_organization"):
                        continue
                    created = _micros(parse_ts(v["created_at"]))
                    updated = _micros(parse_ts(v.get("updated_at") or v["created_at"]))
                    if updated_since is not None and (
                        updated < updated_since
                        or (not self.updated_since_inclusive and updated == updated_since)
                    ):
                        continue
                    if created_since is not None and created < created_since:
                        continue
                    if created_before is not None and created >= created_before:
                        continue
                    records.append((created, str(v["id"]), v))
            records.sort(key=lambda r: (r[0], len(r[1]), r[1]))
            return self._child_page("idea_endorsements", [r[2] for r in records], query, self._fields(query))


def _parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a fake Aha! API seeded with realistic ideas.")
    parser.add_argument("--ideas", type=int, default=300, help="number of ideas to seed")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept per response")
    parser.add_argument("--api-key", default="test-key", help="the only accepted bearer key")
    parser.add_argument("--seed", type=int, default=42, help="RNG seed for the data")
    parser.add_argument("--order", choices=ORDERS, default="created_desc", help="listing order of /ideas")
    parser.add_argument("--rate-limit-per-minute", type=int, default=None)
    parser.add_argument("--rate-limit-per-second", type=int, default=None)
    parser.add_argument(
        "--comments-count", choices=COMMENTS_COUNT_MODES, default="mixed", help="what comments_count counts"
    )
    return parser.parse_args(None if argv is None else list(argv))


def main(argv: Iterable[str] | None = None) -> int:
    """Run the offline simulator until SIGTERM/SIGINT; prints ``FAKE_AHA_URL=...`` once ready."""
    args = _parse_args(argv)
    fake = FakeAha(
        api_key=args.api_key,
        rng_seed=args.seed,
        order=args.order,
        latency=args.latency,
        rate_limit_per_minute=args.rate_limit_per_minute,
        rate_limit_per_second=args.rate_limit_per_second,
        port=args.port,
        comments_count=args.comments_count,
    )
    fake.seed(args.ideas)
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    fake.start()
    print(f"FAKE_AHA_URL={fake.url}", flush=True)
    try:
        while not done.wait(0.2):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
