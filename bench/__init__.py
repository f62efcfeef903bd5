"""Benchmark of tap-aha against the fake Aha! server: requests, wall time, CPU, memory, state.

Run it with `.venv/bin/python -m bench` (see `--help`). The tap runs as its own process
(`tap-aha --config ...`), the fake server in another, and this process only measures.
"""
