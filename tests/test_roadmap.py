"""The roadmap streams against the fake Aha! (tests/fake_roadmap.py): first runs, runs after changes, deletes,
refusals, stub lists and lists that honour `fields=`, listings that ignore `updated_since`, and what each
costs in requests."""

from __future__ import annotations

import collections
import logging
import re
import typing as t

import pytest

from tests.conftest import Config, Run, run_tap
from tests.fake_aha import FakeAha
from tests.lakeflow_helpers import connect, flat, read_all

if t.TYPE_CHECKING:
    from tests.fake_roadmap import Roadmap

ROADMAP = (
    "features", "requirements", "epics", "releases", "release_phases", "initiatives", "goals", "key_results",
    "to_dos", "users", "idea_themes",
)  # fmt: skip
KIND = {stream: "tasks" if stream == "to_dos" else stream for stream in ROADMAP}  # the fake's name
INCREMENTAL = ("features", "requirements", "epics", "releases", "initiatives", "to_dos")
Record = dict[str, t.Any]


@pytest.fixture
def seeded(fake: FakeAha) -> FakeAha:
    fake.seed(24)
    return fake


def requests(fake: FakeAha) -> collections.Counter[str]:
    """Requests by path, each id shown as {id}: `/features/{id}` counts the features' detail GETs."""
    return collections.Counter(
        re.sub(r"/\d+", "/{id}", r.path.removeprefix("/api/v1")) for r in fake.requests
    )


def by_id(records: list[Record]) -> dict[str, Record]:
    return {record["id"]: record for record in records}


def tombstones(run: Run, stream: str) -> set[str]:
    return {r["id"] for r in run.records(stream) if r.get("_sdc_deleted_at")}


def live(run: Run, stream: str) -> dict[str, Record]:
    return by_id([r for r in run.records(stream) if not r.get("_sdc_deleted_at")])


def at_bookmark(run: Run, stream: str) -> set[str]:
    """The records a run sent at its bookmark: an inclusive `updated_since` lists them again."""
    return {r["id"] for r in run.records(stream) if r.get("updated_at") == run.bookmark(stream)}


def check_whole(run: Run, roadmap: Roadmap, *, changes_only: bool = False) -> None:
    """Every roadmap record arrived (`changes_only`: the full tables' ones; the others sent some), as Aha!'s
    detail GET (or full list item) shows it."""
    for stream in ROADMAP:
        sent, expected = live(run, stream), by_id(roadmap.records(KIND[stream]))
        if changes_only and stream in INCREMENTAL:
            assert set(sent) <= set(expected), stream
            expected = {record_id: expected[record_id] for record_id in sent}
        assert set(sent) == set(expected), stream
        for record_id, record in expected.items():
            for key in (
                "name",
                "updated_at",
                "workflow_status",
                "body",
                "release",
                "taskable",
                "product_roles",
            ):
                if key in record:
                    assert sent[record_id][key] == record[key], (stream, key)
    for record_id, record in live(run, "requirements").items():
        assert record["feature_id"] == roadmap.parent_of(record_id)
        assert isinstance(record["release_id"], str)
    for record_id, record in live(run, "key_results").items():
        assert record["goal_id"] == roadmap.parent_of(record_id)
        assert record["description"]  # whole, not the goal's stub


@pytest.mark.parametrize("honour_fields", [False, True], ids=["stub lists", "lists honour fields"])
def test_a_first_run_reads_every_record_whole(seeded: FakeAha, config: Config, honour_fields: bool) -> None:
    roadmap = seeded.roadmap
    roadmap.lists_honour_fields = honour_fields
    seeded.clear_requests()
    run = run_tap(config, streams=ROADMAP)
    check_whole(run, roadmap)
    features, epics, releases, tasks = (
        len(roadmap.records(k)) for k in ("features", "epics", "releases", "tasks")
    )
    goals, workspaces = len(roadmap.records("goals")), len(seeded.companions.products())
    details = 0 if honour_fields else 1
    assert requests(seeded) == +collections.Counter({
        "/features": 1, "/features/{id}": details * features,
        "/epics": 1, "/epics/{id}": details * epics,
        "/products": 1, "/products/{id}/releases": workspaces, "/releases/{id}": details * releases,
        "/tasks": 1, "/tasks/{id}": details * tasks,
        "/goals": 1, "/goals/{id}/key_results": goals,  # the goals nest key-result stubs
        "/release_phases": 1, "/initiatives": 1, "/users": 1, "/idea_themes": 1,
    })  # fmt: skip  # requirements: from the features' records, no request
    for stream in INCREMENTAL:
        assert run.bookmark(stream) == max(r["updated_at"] for r in run.records(stream)), stream


@pytest.mark.parametrize("spelling", ["path", "class"])
def test_a_run_after_changes_reads_only_them_and_tombstones_the_deleted(
    seeded: FakeAha, config: Config, spelling: str
) -> None:
    roadmap = seeded.roadmap
    first = run_tap(config, streams=ROADMAP)
    seeded.audit_type_spelling = spelling
    features = roadmap.records("features")
    edited = roadmap.update("features", features[0]["id"], name="Edited feature")
    requirement = roadmap.add_requirement(edited["id"], k=7)
    gone = next(f for f in features[1:] if f["requirements"])
    roadmap.delete("features", gone["id"])
    new = roadmap.add_feature()
    epic = roadmap.update("epics", roadmap.records("epics")[0]["id"], name="Edited epic")
    release = roadmap.update("releases", roadmap.records("releases")[1]["id"], release_date="2025-01-31")
    new_release = roadmap.add_release(seeded.companions.products()[2]["id"])
    initiative = roadmap.update("initiatives", roadmap.records("initiatives")[0]["id"], status="done")
    task = roadmap.add_task()
    goal = roadmap.update("goals", roadmap.records("goals")[0]["id"], name="Edited goal")
    seeded.clear_requests()
    second = run_tap(config, state=first.state, streams=ROADMAP)

    # Aha!'s updated_since is taken as inclusive: the records at the first run's bookmark come again.
    again = {stream: at_bookmark(first, stream) for stream in INCREMENTAL}
    assert set(live(second, "features")) == {edited["id"], new["id"], *again["features"]}
    assert tombstones(second, "features") == {gone["id"]}
    assert tombstones(second, "requirements") == {r["id"] for r in gone["requirements"]}
    changed_requirements = {r["id"] for r in roadmap.feature(edited["id"])["requirements"]}
    changed_requirements |= {r["id"] for r in roadmap.feature(new["id"])["requirements"]}
    assert requirement["id"] in changed_requirements
    for feature in again["features"]:
        changed_requirements |= {r["id"] for r in roadmap.feature(feature)["requirements"]}
    assert set(live(second, "requirements")) == changed_requirements  # every requirement of a changed feature
    assert set(live(second, "epics")) == {epic["id"], *again["epics"]}
    assert set(live(second, "releases")) == {release["id"], new_release["id"], *again["releases"]}
    assert set(live(second, "initiatives")) == {initiative["id"], *again["initiatives"]}
    new_tasks = {r["id"] for r in roadmap.records("tasks") if r["created_at"] > first.bookmark("to_dos")}
    assert task["id"] in new_tasks
    assert set(live(second, "to_dos")) == new_tasks | again["to_dos"]
    assert live(second, "goals")[goal["id"]]["name"] == "Edited goal"  # full tables: all again
    check_whole(second, roadmap, changes_only=True)
    for stream in INCREMENTAL:
        assert second.bookmark(stream) >= first.bookmark(stream)  # type: ignore[operator]
    workspaces = len(seeded.companions.products())
    assert requests(seeded) == {
        "/audits": 1,
        "/features": 1, "/features/{id}": 2 + len(again["features"]),  # the changed stubs only
        "/epics": 1, "/epics/{id}": 1 + len(again["epics"]),
        "/products": 1, "/products/{id}/releases": workspaces, "/releases/{id}": 2 + len(again["releases"]),
        "/tasks": 1, "/tasks/{id}": len(new_tasks | again["to_dos"]),
        "/goals": 1, "/goals/{id}/key_results": len(roadmap.records("goals")),
        "/release_phases": 1, "/initiatives": 1, "/users": 1, "/idea_themes": 1,
    }  # fmt: skip


def check_whole_stream(run: Run, roadmap: Roadmap, stream: str) -> None:
    sent, expected = live(run, stream), by_id(roadmap.records(KIND[stream]))
    assert set(sent) == set(expected), stream


REFUSALS = {  # endpoint: the status Aha! answers, the streams skipped
    "features": (404, {"features", "requirements"}),  # a plan without features
    "releases": (403, {"releases"}),  # in every workspace: each is skipped, with a warning naming it
    "users": (403, {"users"}),
    "idea_themes": (404, {"idea_themes"}),  # not in the REST reference: an account may not answer
}


@pytest.mark.parametrize("refused", REFUSALS)
def test_a_refused_endpoint_skips_its_streams_with_one_warning(
    seeded: FakeAha, config: Config, caplog: pytest.LogCaptureFixture, refused: str
) -> None:
    status, skipped = REFUSALS[refused]
    seeded.roadmap.refused[refused] = status
    with caplog.at_level(logging.WARNING):
        run = run_tap(config, streams=ROADMAP)
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Aha! refused")]
    if refused == "releases":  # read per workspace: each refusal skips that workspace alone
        products = seeded.companions.products()
        assert len(warnings) == len(products) > 1
        assert all(f"product_id {p['id']}" in w for p, w in zip(products, warnings, strict=True))
    else:
        assert len(warnings) == 1
    assert all(f"HTTP {status}" in warning for warning in warnings)
    for stream in ROADMAP:
        if stream in skipped:
            assert run.records(stream) == [], stream
            assert stream not in run.state["bookmarks"] or not run.bookmark(stream)
        else:
            check_whole_stream(run, seeded.roadmap, stream)


def test_a_refused_parent_listing_skips_that_parent_alone_and_the_run_goes_on(
    seeded: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    roadmap = seeded.roadmap
    goal = roadmap.records("goals")[0]["id"]
    roadmap.refused_parents[goal] = 403
    with caplog.at_level(logging.WARNING):
        run = run_tap(config, streams=ROADMAP)
    others = {kr["id"] for kr in roadmap.records("key_results") if roadmap.parent_of(kr["id"]) != goal}
    assert others  # the other goals have key results, and every one of them arrives
    assert set(live(run, "key_results")) == others
    assert goal not in {r["goal_id"] for r in run.records("key_results")}
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Aha! refused")]
    assert len(warnings) == 1
    assert f"goal_id {goal}" in warnings[0]
    assert "HTTP 403" in warnings[0]
    for stream in ROADMAP:
        if stream != "key_results":
            check_whole_stream(run, roadmap, stream)


def test_lakeflow_releases_leave_out_a_refused_workspace_alone(
    seeded: FakeAha, caplog: pytest.LogCaptureFixture
) -> None:
    roadmap = seeded.roadmap
    refused = seeded.companions.products()[1]["id"]
    roadmap.refused_parents[refused] = 403
    with caplog.at_level(logging.WARNING):
        batches, offset = read_all(connect(seeded), "releases")
    others = {r["id"] for r in roadmap.records("releases") if roadmap.parent_of(r["id"]) != refused}
    assert others
    assert {r["id"] for r in flat(batches)} == others
    assert offset  # the table moved on: the other workspaces' releases were delivered
    assert caplog.text.count(f"for product_id {refused} (products)") == 1


def test_a_listing_that_ignores_updated_since_is_filtered_with_one_warning(
    seeded: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    roadmap = seeded.roadmap
    roadmap.ignores_updated_since = {"features", "initiatives"}
    first = run_tap(config, streams=ROADMAP)
    feature = roadmap.update("features", roadmap.records("features")[2]["id"], name="Edited")
    initiative = roadmap.update("initiatives", roadmap.records("initiatives")[3]["id"], name="Edited")
    seeded.clear_requests()
    with caplog.at_level(logging.WARNING):
        second = run_tap(config, state=first.state, streams=ROADMAP)
    assert set(live(second, "features")) == {feature["id"], *at_bookmark(first, "features")}
    assert set(live(second, "initiatives")) == {initiative["id"], *at_bookmark(first, "initiatives")}
    for stream in ("features", "initiatives"):
        ignored = [
            r for r in caplog.records if f"The {stream} listing ignored updated_since" in r.getMessage()
        ]
        assert len(ignored) == 1, stream
    # The cost: a stub listing that ignores updated_since needs every feature's detail to know its date.
    assert requests(seeded)["/features/{id}"] == len(roadmap.records("features"))


def test_children_come_from_their_listings_where_the_parent_lacks_them_whole(
    seeded: FakeAha, config: Config
) -> None:
    roadmap = seeded.roadmap
    roadmap.features_nest_requirements = False
    roadmap.goals_nest_full_key_results = True
    seeded.clear_requests()
    run = run_tap(config, streams=("features", "requirements", "goals", "key_results"))
    for stream in ("features", "requirements", "goals", "key_results"):
        check_whole_stream(run, roadmap, stream)
    assert {r["feature_id"] for r in run.records("requirements")} <= set(live(run, "features"))
    counted = requests(seeded)
    assert counted["/features/{id}/requirements"] == len(roadmap.records("features"))
    assert counted["/goals/{id}/key_results"] == 0


def test_ideas_pass_their_promoted_to_links_through(seeded: FakeAha, config: Config) -> None:
    run = run_tap(config, streams=("ideas",))
    ideas = by_id(run.records("ideas"))
    for idea in seeded.ideas():
        for link in ("feature", "epic", "initiative", "requirement"):
            assert ideas[idea["id"]].get(link) == idea.get(link), link
    assert {
        link for idea in seeded.ideas() for link in ("epic", "initiative", "requirement") if idea.get(link)
    } == {
        "epic",
        "initiative",
        "requirement",
    }


def test_only_the_ideas_domain_makes_no_roadmap_request(seeded: FakeAha, config: Config) -> None:
    run_tap(config, streams=("ideas", "idea_comments", "products", "idea_categories"))
    assert not any(path.split("/")[1] in {"features", "epics", "releases", "goals", "tasks", "users"}
                   for path in requests(seeded))  # fmt: skip
    assert "/products/{id}/releases" not in requests(seeded)


def test_a_record_deleted_between_its_listing_and_its_detail_is_skipped_not_the_stream(
    seeded: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    features = seeded.roadmap.records("features")
    gone = features[1]["id"]
    seeded.inject("404", path_prefix=f"/features/{gone}", times=1)  # the detail GET only: lists are stubs
    with caplog.at_level(logging.WARNING):
        run = run_tap(config, streams=("features",))
    assert set(live(run, "features")) == {f["id"] for f in features} - {gone}
    assert f"Feature {gone} was deleted while it was read; skipping it." in caplog.text
    assert "Aha! refused" not in caplog.text


def test_requirements_without_features_warn_that_every_run_reads_every_feature(
    seeded: FakeAha, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        run = run_tap(config, streams=("requirements",))
    check_whole_stream(run, seeded.roadmap, "requirements")
    assert run.records("features") == []
    assert caplog.text.count("'requirements' is selected without 'features'") == 1
