"""The fake Aha!'s HTTP side: a real threaded server on 127.0.0.1, the request log, bearer-key auth,
per-account rate limits, injectable transport faults, and the routing of a path to a domain module's handler.

Conventions worth knowing (the real service leaves them undocumented):

* ``RequestLog.path`` is the full path without query (``/api/v1/ideas``); ``count(prefix)`` counts
  logged requests whose path starts with ``"/api/v1" + prefix``; ``inject(path_prefix=...)`` matches
  the path *after* ``/api/v1``.
* Rate limits count only authenticated, non-faulted requests that were answered (not the rejected
  ones), in sliding 1 s / 60 s windows shared by all keys (one account).
  ``X-Ratelimit-Limit`` is the per-minute limit (300 when none is enforced), ``-Remaining`` what is
  left of it in the current 60 s window, ``-Reset`` the epoch second (by ``clock``) when the oldest
  counted request leaves that window.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import random
import socket
import struct
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

from tests.fake_formats import API_PREFIX, error, html
from tests.fake_paging import BadRequest, Response, not_found, refused

DEFAULT_MINUTE_LIMIT = 300
SLOW_SECONDS = 5.0
FORBIDDEN_KEY = "forbidden-key"
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
# A path pattern under /api/v1 ("ideas/{idea}/comments") and what answers it: handler(query, *the {parts}).
Routes = Mapping[str, Callable[..., Response]]
_ByLength = dict[int, list[tuple[tuple[str, ...], Callable[..., Response]]]]  # parts, handler; literals first


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
class _Fault:
    """A pending injected fault; ``times`` counts down as matching requests consume it."""

    kind: str
    path_prefix: str
    times: int
    retry_after: float | None


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

    def __init__(self, address: tuple[str, int], fake: HttpFake) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client aborts and injected resets are expected; do not print tracebacks."""


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP adapter: all behaviour lives in the fake so it can be locked and observed."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real service behind its proxy
    server_version = "nginx"

    def version_string(self) -> str:
        """Look like the real front end rather than advertising Python."""
        return self.server_version

    @property
    def fake(self) -> HttpFake:
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


def _match(pattern: tuple[str, ...], parts: list[str]) -> list[str] | None:
    """What a path as long as the pattern gives its ``{placeholders}``, or None if it is another path."""
    found: list[str] = []
    for want, got in zip(pattern, parts, strict=True):
        if want.startswith("{"):
            found.append(got)
        elif want != got:
            return None
    return found


class HttpFake(ABC):
    """Serves the paths of ``route_table`` over real HTTP, logging, limiting and faulting as Aha! would."""

    clock: Callable[[], datetime]  # the account's clock (tests/fake_account.py): Date and rate-limit reset

    def __init__(
        self,
        *,
        api_key: str,
        latency: float,
        rate_limit_per_minute: int | None,
        rate_limit_per_second: int | None,
        send_retry_after: bool,
        port: int,
        fault_seed: int,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.send_retry_after = send_retry_after
        self.port = port
        self.url = ""
        self.requests: list[RequestLog] = []
        self.on_request: list[Callable[[RequestLog], None]] = []
        self.errors: list[str] = []  # tracebacks of fake bugs / hook failures (answered 500)
        self._limiter = _RateLimiter(rate_limit_per_minute, rate_limit_per_second)
        self._faults: list[_Fault] = []
        self.fault_share = 0.0  # share of requests answered with one of RANDOM_FAULTS (the benchmark's)
        self.slow_seconds = SLOW_SECONDS  # how long the "slow" fault holds its answer
        self._fault_rng = random.Random(fault_seed)  # noqa: S311 - apart from the data's, reproducible
        self._failed_once: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self._log_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes: _ByLength = {}

    @abstractmethod
    def route_table(self) -> Routes:
        """Every path pattern the fake answers, with its handler."""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
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

    def __enter__(self) -> Self:
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

    # ------------------------------------------------------------------ HTTP

    def _handle(self, method: str, target: str, headers: dict[str, str]) -> Response:
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
            resp = Response(500, error("Internal server error"))
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
    ) -> Response:
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
            return not_found()
        wait = self._limiter.acquire()
        if wait is not None:
            return self._rate_limited(wait if self.send_retry_after else None, wait)
        try:
            resp = self._route(sub, query)
        except BadRequest as exc:
            resp = Response(400, error(str(exc)))
        if truncate:
            resp.mode = "truncated"
        return resp

    def _route(self, sub: str, query: dict[str, str]) -> Response:
        """Answer a GET under /api/v1 from ``route_table``; anything else is a 404 as on the real service.

        A literal part beats a ``{part}``, so ``ideas/endorsements`` is not taken for an idea.
        """
        if not self._routes:  # built whole, then set: requests in other threads see none or all of it
            routes = [(tuple(pattern.split("/")), handler) for pattern, handler in self.route_table().items()]
            by_length: _ByLength = {}
            for route in sorted(routes, key=lambda route: -sum(not p.startswith("{") for p in route[0])):
                by_length.setdefault(len(route[0]), []).append(route)
            self._routes = by_length
        parts = sub.strip("/").split("/")
        for pattern, handler in self._routes.get(len(parts), ()):
            found = _match(pattern, parts)
            if found is not None:
                return handler(query, *found)
        return not_found()

    def _auth_error(self, headers: dict[str, str]) -> Response | None:
        """401 for a missing/wrong bearer key, 403 for the reserved "forbidden-key", else None."""
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, key = auth.strip().partition(" ")
        key = key.strip()
        if key == FORBIDDEN_KEY and scheme.lower() == "bearer":
            return refused(403)
        if scheme.lower() != "bearer" or key != self.api_key:
            return Response(401, error("Unauthorized"))
        return None

    def _rate_limited(self, retry_after: float | None, wait: float) -> Response:
        seconds = max(math.ceil(wait), 1)
        headers = {} if retry_after is None else {"Retry-After": str(seconds)}
        return Response(429, error(f"Rate limit exceeded. Try again in {seconds} seconds."), headers=headers)

    def _fault_response(self, fault: _Fault) -> Response:
        """The canned answer for an injected fault (all but "slow" and "truncated")."""
        if fault.kind == "429":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            seconds = max(math.ceil(fault.retry_after or 60), 1)
            return Response(
                429, error(f"Rate limit exceeded. Try again in {seconds} seconds."), headers=headers
            )
        canned: dict[str, tuple[int, bytes, str]] = {
            "500": (500, error("Internal server error"), "application/json; charset=utf-8"),
            "502": (502, html("502 Bad Gateway"), "text/html"),
            "503": (503, html("503 Service Temporarily Unavailable"), "text/html"),
            "401": (401, error("Unauthorized"), "application/json; charset=utf-8"),
            "403": (403, error("Forbidden"), "application/json; charset=utf-8"),
            "404": (404, error("Record not found"), "application/json; charset=utf-8"),
            "invalid_json": (
                200,
                html("Aha! is down for scheduled maintenance"),
                "text/html; charset=utf-8",
            ),
            "empty_200": (200, b"", "application/json; charset=utf-8"),
        }
        if fault.kind in canned:
            status, body, ctype = canned[fault.kind]
            return Response(status, body, ctype)
        return Response(0, b"", mode="reset")
