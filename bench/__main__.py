"""`python -m bench`: run every phase of the benchmark and print one table."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.floor import FORMULA
from bench.idle import idle_phase
from bench.phases import (
    Bench,
    comment_phase,
    daily_phase,
    fault_phase,
    header,
    latency_phase,
    memory_phase,
    parse_args,
    throughput_phase,
)
from bench.report import Report
from bench.resume import resume_phase


def main(argv: list[str] | None = None) -> int:
    """Run the phases and print the table; exit 1 when a target is not met."""
    args = parse_args(argv)
    load = os.getloadavg()[0]  # other work on the machine skews the times: say how busy it was
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tap-aha-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        bench = Bench.prepare(args, workdir)
        latency = None if args.skip_latency else latency_phase(bench)
        daily = None if args.skip_daily else daily_phase(bench)
        throughput = None if args.skip_throughput else throughput_phase(bench)
        memory = None if args.skip_memory else memory_phase(bench)
        faults = None if args.skip_faults else fault_phase(bench)
        resume = None if args.skip_resume else resume_phase(bench)
        comments = None if args.skip_comments else comment_phase(bench)
        idle = None if args.skip_idle else idle_phase()
        report = Report(  # before the files go: it reads the tap's log
            args=args,
            latency=latency,
            daily=daily,
            throughput=throughput,
            memory=memory,
            faults=faults,
            formula=FORMULA,
            comments=comments,
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    kept = (
        f"Configs, Singer output and tap logs: {workdir}"
        if args.workdir
        else "(--workdir DIR keeps the files)"
    )
    resumed = [] if resume is None else ["", *resume.lines()]
    idle_lines = [] if idle is None else ["", *idle.lines()]
    table = [*header(args, bench.streams, load), "", *report.lines(), *resumed, *idle_lines]
    print("\n".join([*table, "", kept]))
    met = report.all_met and (resume is None or resume.all_met) and (idle is None or idle.met)
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
