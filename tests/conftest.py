"""Fixtures: a real fake Aha! server on 127.0.0.1 and ways to run the real tap against it."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from tap_aha.client import AhaStream
from tap_aha.tap import TapAha
from tests.fake_aha import FakeAha

REPO = Path(__file__).resolve().parents[1]
BUILD_LOCK_DIR = Path(tempfile.gettempdir())  # the machine's, before limiter_state_dir moves TMPDIR
Config = dict[str, t.Any]
IDEA_STREAMS = ("ideas", "idea_proxy_votes", "idea_comments", "idea_portal_comments")
TAP = [sys.executable, "-m", "tap_aha"]
_PRIORITY_SET = False
# `make test` spreads the test files over pytest-xdist workers (`--dist loadfile`: a file stays on one worker,
# its module fixtures built once). The long ones (pip and Meltano installs, Spark, a minute of rate-limit
# pacing) start first, so the rest of the suite runs beside them instead of after them.
SPARK_FILE = "test_lakeflow_spark.py"
RATELIMIT_FILE = "test_ratelimit.py"
KEEP_PRIORITY = (SPARK_FILE, RATELIMIT_FILE)  # timing-bound: their workers keep their CPU priority
LONG_FIRST = (
    SPARK_FILE,
    RATELIMIT_FILE,
    "test_wheel.py",
    "test_meltano.py",
    "test_hub_definition.py",
)


@dataclass
class Run:
    """The Singer messages of one run, with accessors the tests need."""

    messages: list[dict[str, t.Any]]
    stderr: str = ""
    returncode: int = 0

    def records(self, stream: str) -> list[dict[str, t.Any]]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    def ids(self, stream: str) -> set[str]:
        return {r["id"] for r in self.records(stream)}

    def schemas(self, stream: str) -> list[dict[str, t.Any]]:
        return [m for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream]

    @property
    def states(self) -> list[dict[str, t.Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def state(self) -> dict[str, t.Any]:
        return self.states[-1]

    def bookmark(self, stream: str = "ideas") -> str | None:
        value: str | None = self.state["bookmarks"].get(stream, {}).get("replication_key_value")
        return value


def parse_messages(text: str) -> list[dict[str, t.Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def selecting(config: dict[str, t.Any], streams: t.Collection[str]) -> dict[str, t.Any]:
    """The discovered catalog with exactly `streams` selected."""
    catalog = TapAha(config=config).catalog_dict
    for entry in catalog["streams"]:
        top = next(m for m in entry["metadata"] if m["breadcrumb"] == [])
        top["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


def run_tap(
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None = None,
    catalog: dict[str, t.Any] | None = None,
    streams: t.Collection[str] | None = None,
) -> Run:
    """Run a sync in this process (fast; lets tests patch backoff) and collect its output.

    `streams` selects only those (a catalog); without it and a catalog, every stream runs.
    """
    if streams is not None:
        catalog = selecting(config, streams)
    buffer = io.BytesIO()
    out = io.TextIOWrapper(buffer, encoding="utf-8")
    with contextlib.redirect_stdout(out):
        TapAha(config=config, state=state, catalog=catalog).sync_all()
        out.flush()
    return Run(parse_messages(buffer.getvalue().decode()))


def run_cli(
    args: list[str],
    tmp_path: Path,
    *,
    config: dict[str, t.Any] | None = None,
    state: dict[str, t.Any] | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Run:
    """Run the real `tap-aha` command line as a user would."""
    argv = list(TAP)
    if config is not None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        argv += ["--config", str(path)]
    if state is not None:
        path = tmp_path / "state.json"
        path.write_text(state if isinstance(state, str) else json.dumps(state))
        argv += ["--state", str(path)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_AHA_")}
    full_env.update(env or {})
    proc = subprocess.run(
        argv + args, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=REPO, check=False
    )
    messages = parse_messages(proc.stdout) if proc.returncode == 0 else _parse_partial(proc.stdout)
    return Run(messages, proc.stderr, proc.returncode)


def _parse_partial(text: str) -> list[dict[str, t.Any]]:
    messages = []
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            messages.append(json.loads(line))
    return messages


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, put the long files first: the controller hands out files in this order."""
    if hasattr(config, "workerinput"):
        rank = {name: i for i, name in enumerate(LONG_FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """On an xdist worker, yield the CPU to the ones that run the Spark and the four-process limiter tests.

    Spark waits a fixed 10 s for each streaming source's Python worker to connect back, then fails the query;
    on two busy cores a Python start can take that long. The limiter test's processes must send each request
    within the limiter's 0.25 s margin of its slot. A worker whose first test is in neither file lowers its
    priority (and its subprocesses') once; those two files start first, each on a worker of its own.
    """
    global _PRIORITY_SET  # noqa: PLW0603 - once per worker process
    if hasattr(item.config, "workerinput") and not _PRIORITY_SET:
        _PRIORITY_SET = True
        if item.path.name not in KEEP_PRIORITY:
            os.nice(5)


@pytest.fixture(scope="session")
def checkout_build_lock() -> FileLock:
    """Held while a test builds this checkout in place: `make wheel`, a pip install of it (Meltano's too).

    Builds write build/ and tap_aha.egg-info/ in the checkout, so two at once (two xdist workers) could mix
    their files. The lock lives in the temporary directory, named by a hash of the checkout's path.
    """
    digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:16]
    return FileLock(BUILD_LOCK_DIR / f"tap-aha-checkout-build-{digest}.lock")


@pytest.fixture(autouse=True, scope="session")
def limiter_state_dir(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Path]:
    """The shared rate-limit state of every fake server's URL lands in a directory of this session.

    The limiter keeps one small file per API URL in the temporary directory; the fakes' random ports would
    leave hundreds in /tmp. TMPDIR carries the same choice to the tap processes the tests start.
    """
    path = tmp_path_factory.mktemp("limiter-state")
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = str(path)
    yield path
    tempfile.tempdir = saved[0]
    if saved[1] is None:
        del os.environ["TMPDIR"]
    else:
        os.environ["TMPDIR"] = saved[1]


@pytest.fixture
def fake() -> t.Iterator[FakeAha]:
    with FakeAha() as server:
        yield server


def fake_config(fake: FakeAha, **extra: t.Any) -> dict[str, t.Any]:
    """Settings for the fake, with limits high enough that tests are not throttled, plus `extra`."""
    return {
        "api_key": fake.api_key,
        "api_url": fake.url,
        "requests_per_minute": 1_000_000,
        "requests_per_second": 100_000,
        **extra,
    }


@pytest.fixture
def config(fake: FakeAha) -> dict[str, t.Any]:
    """Settings for the fake, with limits high enough that tests are not throttled."""
    return fake_config(fake)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs retry after milliseconds instead of seconds."""
    monkeypatch.setattr(AhaStream, "backoff_base_seconds", 0.01)
    monkeypatch.setattr(AhaStream, "rate_limit_backoff_seconds", 0.01)
