"""Interrupted first syncs: a first run SIGKILLed at 50% and at 90% of its ideas, resumed from its last STATE.

Each resumed run is measured (requests, wall time) against a clean first run of the same account, and held
to the bound of issue 18: requests <= the clean run's x (1 - the share its last STATE marks done) + one
window's worth (the largest window's share of the clean run's requests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import typing as t
from dataclasses import dataclass

from bench.fakeproc import FakeProcess
from bench.phases import Scale, _config, _options, _progress, _serve
from bench.procs import TapRun, tap_executable
from tap_aha.first_sync import MARKER, MAX_WINDOW_PAGES
from tap_aha.settings import AHA_MAX_PAGE_SIZE

if t.TYPE_CHECKING:
    from bench.phases import Bench

KILL_SHARES = (0.5, 0.9)


@dataclass
class Killed:
    """A run killed once it had written `share` of the ideas: what it had spent and its last STATE."""

    share: float
    wall: float
    requests: int
    ideas_written: int
    state: dict[str, t.Any] | None

    @property
    def state_bytes(self) -> int:
        """The size of the last STATE's value, the marker included."""
        return len(json.dumps(self.state)) if self.state else 0

    @property
    def done_before(self) -> str | None:
        """The marker's end of the finished windows, if the run got past its first window."""
        marker = (self.state or {}).get("bookmarks", {}).get("ideas", {}).get(MARKER)
        return None if marker is None else t.cast("str", marker["done_before"])


@dataclass
class Resumed:
    """A kill and the run resumed from its state."""

    killed: Killed
    done: float  # share of the ideas created before the marker's done_before
    run: TapRun
    requests: int


@dataclass
class ResumePhase:
    """The clean first run and the resumed ones."""

    scale: Scale
    ideas: int
    comments_count: str
    clean: TapRun
    clean_requests: int
    resumed: list[Resumed]

    def bound(self, resumed: Resumed) -> float:
        """Issue 18's bound on the resumed run's requests."""
        window = self.clean_requests * MAX_WINDOW_PAGES * AHA_MAX_PAGE_SIZE / self.ideas
        return self.clean_requests * (1 - resumed.done) + window

    @property
    def all_met(self) -> bool:
        """Every resumed run within its bound."""
        return all(r.requests <= self.bound(r) for r in self.resumed)

    def lines(self) -> list[str]:
        """A Markdown table of the kills and resumes."""
        clean_wall = self.clean.measured.wall
        out = [
            f"Interrupted first syncs ({self.ideas:,} ideas, {self.scale.describe()}, comments_count counts "
            f"{self.comments_count}): a first run SIGKILLed "
            f"once it had written a share of the ideas, then resumed from its last STATE. Clean first run: "
            f"{self.clean_requests:,} requests, {clean_wall:.1f} s.",
            "",
            "| killed at | ideas written | marked done | state, bytes | killed run: requests, s "
            "| resumed: requests, s | resumed / clean | bound | met |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.resumed:
            k, bound = r.killed, self.bound(r)
            out.append(
                f"| {k.share:.0%} | {k.ideas_written:,} | {r.done:.0%} | {k.state_bytes:,} "
                f"| {k.requests:,}, {k.wall:.1f} "
                f"| {r.requests:,}, {r.run.measured.wall:.1f} | {r.requests / self.clean_requests:.0%} "
                f"requests, {r.run.measured.wall / clean_wall:.0%} time | {bound:,.0f} "
                f"| {'yes' if r.requests <= bound else 'NO'} |"
            )
        return out


def resume_phase(bench: Bench) -> ResumePhase:
    """A clean first run, then for each share a killed run and its resumption.

    Each run gets a fake of its own (the same seed gives the same data, so a state stays valid): a fake's
    URL keys the machine-wide rate limiter, so no run waits for the requests of the one before it.
    """
    args = bench.args
    ideas, scale = args.resume_ideas, Scale.of(args, args.scale)
    options = _options(args, ideas, comments_count=args.resume_comments_count, **_serve(scale))

    def config(fake: FakeProcess) -> dict[str, t.Any]:
        return _config(args, fake, scale.per_minute, scale.per_second)

    with FakeProcess(options) as fake:
        _progress(f"clean first run: {ideas:,} ideas at {scale.describe()}")
        clean = bench.run("resume-clean", config(fake))
        clean_requests = len(fake.urls())
    resumed = []
    for share in KILL_SHARES:
        _progress(f"first run killed at {share:.0%} of the ideas, then resumed")
        with FakeProcess(options) as fake:
            killed = run_killed(bench, f"resume-killed-{share:.0%}", config(fake), share, ideas)
            killed.requests = len(fake.urls())
        with FakeProcess(options) as fake:
            run = bench.run(f"resume-{share:.0%}", config(fake), state=killed.state)
            before = killed.done_before
            done = t.cast("float", fake.call("created_share", before)) if before else 0.0
            resumed.append(Resumed(killed=killed, done=done, run=run, requests=len(fake.urls())))
    return ResumePhase(scale, ideas, args.resume_comments_count, clean, clean_requests, resumed)


def run_killed(bench: Bench, name: str, config: dict[str, t.Any], share: float, ideas: int) -> Killed:
    """The tap, SIGKILLed as soon as its output holds `share` of the ideas."""
    workdir = bench.workdir
    config_path = workdir / f"{name}.config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    argv = [tap_executable(), "--config", str(config_path), "--catalog", str(bench.catalog)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_AHA_")}
    env["TMPDIR"] = str(workdir)
    started = time.perf_counter()
    written, state = 0, None
    with (workdir / f"{name}.log").open("wb") as err:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)  # noqa: S603
        for line in process.stdout or ():
            if not line.endswith(b"\n"):
                break
            message = json.loads(line)
            if message["type"] == "STATE":
                state = message["value"]
            elif message["type"] == "RECORD" and message["stream"] == "ideas":
                written += 1
                if written >= share * ideas:
                    process.send_signal(signal.SIGKILL)
        process.wait()
    return Killed(share, time.perf_counter() - started, 0, written, state)
