"""Checks that the fake Aha! server behaves as the tap's tests assume (through real HTTP)."""

from __future__ import annotations

import ast
import graphlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fake_aha import FakeAha
from tests.fake_http import RequestLog
from tests.fake_ideas import COMPACT_KEYS

ROOT = Path(__file__).resolve().parent.parent
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def fake() -> Iterator[FakeAha]:
    with FakeAha() as server:
        server.seed(45)
        yield server


def get(server: FakeAha, path: str, key: str | None = None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {server.api_key if key is None else key}"}
    return requests.get(server.url + path, params=params, headers=headers, timeout=10)


def walk(server: FakeAha, path: str, root: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        body = get(server, path, page=page, **params).json()
        items += body[root]
        if not body[root] or body["pagination"]["current_page"] >= body["pagination"]["total_pages"]:
            return items
        page += 1


def test_paging_envelope_empty_result_and_past_end(fake: FakeAha) -> None:
    first = get(fake, "/ideas", per_page=20).json()
    assert len(first["ideas"]) == 20
    assert first["pagination"] == {"total_records": 45, "total_pages": 3, "current_page": 1}
    assert len(get(fake, "/ideas", per_page=20, page=3).json()["ideas"]) == 5
    past = get(fake, "/ideas", per_page=20, page=4).json()
    assert past == {"ideas": [], "pagination": {"total_records": 45, "total_pages": 3, "current_page": 4}}
    assert len(get(fake, "/ideas").json()["ideas"]) == 30  # default per_page
    empty = get(fake, "/ideas", q="no such idea name").json()
    assert empty == {"ideas": [], "pagination": {"total_records": 0, "total_pages": 0, "current_page": 1}}
    assert len(walk(fake, "/ideas", "ideas", per_page=7)) == 45


def test_per_page_is_clamped_to_200() -> None:
    with FakeAha() as server:
        server.seed(250)
        body = get(server, "/ideas", per_page=500).json()
    assert len(body["ideas"]) == 200
    assert body["pagination"]["total_pages"] == 2


@pytest.mark.parametrize("inclusive", [True, False])
def test_updated_since_inclusive_or_exclusive(inclusive: bool) -> None:
    with FakeAha(updated_since_inclusive=inclusive) as server:
        server.seed(80)
        ideas = server.ideas()
        tied, _ = Counter(i["updated_at"] for i in ideas).most_common(1)[0]
        expected = [i for i in ideas if i["updated_at"] >= tied and (inclusive or i["updated_at"] > tied)]
        got = walk(server, "/ideas", "ideas", per_page=200, updated_since=tied)
        got_offset = walk(server, "/ideas", "ideas", updated_since=tied.replace("Z", "+00:00"))
    assert sum(1 for i in ideas if i["updated_at"] == tied) >= 2
    assert sorted(i["id"] for i in got) == sorted(i["id"] for i in expected)
    assert len(got_offset) == len(got)


def test_filters_and_order(fake: FakeAha) -> None:
    ideas = fake.ideas()
    listed = walk(fake, "/ideas", "ideas", per_page=200)
    created = [i["created_at"] for i in listed]
    assert created == sorted(created, reverse=True)  # default order created_desc
    status = ideas[0]["workflow_status"]
    by_name = walk(fake, "/ideas", "ideas", workflow_status=status["name"].upper())
    by_id = walk(fake, "/ideas", "ideas", workflow_status=status["id"])
    assert {i["id"] for i in by_name} == {i["id"] for i in by_id}
    assert by_id
    assert all(i["workflow_status"]["id"] == status["id"] for i in by_id)
    word = ideas[0]["name"].split()[1].lower()
    assert all(word in i["name"].lower() for i in walk(fake, "/ideas", "ideas", q=word))
    cut = sorted(i["created_at"] for i in ideas)[20]
    assert len(walk(fake, "/ideas", "ideas", created_before=cut)) == 20
    assert len(walk(fake, "/ideas", "ideas", created_since=cut)) == 25
    assert get(fake, "/ideas", updated_since="not a date").status_code == 400


def test_compact_list_items_and_full_detail(fake: FakeAha) -> None:
    item = get(fake, "/ideas").json()["ideas"][0]
    assert tuple(item) == COMPACT_KEYS
    assert set(item["workflow_status"]) == {"id", "name", "position", "complete", "color"}
    assert set(item["description"]) == {"id", "body", "created_at", "updated_at", "attachments"}
    assert re.fullmatch(r"\d{19}", item["id"])
    assert TS.match(item["updated_at"])
    full = get(fake, f"/ideas/{item['id']}").json()["idea"]
    for key in ("product_id", "score", "endorsements_count", "comments_count", "custom_fields", "categories"):
        assert key in full
    assert ("created_by_user" in full) != ("created_by_portal_user" in full)
    assert get(fake, f"/ideas/{item['reference_num']}").json()["idea"]["id"] == item["id"]
    assert get(fake, "/ideas/1234567890123456789").status_code == 404
    assert get(fake, "/nope").status_code == 404


def test_seeded_data_is_realistic_and_deterministic() -> None:
    a, b = FakeAha(rng_seed=7), FakeAha(rng_seed=7)
    a.seed(300)
    b.seed(300)
    ideas = a.ideas()
    assert ideas == b.ideas()
    assert max(Counter(i["updated_at"] for i in ideas).values()) >= 2
    assert all(i["created_at"] <= i["updated_at"] < "2023-01-01T05:00:00.000Z" for i in ideas)
    parents = {type(c["parent_id"]) for i in ideas for c in i["categories"]}
    assert {int, str} <= parents
    fields = [cf for i in ideas for cf in i["custom_fields"]]
    assert any("value" not in cf for cf in fields)
    assert {type(cf["id"]) for cf in fields} == {int, str}
    with_votes = [i for i in ideas if a.votes(i["id"], proxy_only=False)]
    assert any(not a.votes(i["id"]) for i in with_votes)  # some ideas have only plain votes
    assert all(i["endorsements_count"] == len(a.votes(i["id"], proxy_only=False)) for i in ideas)
    modes = {a.comments_count_includes_portal(i["id"]) for i in ideas}
    assert modes == {True, False}
    assert any(pc.get("spam") for i in ideas for pc in a.portal_comments(i["id"]))


def test_fields_on_list_and_detail(fake: FakeAha) -> None:
    star = get(fake, "/ideas", fields="*,score,tags,bogus").json()["ideas"][0]
    assert list(star) == [*COMPACT_KEYS, "score", "tags"]
    only = get(fake, "/ideas", fields="score,tags").json()["ideas"][0]
    assert list(only) == ["id", "score", "tags"]
    idea_id = only["id"]
    assert list(get(fake, f"/ideas/{idea_id}", fields="name").json()["idea"]) == ["id", "name"]
    assert "product" in get(fake, f"/ideas/{idea_id}", fields="*,name").json()["idea"]


def test_list_can_ignore_fields() -> None:
    with FakeAha(list_honours_fields=False) as server:
        server.seed(5)
        item = get(server, "/ideas", fields="*,score").json()["ideas"][0]
        assert tuple(item) == COMPACT_KEYS
        assert "score" in get(server, f"/ideas/{item['id']}", fields="*,score").json()["idea"]


@pytest.mark.parametrize("drift", [False, True])
def test_detail_nested_id_types_drift_only_when_asked(drift: bool) -> None:
    with FakeAha(nested_id_drift=drift) as server:
        server.seed(20)
        idea = next(i for i in server.ideas() if i["categories"])
        first = get(server, f"/ideas/{idea['id']}").json()["idea"]
        second = get(server, f"/ideas/{idea['id']}").json()["idea"]
    assert first == idea
    assert (second != first) is drift
    assert str(second["categories"][0]["project_id"]) == str(first["categories"][0]["project_id"])


def test_proxy_filter_and_parent_bump(fake: FakeAha) -> None:
    fake.clock = lambda: datetime(2030, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    idea = fake.add_idea(name="Proxy test")
    assert idea["created_at"] == idea["updated_at"] == "2030-05-01T12:00:00.123Z"
    fake.update_idea(idea["id"], updated_at=datetime(2030, 5, 1, 13, tzinfo=UTC), workflow_status="Planned")
    assert get(fake, "/ideas", updated_since="2030-05-01T13:00:00Z").json()["ideas"][0]["id"] == idea["id"]
    fake.clock = lambda: datetime(2030, 5, 2, tzinfo=UTC)
    fake.add_vote(idea["id"])
    fake.add_vote(idea["id"])
    fake.add_vote(idea["id"], proxy=False)
    proxy = get(fake, f"/ideas/{idea['id']}/endorsements", proxy="true").json()
    assert proxy["pagination"]["total_records"] == 2
    assert all(v["idea_organization"] for v in proxy["idea_endorsements"])
    assert len(get(fake, f"/ideas/{idea['id']}/endorsements").json()["idea_endorsements"]) == 3
    resp = get(fake, f"/ideas/{idea['id']}")
    full = resp.json()["idea"]
    assert full["endorsements_count"] == 3
    assert full["updated_at"] == "2030-05-02T00:00:00.000Z"
    assert resp.headers["Date"] == "Thu, 02 May 2030 00:00:00 GMT"
    assert len(fake.votes(idea["id"])) == 2


def test_child_paging_shapes_and_spam(fake: FakeAha) -> None:
    idea_id = fake.add_idea()["id"]
    for _ in range(450):
        fake.add_comment(idea_id)
    fake.add_portal_comment(idea_id)
    fake.add_portal_comment(idea_id, spam=True, parent_id=123)
    page3 = get(fake, f"/ideas/{idea_id}/comments", per_page=200, page=3).json()
    assert len(page3["comments"]) == 50
    assert page3["pagination"]["total_pages"] == 3
    assert len(walk(fake, f"/ideas/{idea_id}/comments", "comments", per_page=200)) == 450
    comment = page3["comments"][0]
    assert "idea_id" not in comment
    assert comment["commentable"]["type"] == "Ideas::Idea"
    portal = get(fake, f"/ideas/{idea_id}/idea_comments").json()["idea_comments"]
    assert len(portal) == 1
    assert "updated_at" not in portal[0]
    assert portal[0]["idea_id"] == idea_id
    with_spam = get(fake, f"/ideas/{idea_id}/idea_comments", spam="true").json()["idea_comments"]
    assert len(with_spam) == 2
    assert with_spam[1]["parent_idea_comment_id"] == 123


def test_deleted_idea_and_children_404(fake: FakeAha) -> None:
    idea = fake.ideas()[0]
    fake.delete_idea(idea["id"])
    for suffix in ("", "/endorsements", "/comments", "/idea_comments"):
        assert get(fake, f"/ideas/{idea['id']}{suffix}").status_code == 404
    assert get(fake, f"/ideas/{idea['reference_num']}").status_code == 404
    assert get(fake, "/ideas").json()["pagination"]["total_records"] == 44


@pytest.mark.parametrize("fault", ["429", "500", "502", "503", "401", "403", "404"])
def test_status_faults_then_recovery(fake: FakeAha, fault: str) -> None:
    fake.inject(fault, times=2)
    assert get(fake, "/ideas").status_code == int(fault)
    assert get(fake, "/me").status_code == int(fault)
    assert get(fake, "/ideas").status_code == 200
    assert [r.fault for r in fake.requests] == [fault, fault, None]


def test_fault_path_prefix_and_retry_after(fake: FakeAha) -> None:
    fake.inject("429", path_prefix="/ideas/", retry_after=0.5)
    assert get(fake, "/ideas").status_code == 200  # "/ideas" does not start with "/ideas/"
    resp = get(fake, f"/ideas/{fake.idea_ids()[0]}/comments")
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "0.5"
    fake.inject("429")
    assert "Retry-After" not in get(fake, "/me").headers


def test_body_faults(fake: FakeAha) -> None:
    fake.inject("invalid_json")
    resp = get(fake, "/ideas")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        resp.json()
    fake.inject("empty_200")
    resp = get(fake, "/ideas")
    assert resp.status_code == 200
    assert resp.content == b""
    fake.inject("truncated")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        get(fake, "/ideas")
    fake.inject("reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        get(fake, "/ideas")
    assert fake.requests[-1].status == 0
    fake.inject("slow")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(fake.url + "/me", headers={"Authorization": "Bearer test-key"}, timeout=0.3)
    assert get(fake, "/ideas").status_code == 200  # server survived all of it
    assert fake.errors == []


def test_auth(fake: FakeAha) -> None:
    missing = requests.get(fake.url + "/me", timeout=10)
    assert missing.status_code == 401
    assert missing.json() == {"errors": [{"message": "Unauthorized"}]}
    assert get(fake, "/me", key="wrong").status_code == 401
    assert get(fake, "/ideas", key="forbidden-key").status_code == 403
    user = get(fake, "/me").json()["user"]
    assert {"id", "name", "email"} <= set(user)


@pytest.mark.parametrize("send_retry_after", [True, False])
def test_rate_limit_per_second(send_retry_after: bool) -> None:
    with FakeAha(rate_limit_per_second=3, send_retry_after=send_retry_after) as server:
        statuses = [get(server, "/me").status_code for _ in range(3)]
        limited = get(server, "/me")
        assert statuses == [200, 200, 200]
        assert limited.status_code == 429
        assert limited.json() == {"errors": [{"message": "Rate limit exceeded. Try again in 1 seconds."}]}
        assert ("Retry-After" in limited.headers) is send_retry_after
        if send_retry_after:
            assert limited.headers["Retry-After"] == "1"
        assert {"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"} <= set(limited.headers)
        time.sleep(1.05)
        assert get(server, "/me").status_code == 200


def test_rate_limit_per_minute_headers() -> None:
    with FakeAha(rate_limit_per_minute=5) as server:
        remaining = [get(server, "/me").headers["X-Ratelimit-Remaining"] for _ in range(5)]
        limited = get(server, "/me")
    assert remaining == ["4", "3", "2", "1", "0"]
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) in range(55, 61)


def test_hook_delete_during_walk_skips_a_record(fake: FakeAha) -> None:
    before = [i["id"] for i in walk(fake, "/ideas", "ideas", per_page=10)]

    def delete_on_page_2(log: RequestLog) -> None:
        if log.path.endswith("/ideas") and log.query.get("page") == "2":
            fake.delete_idea(before[0])

    fake.on_request.append(delete_on_page_2)
    seen = [i["id"] for i in walk(fake, "/ideas", "ideas", per_page=10)]
    assert before[10] not in seen  # shifted onto page 1 after page 1 was read
    assert len(set(seen)) == len(seen) == 44  # 45 minus the skipped one; the deleted one was seen


def test_hook_insert_during_walk_repeats_a_record(fake: FakeAha) -> None:
    def insert_on_page_2(log: RequestLog) -> None:
        if log.query.get("page") == "2":
            fake.add_idea()

    fake.on_request.append(insert_on_page_2)
    seen = [i["id"] for i in walk(fake, "/ideas", "ideas", per_page=10)]
    assert len(seen) == 46
    assert len(set(seen)) == 45


def test_request_log_and_count(fake: FakeAha) -> None:
    get(fake, "/ideas", per_page=5)
    get(fake, f"/ideas/{fake.idea_ids()[0]}/comments")
    get(fake, "/me")
    assert fake.count() == 3
    assert fake.count("/ideas") == 2
    assert fake.count("/me") == 1
    log = fake.requests[0]
    assert (log.method, log.path, log.query, log.status) == ("GET", "/api/v1/ideas", {"per_page": "5"}, 200)
    assert log.headers["Authorization"] == "REDACTED"
    fake.clear_requests()
    assert fake.count() == 0


def test_stop_releases_port() -> None:
    server = FakeAha().start()
    keep_alive = requests.Session()
    keep_alive.headers["Authorization"] = "Bearer test-key"
    assert keep_alive.get(server.url + "/me", timeout=5).status_code == 200
    port = int(server.url.split(":")[2].split("/")[0])
    server.stop()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    with pytest.raises(requests.exceptions.ConnectionError):
        keep_alive.get(f"http://127.0.0.1:{port}/api/v1/me", timeout=5)


def test_speed_of_seed_and_big_pages() -> None:
    server = FakeAha()
    started = time.process_time()  # CPU time: the other processes of a busy test machine do not count
    server.seed(10_000)
    assert time.process_time() - started < 5  # ~1.5 s on a dev box; generous for CI
    with server:
        session = requests.Session()
        session.headers["Authorization"] = "Bearer test-key"
        session.get(server.url + "/ideas", params={"per_page": 200}, timeout=10)  # warm caches
        timings = []
        for page in range(2, 7):
            started = time.process_time()  # this process's: the client's and the server thread's
            body = session.get(server.url + "/ideas", params={"per_page": 200, "page": page}, timeout=10)
            timings.append(time.process_time() - started)
            assert len(body.json()["ideas"]) == 200
    assert sorted(timings)[2] < 0.05


def test_cli_prints_url_and_exits_cleanly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_aha", "--ideas", "20", "--api-key", "k"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("FAKE_AHA_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        body = requests.get(url + "/ideas", headers={"Authorization": "Bearer k"}, timeout=10).json()
        assert body["pagination"]["total_records"] == 20
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# The roadmap records a `{part}` of a path in the routing table names.
PLACEHOLDER_KINDS = {
    "{feature}": "features",
    "{epic}": "epics",
    "{release}": "releases",
    "{initiative}": "initiatives",
    "{goal}": "goals",
    "{task}": "tasks",
}


def test_every_path_in_the_routing_table_answers(fake: FakeAha) -> None:
    ids = {"{idea}": fake.idea_ids()[0], "{product}": fake.companions.products()[0]["id"]}
    ids |= {part: fake.roadmap.records(kind)[0]["id"] for part, kind in PLACEHOLDER_KINDS.items()}
    answered = {}
    for pattern in fake.route_table():
        path = "/".join(ids.get(part, part) for part in pattern.split("/"))
        answered[pattern] = get(fake, "/" + path).status_code
    assert {pattern: status for pattern, status in answered.items() if status != 200} == {}
    assert get(fake, "/ideas/" + ids["{idea}"] + "/votes").status_code == 404  # nothing else is answered
    assert get(fake, "/goals/" + ids["{goal}"]).status_code == 404


def test_the_fakes_modules_have_no_import_circle_and_only_the_server_imports_the_domains() -> None:
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "tests").glob("fake_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        modules = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        graph[path.stem] = {name.removeprefix("tests.") for name in modules if name.startswith("tests.fake_")}
    assert len(graph) == 11
    assert [name for name, imported in graph.items() if "fake_aha" in imported] == []
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle between the fake's modules: {exc.args[1]}")
    assert order[0] == "fake_formats"
    assert order[-1] == "fake_aha"
