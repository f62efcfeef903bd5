"""`tap-aha --doctor`: what it measures on the account, within its budget, without writing or leaking."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import typing as t

import pytest

from tap_aha.doctor import MAX_REQUESTS, Doctor, report
from tap_aha.tap import TapAha
from tests.conftest import REPO, TAP, Config, selecting
from tests.fake_aha import FakeAha
from tests.fake_http import FORBIDDEN_KEY

if t.TYPE_CHECKING:
    from pathlib import Path

SECRET = "sk-live-doctor-5e4d3c2b1a"  # noqa: S105 - a fake key the tests look for in every output


# The idea and companion streams; later streams (the roadmap) would spend the budget on their own endpoints.
IDEA_STREAMS = (
    "ideas", "idea_proxy_votes", "idea_comments", "idea_portal_comments", "idea_votes", "idea_organizations",
    "idea_users", "idea_portals", "products", "idea_categories",
)  # fmt: skip


def _doctor(
    config: Config, streams: t.Collection[str] | None = IDEA_STREAMS, budget: int = MAX_REQUESTS
) -> tuple[Doctor, int]:
    catalog = None if streams is None else selecting(config, streams)
    doctor = Doctor(TapAha(config=config, catalog=catalog), budget=budget)
    return doctor, doctor.run()


def _checks(doctor: Doctor) -> dict[str, tuple[str, str]]:
    return {c.name: (c.level, c.detail) for c in doctor.checks}


@pytest.mark.parametrize(
    ("mode", "verdict"),
    [("internal", "internal"), ("portal", "portal"), ("both", "both"), ("unreliable", "unknown"),
     ("mixed", "unknown")],
)  # fmt: skip
def test_it_finds_what_comments_count_counts(mode: str, verdict: str) -> None:
    with FakeAha(comments_count=mode) as fake:
        fake.seed(120)
        config = {"api_key": fake.api_key, "api_url": fake.url}
        doctor, status = _doctor(config)
    assert status == 0
    assert doctor.facts["comments_count_counts"] == verdict
    assert _checks(doctor)["comments_count"][0] == ("warn" if verdict == "unknown" else "ok")


def test_the_report_on_a_healthy_account() -> None:
    with FakeAha(comments_count="both") as fake:
        fake.seed(120)
        fake.delete_idea(fake.idea_ids()[0])  # the audit log has something to filter
        doctor, status = _doctor({"api_key": fake.api_key, "api_url": fake.url})
        requests = list(fake.requests)
    assert status == 0
    assert doctor.sent <= MAX_REQUESTS
    assert len(requests) == doctor.sent
    assert {r.method for r in requests} == {"GET"}
    checks = _checks(doctor)
    assert all(level == "ok" for level, _ in checks.values()), checks
    asked = {r.path.removeprefix("/api/v1") for r in requests}
    listings = {"/me", "/ideas", "/ideas/endorsements", "/idea_organizations", "/idea_users", "/idea_portals"}
    assert {*listings, "/products", "/audits"} <= asked
    for child in ("comments", "idea_comments", "endorsements"):
        assert any(path.startswith("/ideas/") and path.endswith(f"/{child}") for path in asked), child
    listings = doctor.facts["listings"]
    assert listings["ideas"] == {"fields_honoured": True, "updated_since_honoured": True}
    assert listings["idea_users"]["updated_since_honoured"] is True  # its bookmark_key makes it incremental
    assert listings["idea_portals"] == {"fields_honoured": None, "updated_since_honoured": None}
    assert doctor.facts["audit_type_filter"] in {"Ideas::IdeaEndorsement", "Ideas::Idea", "Comment"}
    assert doctor.facts["audit_order"] == "id ascending"
    assert "X-Ratelimit-Limit" in doctor.facts["rate_limit_headers"]
    assert abs(doctor.facts["clock_skew_seconds"]) < 5
    assert doctor.facts["not_checked"] == []
    text = report(doctor, None)
    assert "A sync can run (0 warnings)." in text
    assert json.loads(report(doctor, "json"))["facts"] == doctor.facts


def test_what_it_cannot_rely_on_is_a_warning_with_its_consequence() -> None:
    with FakeAha(list_honours_fields=False) as fake:
        fake.seed(60)
        fake.audits_refused = 403
        fake.companions.ideas_advanced = False
        fake.ideas_honour_updated_since = False
        doctor, status = _doctor({"api_key": fake.api_key, "api_url": fake.url})
    assert status == 0
    checks = _checks(doctor)
    assert checks["ideas: fields="][0] == "warn"
    assert "GET /ideas/{id}" in checks["ideas: fields="][1]
    assert checks["ideas: updated_since"][0] == "warn"
    assert "reads this whole listing again" in checks["ideas: updated_since"][1]
    assert doctor.facts["listings"]["ideas"]["updated_since_honoured"] is False
    assert doctor.facts["listings"]["idea_users"]["updated_since_honoured"] is True
    assert checks["GET /idea_organizations"][0] == "warn"
    assert checks["GET /audits"][0] == "warn"
    assert doctor.facts["listings"]["ideas"]["fields_honoured"] is False
    assert set(doctor.facts["refused"]) == {"idea_organizations", "audits"}


def test_with_more_endpoints_than_its_budget_it_checks_what_it_can_and_says_what_it_did_not() -> None:
    with FakeAha(comments_count="both") as fake:
        fake.seed(120)
        fake.delete_idea(fake.idea_ids()[0])
        doctor, status = _doctor({"api_key": fake.api_key, "api_url": fake.url}, budget=42)
        sent = len(fake.requests)
    assert status == 0
    assert sent == doctor.sent <= 42
    checks = _checks(doctor)
    assert checks["GET /ideas"][0] == "ok"  # first: the comments_count sample comes from its page
    assert checks["comments_count"][0] == "ok"  # the sample and the audit log keep their share
    assert doctor.facts["comments_count_counts"] == "both"
    assert checks["audit type spelling"][0] == "ok"
    skipped = [name for name, (level, _) in checks.items() if level == "skip"]
    assert skipped
    assert skipped == doctor.facts["not_checked"]
    assert all("not checked: the doctor's 42 requests" in checks[name][1] for name in skipped)
    assert "updated_since" in " ".join(skipped)  # the second requests of listings go last
    text = report(doctor, None)
    assert (
        text.splitlines()[-1] == f"A sync can run (0 warnings; {len(skipped)} not checked within the budget)."
    )


def test_what_the_sample_leaves_of_the_budget_goes_to_the_endpoints() -> None:
    with FakeAha(comments_count="both") as fake:
        fake.seed(4)  # a small sample
        doctor, _ = _doctor({"api_key": fake.api_key, "api_url": fake.url}, budget=40)
    names = [check.name for check in doctor.checks]
    assert doctor.facts["not_checked"] == []
    assert doctor.sent <= 40
    # Reserved for the sample at first, the endpoints after it were checked with what it left.
    assert any(name.startswith("GET ") for name in names[names.index("comments_count") :])


def test_only_what_the_selected_streams_use(fake: FakeAha, config: Config) -> None:
    fake.seed(30)
    doctor, _ = _doctor({**config, "capture_deletes": False}, streams=("ideas", "idea_comments"))
    asked = {r.path.removeprefix("/api/v1") for r in fake.requests}
    assert not {"/idea_users", "/idea_organizations", "/products", "/audits", "/ideas/endorsements"} & asked
    assert any(path.endswith("/comments") for path in asked)
    assert not any(path.endswith("/endorsements") for path in asked)
    assert "comments_count_counts" in doctor.facts


def _cli(tmp_path: Path, config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_AHA_")}
    argv = [*TAP, "--config", str(path), "--doctor", *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False)


def test_the_cli_prints_a_table_or_json_and_never_the_key(tmp_path: Path) -> None:
    with FakeAha(api_key=SECRET, comments_count="both") as fake:
        fake.seed(60)
        fake.roadmap.lists_honour_fields = True  # else the roadmap's stub lists warn of a GET per record
        config = {"api_key": SECRET, "api_url": fake.url}
        table = _cli(tmp_path, config)
        as_json = _cli(tmp_path, config, "--format", "json")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[2].split() == ["CHECK", "RESULT", "FOUND,", "AND", "WHAT", "THE", "TAP", "DOES"]
    assert any(line.startswith("comments_count ") and " OK " in line for line in lines)
    assert lines[-1].startswith("A sync can run (0 warnings")  # every stream selected: more may come
    assert as_json.returncode == 0, as_json.stderr
    parsed = json.loads(as_json.stdout)
    assert parsed["facts"]["comments_count_counts"] == "both"
    assert all({"name", "ok", "detail"} <= set(check) for check in parsed["checks"])
    for run in (table, as_json):
        assert SECRET not in run.stdout + run.stderr


@pytest.mark.parametrize("key", ["wrong-key", FORBIDDEN_KEY])
def test_a_key_aha_rejects_is_one_line_and_exit_1(tmp_path: Path, key: str) -> None:
    with FakeAha(api_key=SECRET) as fake:
        fake.seed(5)
        run = _cli(tmp_path, {"api_key": key, "api_url": fake.url})
        assert len(fake.requests) == 1  # GET /me, then nothing
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, run.stderr
    assert "a sync cannot run" in errors[0]
    assert "HTTP 401" in errors[0] or "HTTP 403" in errors[0]
    assert "Traceback" not in run.stderr
    assert key not in run.stdout + run.stderr
    assert run.stdout == ""


def test_an_unreachable_account_is_one_line_and_exit_1_in_seconds(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    run = _cli(tmp_path, {"api_key": SECRET, "api_url": f"http://127.0.0.1:{port}/api/v1"})
    assert time.monotonic() - started < 30
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, run.stderr
    assert "a sync cannot run" in errors[0]
    assert SECRET not in run.stderr
