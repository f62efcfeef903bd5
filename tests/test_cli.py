"""The command line as a user meets it: bad input, secrets, a killed run, discovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import typing as t
from pathlib import Path

import pytest

from tests.conftest import REPO, TAP, Run, run_cli
from tests.fake_aha import FakeAha
from tests.fake_http import RequestLog

SECRET = "sk-live-9f8e7d6c5b4a"  # noqa: S105 - a fake key the tests look for in every output


def _error_lines(run: Run) -> list[str]:
    return [line for line in run.stderr.splitlines() if "ERROR" in line]


def _assert_one_clear_line(run: Run, *words: str) -> None:
    assert run.returncode == 1
    errors = _error_lines(run)
    assert len(errors) == 1, run.stderr
    for word in words:
        assert word in errors[0]
    assert "Traceback" not in run.stderr
    assert not [m for m in run.messages if m["type"] == "RECORD"]
    assert SECRET not in run.stderr + json.dumps(run.messages)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"api_key": None}, ["'api_key' is required"]),
        ({"api_key": 12345}, ["'api_key' must be a string"]),
        ({"api_url": None, "subdomain": "acme.aha.io/evil"}, ["'subdomain'"]),
        ({"api_url": None, "subdomain": "me@acme"}, ["'subdomain'"]),
        ({"api_url": None, "subdomain": "acme#x"}, ["'subdomain'"]),
        ({"api_url": None, "subdomain": "acme.aha.io:8443"}, ["'subdomain'"]),
        ({"api_url": None, "subdomain": "ac me"}, ["'subdomain'"]),
        ({"api_url": None, "subdomain": None}, ["'subdomain' is required"]),
        ({"api_url": "http://example.com/api/v1"}, ["'api_url'", "https"]),
        ({"api_url": "https://user:pw@acme.aha.io/api/v1"}, ["'api_url'", "credentials"]),
        ({"page_size": 500}, ["'page_size'", "between 1 and 200"]),
        ({"page_size": "many"}, ["'page_size'"]),
        ({"start_date": "last tuesday"}, ["'start_date'"]),
        ({"requests_per_minute": 0}, ["'requests_per_minute'"]),
        ({"max_retries": -1}, ["'max_retries'"]),
        ({"request_timeout": 0}, ["'request_timeout'"]),
    ],
)
def test_bad_config_is_one_line_and_no_request(
    fake: FakeAha, tmp_path: Path, changes: dict[str, t.Any], words: list[str]
) -> None:
    config = {"api_key": SECRET, "api_url": fake.url, "subdomain": "acme", **changes}
    config = {k: v for k, v in config.items() if v is not None}
    run = run_cli([], tmp_path, config=config)
    _assert_one_clear_line(run, *words)
    assert fake.count() == 0


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("{not json", ["state file", "not valid JSON"]),
        ("", ["state file", "not valid JSON"]),
        ("[1, 2]", ["state file must hold a JSON object"]),
        ('{"bookmarks": []}', ["'bookmarks'"]),
        ('{"bookmarks": {"ideas": "yesterday"}}', ["stream 'ideas'"]),
        ('{"bookmarks": {"ideas": {"replication_key_value": "soon"}}}', ["'ideas'", "ISO-8601"]),
    ],
)
def test_bad_state_is_one_line_and_no_request(
    fake: FakeAha, tmp_path: Path, state: str, words: list[str]
) -> None:
    run = run_cli([], tmp_path, config={"api_key": SECRET, "api_url": fake.url}, state=state)
    _assert_one_clear_line(run, *words)
    assert fake.count() == 0


@pytest.mark.parametrize(
    ("catalog", "words"),
    [
        ("{oops", ["catalog file", "not valid JSON"]),
        ('{"streams": {}}', ["'streams' list"]),
        ('{"streams": [{"schema": {}}]}', ["'tap_stream_id'"]),
        ('{"streams": [{"tap_stream_id": "tickets", "schema": {}}]}', ["'tickets'"]),
        ('{"streams": [{"tap_stream_id": "ideas"}]}', ["'ideas'", "'schema'"]),
        ('{"streams": [{"tap_stream_id": "ideas", "schema": {}, "metadata": [1]}]}', ["'metadata'"]),
        (
            '{"streams": [{"tap_stream_id": "ideas", "schema": {}, "metadata": [{"breadcrumb": []}]}]}',
            ["'metadata'"],
        ),
        (
            '{"streams": [{"tap_stream_id": "ideas", "schema": {}, "metadata": '
            '[{"breadcrumb": [], "metadata": {"replication-key": "created_at"}}]}]}',
            ["replication key 'created_at'"],
        ),
        (
            '{"streams": [{"tap_stream_id": "ideas", "schema": {}, "key_properties": ["name"]}]}',
            ["key properties"],
        ),
    ],
)
def test_bad_catalog_is_one_line_and_no_request(
    fake: FakeAha, tmp_path: Path, catalog: str, words: list[str]
) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(catalog)
    run = run_cli(["--catalog", str(path)], tmp_path, config={"api_key": SECRET, "api_url": fake.url})
    _assert_one_clear_line(run, *words)
    assert fake.count() == 0


def test_a_wrong_api_path_is_one_line(fake: FakeAha, tmp_path: Path) -> None:
    fake.seed(3)
    run = run_cli([], tmp_path, config={"api_key": fake.api_key, "api_url": fake.url.replace("/v1", "/v2")})
    assert run.returncode == 1
    assert any("HTTP 404 for GET /api/v2/ideas: check" in line for line in _error_lines(run))
    assert "Traceback" not in run.stderr


def test_rejected_key_is_one_line_and_never_printed(fake: FakeAha, tmp_path: Path) -> None:
    fake.seed(3)
    run = run_cli([], tmp_path, config={"api_key": SECRET, "api_url": fake.url})
    assert run.returncode == 1
    assert any("rejected the API key (HTTP 401)" in line for line in _error_lines(run))
    assert SECRET not in run.stderr
    paths = [r.path for r in fake.requests]  # the listings started together: each asked once, none retried
    assert 1 <= len(paths) == len(set(paths))


def test_key_never_appears_in_a_run_with_retries_and_debug_logs(fake: FakeAha, tmp_path: Path) -> None:
    fake.api_key = SECRET
    fake.seed(5)
    fake.inject("500", path_prefix="/ideas", times=1)
    fake.inject("429", path_prefix="/ideas", times=1, retry_after=0)
    run = run_cli([], tmp_path, config={"api_key": SECRET, "api_url": fake.url}, env={"LOGLEVEL": "DEBUG"})
    assert run.returncode == 0, run.stderr
    assert len(run.ids("ideas")) == 5
    assert SECRET not in run.stderr
    assert SECRET not in json.dumps(run.messages)


def test_settings_come_from_environment_variables(fake: FakeAha, tmp_path: Path) -> None:
    fake.seed(4)
    env = {"TAP_AHA_API_KEY": fake.api_key, "TAP_AHA_API_URL": fake.url, "TAP_AHA_PAGE_SIZE": "2"}
    run = run_cli(["--config", "ENV"], tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert len(run.ids("ideas")) == 4
    assert {r.query["per_page"] for r in fake.requests if r.path == "/api/v1/ideas"} == {"2"}


def test_discover_and_about_need_no_server() -> None:
    catalog = json.loads(
        subprocess.run([*TAP, "--discover"], capture_output=True, text=True, check=True).stdout
    )
    names = {s["tap_stream_id"] for s in catalog["streams"]}
    assert names == {
        "ideas", "idea_proxy_votes", "idea_comments", "idea_portal_comments",
        "idea_votes", "idea_organizations", "idea_users", "idea_portals", "products", "idea_categories",
        "features", "requirements", "epics", "releases", "release_phases", "initiatives", "goals",
        "key_results", "to_dos", "users", "idea_themes",
    }  # fmt: skip
    about = subprocess.run([*TAP, "--about", "--format", "json"], capture_output=True, text=True, check=True)
    info = json.loads(about.stdout)
    assert {"state", "catalog", "discover", "about", "stream-maps"} <= set(info["capabilities"])
    assert info["settings"]["properties"]["api_key"]["secret"] is True


def test_a_killed_run_loses_nothing(fake: FakeAha, tmp_path: Path) -> None:
    fake.seed(60)
    config = {"api_key": fake.api_key, "api_url": fake.url, "requests_per_minute": 100000,
              "requests_per_second": 10000}  # fmt: skip
    first = run_cli([], tmp_path, config=config)
    changed = fake.idea_ids()[::2]
    for idea_id in changed:
        fake.add_comment(idea_id)

    proc = subprocess.Popen(
        [*TAP, "--config", str(tmp_path / "config.json"), "--state", str(tmp_path / "state.json")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip
    (tmp_path / "state.json").write_text(json.dumps(first.state))
    children = 0

    def kill_midway(request: RequestLog) -> None:
        nonlocal children
        if request.path.endswith("/comments"):
            children += 1
            if children == 24:  # of about 31 (some skipped): well past the 8 fetches read ahead
                proc.kill()

    fake.on_request.append(kill_midway)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed = Run([m for m in _complete_lines(out)])
    assert 0 < len(killed.ids("ideas")) < len(changed)
    fake.on_request.clear()
    fake.clear_requests()

    resumed = run_cli([], tmp_path, config=config, state=killed.state if killed.states else first.state)
    assert resumed.returncode == 0
    assert (
        next(r for r in fake.requests if r.path == "/api/v1/ideas").query["updated_since"] == first.bookmark()
    )
    assert set(changed) <= resumed.ids("ideas")
    new_comments = {c["id"] for i in changed for c in fake.comments(i)}
    assert new_comments <= resumed.ids("idea_comments")


def test_sigterm_writes_a_resumable_state(fake: FakeAha, tmp_path: Path) -> None:
    fake.seed(30)
    config_path = tmp_path / "config.json"
    config_path.write_text(
        json.dumps({"api_key": fake.api_key, "api_url": fake.url, "requests_per_second": 5})
    )
    proc = subprocess.Popen([*TAP, "--config", str(config_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=REPO, env=dict(os.environ))  # fmt: skip
    sent = False

    def term_midway(request: RequestLog) -> None:
        nonlocal sent
        if not sent and fake.count("/ideas/") >= 8:
            sent = True
            proc.send_signal(signal.SIGTERM)

    fake.on_request.append(term_midway)
    out, _ = proc.communicate(timeout=60)
    messages = list(_complete_lines(out))
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    assert states
    assert "replication_key_value" not in states[-1]["bookmarks"].get("ideas", {})  # not advanced


def _complete_lines(out: bytes) -> t.Iterator[dict[str, t.Any]]:
    text = out.decode(errors="replace")
    lines = text.split("\n")
    for line in lines[:-1]:  # the last piece may be cut mid-line
        if line.strip():
            yield json.loads(line)


def test_run_with_state_file_as_meltano_writes_it(fake: FakeAha, tmp_path: Path) -> None:
    fake.seed(10)
    config = {"api_key": fake.api_key, "api_url": fake.url}
    first = run_cli([], tmp_path, config=config)
    wrapped = {"singer_state": first.state}  # `meltano state get` output
    fake.clear_requests()
    second = run_cli([], tmp_path, config=config, state=wrapped)
    assert second.returncode == 0
    assert (
        next(r for r in fake.requests if r.path == "/api/v1/ideas").query["updated_since"] == first.bookmark()
    )
