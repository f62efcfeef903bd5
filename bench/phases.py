"""The benchmark's phases: each starts its own fake Aha! process and runs the tap against it."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from bench.fakeproc import IDEA_STREAMS, THREE_STREAMS, FakeOptions, FakeProcess
from bench.floor import floor_seconds
from bench.procs import Measured, TapRun, catalog_for, run_bare, run_measured, run_tap, tap_executable
from tap_aha.ratelimit import RateLimiter

if t.TYPE_CHECKING:
    from bench.fakeproc import Audit

UNLIMITED = 1_000_000  # requests a minute / a second: no client-side limit in the CPU and memory phases


@dataclass(frozen=True)
class Bench:
    """What every phase shares: the options, the folder for files, the catalog and its streams."""

    args: argparse.Namespace
    workdir: Path
    catalog: Path
    streams: tuple[str, ...]

    @classmethod
    def prepare(cls, args: argparse.Namespace, workdir: Path) -> Bench:
        """Discover the tap's streams and select the ones benchmarked."""
        wanted = None if args.streams == "all" else tuple(name.strip() for name in args.streams.split(","))
        config = {"api_key": "discover", "api_url": "http://127.0.0.1:9/api/v1"}
        catalog, streams = catalog_for(workdir, config, wanted)
        if "ideas" not in streams:
            raise SystemExit("Select 'ideas': the other streams follow its changes.")
        return cls(args=args, workdir=workdir, catalog=catalog, streams=streams)

    def run(self, name: str, config: dict[str, t.Any], state: dict[str, t.Any] | None = None) -> TapRun:
        """One tap run with the benchmark's catalog."""
        return run_tap(self.workdir, name, config, state=state, catalog=self.catalog)


@dataclass(frozen=True)
class Scale:
    """Latency and limits of one phase: Aha!'s divided (latency) and multiplied (limits) by k."""

    k: float
    latency: float
    per_minute: int
    per_second: int

    @classmethod
    def of(cls, args: argparse.Namespace, k: float) -> Scale:
        """Aha!'s figures from the command line, scaled by k."""
        return cls(
            k=k,
            latency=args.latency_ms / 1000 / k,
            per_minute=round(args.per_minute * k),
            per_second=round(args.per_second * k),
        )

    def floor(self, requests: int) -> float:
        """The rate-limit floor of `requests` requests at this scale."""
        return floor_seconds(requests, self.per_minute, self.per_second, self.latency)

    def describe(self) -> str:
        """E.g. `k = 20: 20 ms, 6,000/min, 300/s`."""
        return f"k = {self.k:g}: {self.latency * 1000:g} ms, {self.per_minute:,}/min, {self.per_second:,}/s"


@dataclass
class LatencyPhase:
    """The full run (at scale k) and the run after changes (at its own scale, default Aha!'s own)."""

    full_scale: Scale
    full: TapRun
    full_audit: Audit
    expected_bookmark: str
    incremental_scale: Scale
    changes: dict[str, int]
    incremental: TapRun
    incremental_audit: Audit

    @property
    def full_floor(self) -> float:
        """The full run's rate-limit floor."""
        return self.full_scale.floor(self.full_audit.total)

    @property
    def incremental_floor(self) -> float:
        """The run after changes' rate-limit floor."""
        return self.incremental_scale.floor(self.incremental_audit.total)


@dataclass
class ThroughputPhase:
    """The tap and the bare loop over the same requests, zero latency, no rate limit."""

    tap: TapRun
    audit: Audit
    bare: Measured
    bare_summary: dict[str, t.Any]
    startup: Measured
    limiter_seconds: float  # one request's time in the shared limiter, its state file full


@dataclass
class FaultPhase:
    """The same full run clean, with a share of requests failing once, and with one stalled answer."""

    scale: Scale
    clean: TapRun
    faulty: TapRun
    faulty_audit: Audit
    stalled: TapRun


@dataclass
class CommentRun:
    """A first run under one reading of comments_count: the run, its requests and the data's figures."""

    run: TapRun
    audit: Audit
    stats: dict[str, int]


@dataclass
class CommentPhase:
    """First runs of one account under each thing comments_count may count (issue 16)."""

    scale: Scale
    runs: dict[str, CommentRun] = field(default_factory=dict)


@dataclass
class MemoryPhase:
    """Full runs at zero latency for a few account sizes."""

    runs: dict[int, TapRun] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark tap-aha against the fake Aha! server."
    )
    add = parser.add_argument
    add("--ideas", type=int, default=5000, help="ideas in the account for the request/time/CPU phases")
    add("--scale", type=float, default=25.0, help="k: latency / k and limits x k (same requests in flight)")
    add("--latency-ms", type=float, default=400.0, help="Aha!'s latency per request before scaling")
    add("--per-minute", type=int, default=300, help="requests_per_minute before scaling (Aha!: 300)")
    add("--per-second", type=int, default=15, help="requests_per_second before scaling (tap default)")
    add(
        "--incremental-scale",
        type=float,
        default=1.0,
        help="k of the run after changes (default 1: Aha!'s own latency and limits; it is short)",
    )
    add("--change-share", type=float, default=0.02, help="share of ideas changed before the second run")
    add("--seed", type=int, default=42, help="RNG seed of the data and the changes")
    add("--vote-share", type=float, default=0.15, help="share of ideas with proxy votes")
    add("--comment-share", type=float, default=0.30, help="share of ideas with internal comments")
    add("--description-chars", type=int, default=600, help="size of an idea's description")
    add(
        "--memory-ideas",
        type=int,
        nargs=2,
        default=[1000, 10000],
        metavar=("SMALL", "LARGE"),
        help="account sizes of the peak-memory runs",
    )
    add(
        "--streams",
        default=",".join(IDEA_STREAMS),
        help="streams to select, comma-separated, or 'all' (default: the four idea streams, "
        + ",".join(IDEA_STREAMS)
        + "; issue 5's three: "
        + ",".join(THREE_STREAMS)
        + ")",
    )
    add("--parallel-requests", type=int, default=None, help="tap setting (default: the tap's own)")
    add("--skip-latency", action="store_true", help="skip the request and wall-time phase")
    add("--skip-daily", action="store_true", help="skip the daily run with every stream selected")
    add("--daily-ideas", type=int, default=1500, help="ideas in the account of the daily-run phase")
    add("--skip-throughput", action="store_true", help="skip the zero-latency CPU phase")
    add("--skip-memory", action="store_true", help="skip the memory phase")
    add("--skip-faults", action="store_true", help="skip the fault and stalled-answer phase")
    add("--skip-resume", action="store_true", help="skip the interrupted-first-sync phase")
    add("--resume-ideas", type=int, default=1500, help="ideas of the interrupted-first-sync phase")
    add(
        "--resume-comments-count",
        choices=("mixed", "internal", "portal", "both"),
        default="mixed",
        help="what comments_count counts in that phase ('both': comment requests are skipped across resumes)",
    )
    add("--skip-comments", action="store_true", help="skip the comments_count phase")
    add("--comment-ideas", type=int, default=2000, help="ideas in the account of the comments_count phase")
    add("--skip-idle", action="store_true", help="skip the idle Lakeflow pipeline phase (bench/idle.py)")
    add("--fault-ideas", type=int, default=1000, help="ideas in the account of the fault phase")
    add("--fault-scale", type=float, default=10.0, help="k of the fault phase (10: 40 ms, 3,000/min, 150/s)")
    add("--fault-share", type=float, default=0.05, help="share of requests failing once (5xx or reset)")
    add("--stall-seconds", type=float, default=10.0, help="how long the one stalled answer is held")
    add("--workdir", type=Path, default=None, help="keep configs, Singer output and logs here")
    return parser.parse_args(argv)


def _options(args: argparse.Namespace, ideas: int, **serve: t.Any) -> FakeOptions:
    return FakeOptions(
        ideas=ideas,
        seed=args.seed,
        vote_share=args.vote_share,
        comment_share=args.comment_share,
        description_chars=args.description_chars,
        **serve,
    )


def _config(
    args: argparse.Namespace, fake: FakeProcess, per_minute: int, per_second: int
) -> dict[str, t.Any]:
    config: dict[str, t.Any] = {
        "api_key": fake.options.api_key,
        "api_url": fake.url,
        "requests_per_minute": per_minute,
        "requests_per_second": per_second,
    }
    if args.parallel_requests is not None:
        config["parallel_requests"] = args.parallel_requests
    return config


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _serve(scale: Scale) -> dict[str, t.Any]:
    return {"latency": scale.latency, "per_minute": scale.per_minute, "per_second": scale.per_second}


def latency_phase(bench: Bench) -> LatencyPhase:
    """Full run; then, on a fake with the same data, the changes and the incremental run."""
    args = bench.args
    full_scale, incremental_scale = Scale.of(args, args.scale), Scale.of(args, args.incremental_scale)
    with FakeProcess(_options(args, args.ideas, **_serve(full_scale))) as fake:
        config = _config(args, fake, full_scale.per_minute, full_scale.per_second)
        _progress(f"full run: {args.ideas:,} ideas at {full_scale.describe()}")
        full = bench.run("full", config)
        full_audit = fake.audit(None, bench.streams)
        expected_bookmark = fake.max_updated()
    bookmark = (full.state or {}).get("bookmarks", {}).get("ideas", {}).get("replication_key_value")
    # The same seed gives the same data: the full run's state is valid against this fake too.
    with FakeProcess(_options(args, args.ideas, **_serve(incremental_scale))) as fake:
        changes = fake.change(args.change_share, args.seed)
        config = _config(args, fake, incremental_scale.per_minute, incremental_scale.per_second)
        _progress(f"run after changing {sum(changes.values()):,} ideas, at {incremental_scale.describe()}")
        incremental = bench.run("incremental", config, state=full.state)
        incremental_audit = fake.audit(bookmark, bench.streams)
    return LatencyPhase(
        full_scale=full_scale,
        full=full,
        full_audit=full_audit,
        expected_bookmark=expected_bookmark,
        incremental_scale=incremental_scale,
        changes=changes,
        incremental=incremental,
        incremental_audit=incremental_audit,
    )


def daily_phase(bench: Bench) -> LatencyPhase:
    """Issue 16's daily run: every stream, a full run of `--daily-ideas`, then the run after 2% changed."""
    args = argparse.Namespace(**{**vars(bench.args), "ideas": bench.args.daily_ideas, "streams": "all"})
    workdir = bench.workdir / "daily"
    workdir.mkdir(exist_ok=True)
    return latency_phase(Bench.prepare(args, workdir))


def throughput_phase(bench: Bench) -> ThroughputPhase:
    """The tap at its defaults, then the bare loop over the URLs the tap requested; no latency, no limit."""
    args, workdir = bench.args, bench.workdir
    with FakeProcess(_options(args, args.ideas)) as fake:
        _progress(f"zero-latency run: {args.ideas:,} ideas, no rate limit")
        tap = bench.run("throughput", _config(args, fake, UNLIMITED, UNLIMITED))
        audit = fake.audit(None, bench.streams)
        urls = fake.urls()
        fake.clear()
        _progress(f"bare requests + json loop over the same {len(urls):,} requests")
        bare, summary = run_bare(workdir, urls, fake.options.api_key)
    with (workdir / "about.out").open("wb") as out:
        startup = run_measured([tap_executable(), "--about"], stdout=out, stderr=out, env=dict(os.environ))
    limiter = limiter_cost(workdir)
    return ThroughputPhase(
        tap=tap, audit=audit, bare=bare, bare_summary=summary, startup=startup, limiter_seconds=limiter
    )


def limiter_cost(workdir: Path, requests: int = 5000, kept: int = 300) -> float:
    """Seconds one acquire of the shared limiter takes (lock, read, write), its file holding 300 sends."""
    saved, tempfile.tempdir = tempfile.tempdir, str(workdir)  # its state file goes with the workdir
    try:
        # One limiter makes the file keep `kept` send times (it counts on them); the other is measured.
        filler = RateLimiter(per_minute=kept, per_second=kept, api_url="http://bench.invalid")
        limiter = RateLimiter(per_minute=UNLIMITED, per_second=UNLIMITED, api_url="http://bench.invalid")
    finally:
        tempfile.tempdir = saved
    for _ in range(kept - 1):
        filler.acquire()
    started = time.perf_counter()
    for _ in range(requests):
        limiter.acquire()
    return (time.perf_counter() - started) / requests


def fault_phase(bench: Bench) -> FaultPhase:
    """A clean full run, then the same with failing requests, then with one stalled answer."""
    args = bench.args
    scale = Scale.of(args, args.fault_scale)
    variants: dict[str, dict[str, float]] = {
        "clean": {},
        "faulty": {"fault_share": args.fault_share},
        "stalled": {"stall": args.stall_seconds},
    }
    runs: dict[str, TapRun] = {}
    audits: dict[str, Audit] = {}
    for name, serve in variants.items():
        with FakeProcess(_options(args, args.fault_ideas, **_serve(scale), **serve)) as fake:
            _progress(f"{name} run: {args.fault_ideas:,} ideas at {scale.describe()} {serve or ''}")
            runs[name] = bench.run(f"faults-{name}", _config(args, fake, scale.per_minute, scale.per_second))
            audits[name] = fake.audit(None, bench.streams)
    return FaultPhase(scale, runs["clean"], runs["faulty"], audits["faulty"], runs["stalled"])


COMMENT_MODES = ("internal", "portal", "both", "unreliable")


def comment_phase(bench: Bench) -> CommentPhase:
    """A first run under each reading of comments_count, at the full run's scale."""
    args = bench.args
    phase = CommentPhase(Scale.of(args, args.scale))
    for mode in COMMENT_MODES:
        options = _options(args, args.comment_ideas, comments_count=mode, **_serve(phase.scale))
        with FakeProcess(options) as fake:
            _progress(f"first run, comments_count counts {mode}: {args.comment_ideas:,} ideas")
            run = bench.run(
                f"comments-{mode}", _config(args, fake, phase.scale.per_minute, phase.scale.per_second)
            )
            phase.runs[mode] = CommentRun(run, fake.audit(None, bench.streams), fake.comment_stats())
    return phase


def memory_phase(bench: Bench) -> MemoryPhase:
    """Peak RSS and final state size of full runs at two account sizes."""
    phase = MemoryPhase()
    for ideas in bench.args.memory_ideas:
        with FakeProcess(_options(bench.args, ideas)) as fake:
            _progress(f"memory run: {ideas:,} ideas, zero latency")
            config = _config(bench.args, fake, UNLIMITED, UNLIMITED)
            phase.runs[ideas] = bench.run(f"memory-{ideas}", config)
    return phase


def tap_revision() -> str:
    """The commit the tap was measured at, and whether tap_aha/ had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, read-only
            cwd=root, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "tap_aha"],  # noqa: S607
            cwd=root, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "tap_aha at an unknown commit (no git)"
    return f"tap_aha at commit {commit}" + (" with uncommitted changes" if dirty else "")


def cpu_model() -> str:
    """The CPU's model name (Linux), else the machine type."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(args: argparse.Namespace, streams: tuple[str, ...], load: float) -> list[str]:
    """Machine, versions, date, data and scale, and the warning about absolute times."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    full, incremental = Scale.of(args, args.scale), Scale.of(args, args.incremental_scale)
    in_flight = args.per_minute / 60 * args.latency_ms / 1000
    return [
        f"tap-aha benchmark, {now}. Machine: {os.cpu_count()} CPUs ({cpu_model()}), "
        f"{platform.platform()}, Python {platform.python_version()}; {tap_revision()}; load average "
        f"{load:.2f} before the run.",
        "Absolute times vary between runs and machines: the ratios are the figures.",
        f"Data: {args.ideas:,} ideas, {args.vote_share:.0%} with proxy votes, {args.comment_share:.0%} with "
        f"internal comments, {args.description_chars}-character descriptions, seed {args.seed}. "
        f"Streams selected: {', '.join(streams)}.",
        f"Aha!: {args.latency_ms:g} ms a request, {args.per_minute}/min; the tap's limit {args.per_second}/s "
        f"({in_flight:g} requests in flight at the per-minute limit). Scale k divides the latency and "
        "multiplies both limits (the same requests in flight).",
        f"Full run at {full.describe()}; run after changes at {incremental.describe()}; "
        "CPU and memory runs at zero latency without limits.",
    ]
