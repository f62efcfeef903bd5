"""Run the tap (and the bare loop) as child processes and measure each one alone.

`os.wait4` gives the rusage of exactly that child: its CPU time and peak RSS, never mixed with the
fake server's process or with this one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgspec


@dataclass
class Measured:
    """Wall time, CPU time (user + system) and peak RSS of one child process."""

    wall: float
    cpu: float
    max_rss_mb: float
    exit_code: int


@dataclass
class TapRun:
    """One tap run: its measurements, its records per stream and its final state."""

    measured: Measured
    records: dict[str, int] = field(default_factory=dict)
    state: dict[str, t.Any] | None = None
    log: Path | None = None

    @property
    def record_total(self) -> int:
        """All records the run emitted."""
        return sum(self.records.values())

    @property
    def state_bytes(self) -> int:
        """Size of the final state as compact JSON."""
        return len(json.dumps(self.state, separators=(",", ":")).encode()) if self.state else 0


def run_measured(
    argv: list[str], *, stdout: t.IO[bytes], stderr: t.IO[bytes], env: dict[str, str]
) -> Measured:
    """Start `argv`, wait for it with wait4, return its own wall, CPU and peak memory."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env)  # noqa: S603 - our own argv
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        exit_code=process.returncode,
    )


def tap_executable() -> str:
    """`tap-aha` beside this interpreter (the venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("tap-aha")
    if beside.exists():
        return str(beside)
    found = shutil.which("tap-aha")
    if found is None:
        raise SystemExit("tap-aha is not installed: run `make install` first.")
    return found


def catalog_for(
    workdir: Path, config: dict[str, t.Any], streams: tuple[str, ...] | None
) -> tuple[Path, tuple[str, ...]]:
    """`tap-aha --discover` with only `streams` selected (None: all); the catalog file and the selection."""
    config_path = workdir / "discover.config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    found = subprocess.run(  # noqa: S603 - our own argv
        [tap_executable(), "--config", str(config_path), "--discover"], capture_output=True, check=True
    )
    catalog = json.loads(found.stdout)
    names = tuple(sorted(entry["tap_stream_id"] for entry in catalog["streams"]))
    wanted = names if streams is None else streams
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise SystemExit(f"The tap has no stream {', '.join(unknown)} (it has {', '.join(names)}).")
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in wanted
    catalog_path = workdir / "catalog.json"
    catalog_path.write_text(json.dumps(catalog), encoding="utf-8")
    return catalog_path, tuple(name for name in names if name in wanted)


def run_tap(
    workdir: Path,
    name: str,
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None = None,
    catalog: Path | None = None,
) -> TapRun:
    """Run `tap-aha --config ... [--catalog ...] [--state ...]`; output and log go to files in `workdir`."""
    config_path = workdir / f"{name}.config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    argv = [tap_executable(), "--config", str(config_path)]
    if catalog is not None:
        argv += ["--catalog", str(catalog)]
    if state is not None:
        state_path = workdir / f"{name}.state.json"
        state_path.write_text(json.dumps(state), encoding="utf-8")
        argv += ["--state", str(state_path)]
    out_path, log_path = workdir / f"{name}.singer.jsonl", workdir / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_AHA_")}
    env["TMPDIR"] = str(workdir)  # the shared rate limiter's file of each fake's URL goes with the workdir
    with out_path.open("wb") as out, log_path.open("wb") as err:
        measured = run_measured(argv, stdout=out, stderr=err, env=env)
    if measured.exit_code != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise RuntimeError(f"tap-aha run {name!r} exited {measured.exit_code}:\n" + "\n".join(tail))
    records, state_value = read_singer(out_path)
    return TapRun(measured=measured, records=records, state=state_value, log=log_path)


def read_singer(path: Path) -> tuple[dict[str, int], dict[str, t.Any] | None]:
    """Records per stream and the last STATE value of a Singer output file."""
    records: Counter[str] = Counter()
    state: dict[str, t.Any] | None = None
    with path.open("rb") as handle:
        for line in handle:
            message = msgspec.json.decode(line)
            if message["type"] == "RECORD":
                records[message["stream"]] += 1
            elif message["type"] == "STATE":
                state = message["value"]
    return dict(records), state


def run_bare(workdir: Path, urls: list[str], api_key: str) -> tuple[Measured, dict[str, t.Any]]:
    """Run the bare loop (`python -m bench.bare`) over `urls`; its measurements and its summary."""
    urls_path = workdir / "bare.urls"
    urls_path.write_text("\n".join(urls) + "\n", encoding="utf-8")
    out_path = workdir / "bare.out"
    env = {**os.environ, "BENCH_API_KEY": api_key}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parent.parent), env.get("PYTHONPATH")])
    )
    with out_path.open("wb") as out, (workdir / "bare.log").open("wb") as err:
        measured = run_measured(
            [sys.executable, "-m", "bench.bare", str(urls_path)], stdout=out, stderr=err, env=env
        )
    if measured.exit_code != 0:
        raise RuntimeError(f"bare loop exited {measured.exit_code}: see {workdir / 'bare.log'}")
    summary: dict[str, t.Any] = json.loads(out_path.read_text(encoding="utf-8"))
    return measured, summary
