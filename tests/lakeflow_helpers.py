"""What the Lakeflow tests share: the tables' kinds, connection options, reads as the framework makes them."""

from __future__ import annotations

import time
import typing as t

import pytest

from tap_aha.lakeflow import TABLES, LakeflowConnect

if t.TYPE_CHECKING:
    from tests.fake_aha import FakeAha

CHILDREN = ("idea_proxy_votes", "idea_comments", "idea_portal_comments")
IDEA_TABLES = ("ideas", *CHILDREN)
SNAPSHOTS = (  # no cursor: read whole per pass
    "idea_portals", "products", "idea_categories", "release_phases", "goals", "key_results", "users",
    "idea_themes",
)  # fmt: skip
# Roadmap tables with a cursor: a read after changes gives exactly the records changed.
ROADMAP_CDC = ("features", "requirements", "epics", "releases", "initiatives", "to_dos")
# Deletes are captured (tap_aha.deletes) for every table with a cursor; snapshot tables are read whole.
INGESTION = {table: "snapshot" if table in SNAPSHOTS else "cdc_with_deletes" for table in TABLES}
# Portal comments have no updated_at: created_at sequences their repeated rows. Idea users have none either:
# the moment of the listing that read them does.
CURSORS: dict[str, str | None] = {
    table: None
    if table in SNAPSHOTS
    else {"idea_portal_comments": "created_at", "idea_users": "listed_at"}.get(table, "updated_at")
    for table in TABLES
}
Record = dict[str, t.Any]
WHOLE_ROADMAP = {  # snapshot table: the fake's kind
    "release_phases": "release_phases", "goals": "goals", "key_results": "key_results", "users": "users",
    "idea_themes": "idea_themes",
}  # fmt: skip


def options_for(fake: FakeAha, **extra: str) -> dict[str, str]:
    """Connection options as Lakeflow passes them: all strings; limits high so tests are not throttled."""
    return {
        "api_key": fake.api_key,
        "api_url": fake.url,
        "requests_per_minute": "1000000",
        "requests_per_second": "100000",
        **extra,
    }


def connect(fake: FakeAha, **extra: str) -> LakeflowConnect:
    """A connector whose cap lies after every change made so far (the cap is 1 ms before it is made)."""
    time.sleep(0.003)
    return LakeflowConnect(options_for(fake, **extra))


def read_all(
    connector: LakeflowConnect,
    table: str,
    start: dict[str, t.Any] | None = None,
    table_options: dict[str, str] | None = None,
    *,
    deletes: bool = False,
) -> tuple[list[list[Record]], dict[str, t.Any]]:
    """Call read_table (or read_table_deletes) as the framework does until the offset comes back unchanged.

    At most 50 calls.
    """
    read = connector.read_table_deletes if deletes else connector.read_table
    batches: list[list[Record]] = []
    offset = start
    for _ in range(50):
        records, end = read(table, offset, table_options or {})
        batch = list(records)
        if end == (offset or {}):
            assert batch == [], "records came with an offset that did not move"
            return batches, end
        batches.append(batch)
        offset = end
    pytest.fail(f"{table}: the offset still moved after 50 calls")


def flat(batches: list[list[Record]]) -> list[Record]:
    return [record for batch in batches for record in batch]


def change_every_table(fake: FakeAha) -> dict[str, set[str]]:
    """Change something every table reads: the ids each table must read next.

    Ideas: one edited, one added, and one each given a vote, a comment and a portal comment. An organization
    renamed, an idea user and a category added. A feature, an epic, a release and an initiative edited, a
    requirement, a to-do and a goal added. Snapshot tables are read whole, so all their ids count.
    """
    ids = fake.idea_ids()
    fake.update_idea(ids[3], name="Renamed")
    vote, comment = fake.add_vote(ids[10]), fake.add_comment(ids[20])
    portal = fake.add_portal_comment(ids[30])
    new = fake.add_idea(name="Made while the query ran")
    companions = fake.companions
    organization = companions.update_organization(companions.organizations()[0]["id"], name="Renamed Co")
    user = companions.add_idea_user()
    companions.add_category(companions.products()[0]["id"], "Made while the query ran")
    roadmap = fake.roadmap
    feature = roadmap.update("features", roadmap.records("features")[0]["id"], name="Renamed feature")
    requirement = roadmap.add_requirement(feature["id"], k=9)
    epic = roadmap.update("epics", roadmap.records("epics")[0]["id"], name="Renamed epic")
    release = roadmap.update("releases", roadmap.records("releases")[0]["id"], released=True)
    initiative = roadmap.update("initiatives", roadmap.records("initiatives")[0]["id"], status="done")
    task = roadmap.add_task()
    roadmap.add_goal()
    time.sleep(0.003)  # past the last change's millisecond
    return {
        "ideas": {ids[3], ids[10], ids[20], ids[30], new["id"]},
        "idea_proxy_votes": {vote["id"]},
        "idea_comments": {comment["id"]},
        "idea_portal_comments": {portal["id"]},
        "idea_votes": {vote["id"]},
        "idea_organizations": {organization["id"]},
        "idea_users": {user["id"]},
        "idea_portals": {portal["id"] for portal in companions.portals()},
        "products": {product["id"] for product in companions.products()},
        "idea_categories": {c["id"] for cs in companions.categories().values() for c in cs},
        "features": {feature["id"]},
        "requirements": {requirement["id"]},
        "epics": {epic["id"]},
        "releases": {release["id"]},
        "initiatives": {initiative["id"]},
        "to_dos": {task["id"]},
        **{table: {r["id"] for r in roadmap.records(kind)} for table, kind in WHOLE_ROADMAP.items()},
    }
