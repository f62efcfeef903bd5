"""The Lakeflow connector (`tap_aha.lakeflow.LakeflowConnect`) against the fake Aha! server.

The first group mirrors the checks the Databricks community-connector harness makes; the rest pin what the
contract asks beyond them: exact batch boundaries, repeatable reads, termination under churn, incremental
reads of the children, the tap's error messages, and connector_spec.yaml matching the code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import pickle
import subprocess
import sys
import textwrap
import time
import typing as t
from pathlib import Path

import pytest
import yaml
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructType,
    TimestampType,
)

from tap_aha.errors import SettingsError
from tap_aha.lakeflow import CONNECTION_OPTIONS, TABLE_OPTIONS, TABLES, LakeflowConnect
from tap_aha.settings import AhaSettings
from tap_aha.tap import TapAha
from tests.fake_aha import FakeAha
from tests.fake_http import RequestLog
from tests.lakeflow_helpers import (
    CURSORS,
    IDEA_TABLES,
    INGESTION,
    ROADMAP_CDC,
    SNAPSHOTS,
    Record,
    change_every_table,
    connect,
    flat,
    options_for,
    read_all,
)

REPO = Path(__file__).resolve().parents[1]
CDC_TABLES = tuple(table for table in TABLES if table not in SNAPSHOTS)


def conform(value: t.Any, data_type: DataType, path: str) -> None:
    """Check a raw record value converts to the Spark type (stricter than the framework's converter)."""
    if value is None:
        return
    if isinstance(data_type, StructType):
        assert isinstance(value, dict), path
        assert value, f"{path}: an empty dict cannot become a struct"
        assert set(value) <= set(data_type.fieldNames()), path
        for field in data_type.fields:
            conform(value.get(field.name), field.dataType, f"{path}.{field.name}")
    elif isinstance(data_type, ArrayType):
        assert isinstance(value, list), path
        for item in value:
            conform(item, data_type.elementType, f"{path}[]")
    elif isinstance(data_type, StringType):
        assert isinstance(value, str), path
    elif isinstance(data_type, LongType):
        assert isinstance(value, int), path
        assert not isinstance(value, bool), path
    elif isinstance(data_type, DoubleType):
        assert isinstance(value, (int, float)), path
        assert not isinstance(value, bool), path
    elif isinstance(data_type, BooleanType):
        assert isinstance(value, bool), path
    elif isinstance(data_type, TimestampType):
        assert isinstance(value, str), path
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        pytest.fail(f"{path}: unexpected type {data_type}")


def all_types(data_type: DataType) -> t.Iterator[DataType]:
    yield data_type
    if isinstance(data_type, StructType):
        for field in data_type.fields:
            yield from all_types(field.dataType)
    elif isinstance(data_type, ArrayType):
        yield from all_types(data_type.elementType)


def key(record: Record) -> tuple[str, str]:
    return record["updated_at"], record["id"]


@pytest.fixture
def seeded(fake: FakeAha) -> FakeAha:
    fake.seed(60)
    return fake


# ---------------------------------------------------------------------- the harness's checks


def test_list_tables_gives_unique_strings(seeded: FakeAha) -> None:
    tables = connect(seeded).list_tables()
    assert all(isinstance(name, str) for name in tables)
    assert len(tables) == len(set(tables))
    assert set(tables) == {
        "ideas", "idea_proxy_votes", "idea_comments", "idea_portal_comments",
        "idea_votes", "idea_organizations", "idea_users", "idea_portals", "products", "idea_categories",
        "features", "requirements", "epics", "releases", "release_phases", "initiatives", "goals",
        "key_results", "to_dos", "users", "idea_themes",
    }  # fmt: skip


@pytest.mark.parametrize("method", ["get_table_schema", "read_table_metadata", "read_table", "columns"])
def test_unknown_table_raises_value_error(seeded: FakeAha, method: str) -> None:
    connector = connect(seeded)
    call: dict[str, t.Callable[[], object]] = {
        "get_table_schema": lambda: connector.get_table_schema("roadmaps", {}),
        "read_table_metadata": lambda: connector.read_table_metadata("roadmaps", {}),
        "read_table": lambda: connector.read_table("roadmaps", None, {}),
        "columns": lambda: connector.columns("roadmaps"),
    }
    with pytest.raises(ValueError, match="Unknown table 'roadmaps'"):
        call[method]()
    assert seeded.count() == 0


@pytest.mark.parametrize("table", TABLES)
def test_schema_is_a_deterministic_struct_without_integer_type(seeded: FakeAha, table: str) -> None:
    connector = connect(seeded)
    schema = connector.get_table_schema(table, {})
    assert isinstance(schema, StructType)
    assert schema.fields
    for nested in all_types(schema):
        assert not isinstance(nested, IntegerType)
        if isinstance(nested, StructType):
            names = nested.fieldNames()
            assert len(names) == len(set(names))
    assert connector.get_table_schema(table, {}) == schema
    assert connect(seeded).get_table_schema(table, {"max_records_per_batch": "3"}).json() == schema.json()
    assert schema["id"].dataType == StringType()
    cursor = CURSORS[table]
    assert cursor is None or schema[cursor].dataType == TimestampType()


def test_schema_maps_json_schema_types(seeded: FakeAha) -> None:
    schema = connect(seeded).get_table_schema("ideas", {})
    assert schema["endorsements_count"].dataType == LongType()  # integer
    assert schema["score"].dataType == DoubleType()  # number
    workflow_status = schema["workflow_status"].dataType
    assert isinstance(workflow_status, StructType)  # an object with properties
    assert workflow_status["id"].dataType == StringType()  # ["string", "integer", "null"]
    custom_fields = schema["custom_fields"].dataType
    assert isinstance(custom_fields, ArrayType)
    assert isinstance(custom_fields.elementType, StructType)
    assert custom_fields.elementType["value"].dataType == StringType()  # any JSON value, as JSON text
    votes = connect(seeded).get_table_schema("idea_proxy_votes", {})
    assert votes["weight"].dataType == DoubleType()  # number
    assert "idea_id" in votes.fieldNames()


@pytest.mark.parametrize("table", TABLES)
def test_metadata_is_deterministic_and_names_schema_columns(seeded: FakeAha, table: str) -> None:
    connector = connect(seeded)
    metadata = connector.read_table_metadata(table, {})
    assert metadata == connector.read_table_metadata(table, {"max_records_per_batch": "2"})
    if table in SNAPSHOTS:
        assert metadata == {"primary_keys": ["id"], "ingestion_type": "snapshot"}
    else:
        assert metadata == {
            "primary_keys": ["id"],
            "cursor_field": CURSORS[table],
            "ingestion_type": INGESTION[table],
        }
    assert metadata["ingestion_type"] in {"snapshot", "cdc", "cdc_with_deletes", "append"}
    columns = connector.get_table_schema(table, {}).fieldNames()
    assert set(metadata["primary_keys"]) <= set(columns)
    assert metadata.get("cursor_field", "id") in columns


@pytest.mark.parametrize("table", TABLES)
def test_read_table_returns_records_that_fit_the_schema(seeded: FakeAha, table: str) -> None:
    connector = connect(seeded)
    schema = connector.get_table_schema(table, {})
    result = connector.read_table(table, None, {})
    assert isinstance(result, tuple)
    assert len(result) == 2
    records, offset = list(result[0]), result[1]
    assert isinstance(offset, dict)
    assert json.loads(json.dumps(offset)) == offset
    assert records
    for record in records:
        assert record["id"] is not None
        conform(record, schema, table)
        connector.columns(table).spark_row(record)  # what the data source gives Spark
    assert len({record["id"] for record in records}) == len(records)


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("start", [None, {}])
def test_offset_fed_back_terminates(seeded: FakeAha, table: str, start: dict[str, t.Any] | None) -> None:
    connector = connect(seeded)
    batches, offset = read_all(connector, table, start)
    assert len(batches) == 1
    records, again = connector.read_table(table, offset, {})
    assert list(records) == []
    assert again == offset


@pytest.mark.parametrize("table", TABLES)
def test_every_column_is_filled_by_some_record(seeded: FakeAha, table: str) -> None:
    connector = connect(seeded)
    records = flat(read_all(connector, table)[0])
    columns = connector.get_table_schema(table, {}).fieldNames()
    empty = [name for name in columns if all(record.get(name) is None for record in records)]
    assert empty == []


# ---------------------------------------------------------------------- offsets and batches


@pytest.mark.parametrize(
    ("inclusive", "order"), [(True, "created_desc"), (False, "updated_asc"), (False, "id")]
)
@pytest.mark.parametrize("table", IDEA_TABLES)
def test_batches_lose_nothing_where_ideas_share_updated_at(inclusive: bool, order: str, table: str) -> None:
    with FakeAha(updated_since_inclusive=inclusive, order=order) as fake:
        fake.seed(50)
        tie = "2023-01-01T00:30:00.000Z"
        for idea_id in fake.idea_ids()[5:25]:  # 20 ideas in one millisecond: every batch boundary cuts it
            fake.update_idea(idea_id, updated_at=tie)
        connector = connect(fake)
        whole = flat(read_all(connector, table)[0])
        batches, _ = read_all(connector, table, table_options={"max_records_per_batch": "3"})
        batched = flat(batches)
    assert sorted(r["id"] for r in batched) == sorted(r["id"] for r in whole)
    assert len(batches) > 3
    if table == "ideas":
        assert all(len(batch) <= 3 for batch in batches)
        assert [key(r) for r in batched] == sorted(key(r) for r in batched)
    else:  # an idea's children are never split between batches
        ideas_per_batch = [{r["idea_id"] for r in batch} for batch in batches]
        for i, first in enumerate(ideas_per_batch):
            for second in ideas_per_batch[i + 1 :]:
                assert not first & second


def test_offset_is_the_last_idea_read(seeded: FakeAha) -> None:
    connector = connect(seeded)
    records, offset = connector.read_table("ideas", None, {"max_records_per_batch": "7"})
    last = list(records)[-1]
    assert offset == {"cursor": last["updated_at"], "id": last["id"]}


@pytest.mark.parametrize("table", CDC_TABLES)
def test_a_read_repeated_from_the_same_offset_returns_the_same_records(seeded: FakeAha, table: str) -> None:
    connector = connect(seeded)
    _, offset = connector.read_table(table, None, {"max_records_per_batch": "5"})
    one, end_one = connector.read_table(table, offset, {"max_records_per_batch": "5"})
    two, end_two = connector.read_table(table, offset, {"max_records_per_batch": "5"})
    assert list(one) == list(two)
    assert end_one == end_two
    later = connect(seeded)  # another connector (another cap) reads the same
    three, end_three = later.read_table(table, offset, {"max_records_per_batch": "5"})
    assert (list(three), end_three) == (
        list(connector.read_table(table, offset, {"max_records_per_batch": "5"})[0]),
        end_one,
    )


@pytest.mark.parametrize("table", CDC_TABLES)
def test_read_between_offsets_replays_a_batch(seeded: FakeAha, table: str) -> None:
    connector = connect(seeded)
    start: dict[str, t.Any] | None = None
    if table != "idea_users":  # idea users come one pass per batch: their cursor is the pass's listing
        _, start = connector.read_table(table, None, {"max_records_per_batch": "4"})
    records, end = connector.read_table(table, start, {"max_records_per_batch": "4"})
    batch = list(records)
    assert batch
    assert connect(seeded).read_table_between(table, start, end, {}) == batch
    assert connector.read_table_between(table, start, start or {}, {}) == []


def test_reads_terminate_while_ideas_keep_changing(fake: FakeAha, caplog: pytest.LogCaptureFixture) -> None:
    fake.seed(40)
    ids = fake.idea_ids()
    changed: list[str] = []

    def churn(request: RequestLog) -> None:  # every listing request: one idea edited, one idea created
        if request.path.endswith("/ideas"):
            idea = ids[len(changed) % len(ids)]
            fake.update_idea(idea, name=f"edited {len(changed)}")
            changed.append(idea)
            fake.add_idea()

    fake.on_request.append(churn)
    connector = connect(fake, page_size="10")  # several pages a walk: the listing shifts under each walk
    with caplog.at_level(logging.WARNING):
        batches, offset = read_all(connector, "ideas", table_options={"max_records_per_batch": "6"})
    assert "listing kept changing" in caplog.text
    first_run = flat(batches)
    assert changed
    assert all(r["updated_at"] <= connector.cap for r in first_run)
    fake.on_request.remove(churn)
    # What changed during the run is read by the next one: no idea is lost.
    second_run = flat(read_all(connect(fake), "ideas", offset)[0])
    latest = {idea["id"]: idea["updated_at"] for idea in fake.ideas()}
    seen = {(r["id"], r["updated_at"]) for r in first_run + second_run}
    assert set(latest.items()) <= seen
    assert {r["id"] for r in second_run} == {i for i, u in latest.items() if u > connector.cap}


def test_children_follow_the_ideas_that_changed(seeded: FakeAha) -> None:
    connector = connect(seeded)
    offsets = {table: read_all(connector, table)[1] for table in IDEA_TABLES}
    ids = seeded.idea_ids()
    edited, voted, commented = ids[3], ids[10], ids[20]
    seeded.update_idea(edited, name="Renamed")
    vote = seeded.add_vote(voted)
    comment = seeded.add_comment(commented)
    later = connect(seeded)
    changed = {edited, voted, commented}

    ideas = flat(read_all(later, "ideas", offsets["ideas"])[0])
    assert {r["id"] for r in ideas} == changed

    votes = flat(read_all(later, "idea_proxy_votes", offsets["idea_proxy_votes"])[0])
    assert vote["id"] in {r["id"] for r in votes}
    assert {r["idea_id"] for r in votes} <= changed
    assert sorted(r["id"] for r in votes) == sorted(v["id"] for i in changed for v in seeded.votes(i))

    comments = flat(read_all(later, "idea_comments", offsets["idea_comments"])[0])
    assert comment["id"] in {r["id"] for r in comments}
    assert sorted(r["id"] for r in comments) == sorted(c["id"] for i in changed for c in seeded.comments(i))

    for table in IDEA_TABLES:  # and nothing more once read
        assert read_all(connect(seeded), table, read_all(later, table, offsets[table])[1])[0] == []


@pytest.mark.parametrize("pickled", [False, True], ids=["same instance", "pickled"])
@pytest.mark.parametrize("table", CDC_TABLES)
def test_one_connector_keeps_reading_what_changes(seeded: FakeAha, table: str, pickled: bool) -> None:
    """As Databricks' framework reads: one instance for the whole query, reading again from the offset."""
    connector = connect(seeded, poll_interval_seconds="0")
    first, offset = read_all(connector, table)
    assert first
    if pickled:
        connector = pickle.loads(pickle.dumps(connector))  # noqa: S301 - our own object
    assert read_all(connector, table, offset)[0] == []  # caught up: a new pass finds nothing new
    changed = change_every_table(seeded)
    batches, later = read_all(connector, table, offset, {"max_records_per_batch": "2"})
    records = flat(batches)
    if table in {"ideas", "idea_organizations", "idea_users", *ROADMAP_CDC}:
        assert {r["id"] for r in records} == changed[table]
    else:
        assert changed[table] <= {r["id"] for r in records}
        assert {r["idea_id"] for r in records} <= changed["ideas"]
    assert later != offset
    again = flat(read_all(connector, table, later)[0])
    if table == "idea_users":  # Aha!'s Date counts whole seconds: a user changed in that second comes again
        assert {r["id"] for r in again} <= changed[table]
    else:
        assert again == []


@pytest.mark.parametrize("pickled", [False, True], ids=["same instance", "pickled"])
@pytest.mark.parametrize("table", SNAPSHOTS)
def test_one_connector_reads_a_snapshot_table_whole_on_every_pass(
    seeded: FakeAha, table: str, pickled: bool
) -> None:
    waiting = connect(seeded, poll_interval_seconds="0")  # the cdc tables' interval: not a snapshot's
    _, offset = read_all(waiting, table)
    assert read_all(waiting, table, offset) == ([], offset)  # caught up: the next pass waits an hour
    connector = connect(seeded, snapshot_interval_seconds="0")
    first, offset = read_all(connector, table)
    assert first
    if pickled:
        connector = pickle.loads(pickle.dumps(connector))  # noqa: S301 - our own object
    changed = change_every_table(seeded)
    batches, later = read_all(connector, table, offset)
    assert {r["id"] for r in flat(batches)} == changed[table]  # the whole table again, the new rows too
    assert later != offset


def test_a_pass_replays_the_same_batches_until_it_has_caught_up(seeded: FakeAha) -> None:
    connector = connect(seeded, poll_interval_seconds="0")
    options = {"max_records_per_batch": "25"}
    _, middle = connector.read_table("ideas", None, options)
    seeded.add_idea(name="After the pass began")
    time.sleep(0.003)
    batches, end = read_all(connector, "ideas", middle, options)
    assert len(flat(batches)) == 35  # the pass ends at its cap: the new idea is not in it
    assert list(connector.read_table("ideas", middle, options)[0]) == batches[0]  # nor in a repeated read
    assert connector.read_table_between("ideas", middle, end, {}) == flat(batches)  # nor in a replay
    assert [r["name"] for r in flat(read_all(connector, "ideas", end)[0])] == ["After the pass began"]


def test_a_caught_up_table_lists_again_at_most_once_per_poll_interval(seeded: FakeAha) -> None:
    connector = connect(seeded)  # the default interval: 60 s
    _, offset = read_all(connector, "ideas")
    change_every_table(seeded)
    listed = seeded.count("/ideas")
    for _ in range(20):  # a continuous query asking again and again: no request, nothing yet
        records, again = connector.read_table("ideas", offset, {})
        assert (list(records), again) == ([], offset)
    assert seeded.count("/ideas") == listed
    records, again = connector.read_table("ideas", offset, {"poll_interval_seconds": "0"})  # per table
    assert len(list(records)) == 5
    assert again != offset


@pytest.mark.parametrize("value", ["-1", "soon", "0.5"])
def test_bad_poll_intervals_are_refused(seeded: FakeAha, value: str) -> None:
    with pytest.raises(SettingsError, match=r"'poll_interval_seconds' must be a (whole )?number"):
        connect(seeded).read_table("ideas", None, {"poll_interval_seconds": value})
    with pytest.raises(SettingsError, match=r"'poll_interval_seconds'"):
        connect(seeded, poll_interval_seconds=value)


def test_a_one_pass_connector_never_reads_past_its_first_cap(seeded: FakeAha) -> None:
    connector = LakeflowConnect(options_for(seeded, poll_interval_seconds="0"), continuous=False)
    _, offset = read_all(connector, "ideas")
    change_every_table(seeded)
    assert read_all(connector, "ideas", offset)[0] == []
    copy = pickle.loads(pickle.dumps(connector))  # noqa: S301 - our own object
    assert read_all(copy, "ideas", offset)[0] == []


def test_a_read_stops_at_the_cap(seeded: FakeAha) -> None:
    connector = connect(seeded)
    time.sleep(0.003)
    seeded.add_idea(name="Made after the connector")
    records = flat(read_all(connector, "ideas")[0])
    assert len(records) == 60
    assert len(flat(read_all(connect(seeded), "ideas")[0])) == 61


def test_start_date_bounds_the_first_read(seeded: FakeAha) -> None:
    start = "2023-01-01T00:40:00.000Z"
    records = flat(read_all(connect(seeded, start_date=start), "ideas")[0])
    expected = {i["id"] for i in seeded.ideas() if i["updated_at"] >= start}
    assert {r["id"] for r in records} == expected
    assert expected
    assert len(expected) < 60


def test_max_ideas_caps_each_run_in_offset_order(seeded: FakeAha) -> None:
    full = flat(read_all(connect(seeded), "ideas")[0])
    connector = connect(seeded, max_ideas="5")
    batches, offset = read_all(connector, "ideas", table_options={"max_records_per_batch": "2"})
    assert flat(batches) == full[:5]
    following = flat(read_all(connect(seeded, max_ideas="5"), "ideas", offset)[0])
    assert following == full[5:10]
    comments_run = read_all(connect(seeded, max_ideas="5"), "idea_comments")[0]
    assert {r["idea_id"] for r in flat(comments_run)} <= {r["id"] for r in full[:5]}


@pytest.mark.parametrize("table", ["ideas", "idea_comments"])
def test_a_replay_does_not_spend_the_passs_max_ideas(seeded: FakeAha, table: str) -> None:
    whole, whole_end = read_all(connect(seeded, max_ideas="5"), table)
    connector = connect(seeded, max_ideas="5")
    first, offset = connector.read_table(table, None, {"max_records_per_batch": "1"})
    batch = list(first)
    assert connector.read_table_between(table, None, offset, {}) == batch  # Spark replays it after a restart
    rest, end = read_all(connector, table, offset)
    assert flat(rest)
    assert (batch + flat(rest), end) == (flat(whole), whole_end)  # the pass still reads its 5 ideas


def delete_late(fake: FakeAha) -> str:
    """Delete an idea after every cap made so far (a later pass reads it)."""
    time.sleep(0.003)
    late = fake.idea_ids()[-1]
    fake.delete_idea(late)
    time.sleep(0.003)
    return late


def test_a_delete_pass_keeps_its_cap_when_pickled(seeded: FakeAha) -> None:
    for idea in seeded.idea_ids()[:4]:
        seeded.delete_idea(idea)
    connector = connect(seeded)
    _, offset = connector.read_table_deletes("ideas", None, {"max_records_per_batch": "2"})
    late = delete_late(seeded)
    copy = pickle.loads(pickle.dumps(connector))  # noqa: S301 - our own object; Spark pickles it
    rest = flat(read_all(copy, "ideas", offset, deletes=True)[0])
    assert len(rest) == 2
    assert late not in {row["id"] for row in rest}


def test_a_one_pass_delete_flow_reads_up_to_the_connectors_cap(seeded: FakeAha) -> None:
    for idea in seeded.idea_ids()[:4]:
        seeded.delete_idea(idea)
    time.sleep(0.003)
    one_pass = LakeflowConnect(options_for(seeded), continuous=False)  # an AvailableNow run
    late = delete_late(seeded)  # after the run started, before its delete flow's first read
    deleted = flat(read_all(one_pass, "ideas", deletes=True)[0])
    assert len(deleted) == 4
    assert late not in {row["id"] for row in deleted}


def test_filters_apply_to_the_children_too(seeded: FakeAha) -> None:
    connector = connect(seeded, ideas_workflow_status="Planned")
    ideas = flat(read_all(connector, "ideas")[0])
    assert ideas
    assert {r["workflow_status"]["name"] for r in ideas} == {"Planned"}
    comments = flat(read_all(connector, "idea_comments")[0])
    assert {r["idea_id"] for r in comments} <= {r["id"] for r in ideas}
    assert all(
        r.query.get("workflow_status") == "Planned" for r in seeded.requests if r.path.endswith("/ideas")
    )


def test_mixed_values_become_text(fake: FakeAha) -> None:
    fake.seed(30)
    records = flat(read_all(connect(fake), "ideas")[0])
    values = [f["value"] for r in records for f in r["custom_fields"] or []]
    assert values
    assert all(isinstance(v, str) for v in values if v is not None)
    assert {type(json.loads(v)) for v in values if v is not None} > {str}  # JSON text of any value
    ids = [r["workflow_status"]["id"] for r in records]
    assert all(isinstance(i, str) for i in ids)


def test_the_connector_writes_nothing_to_stdout(seeded: FakeAha, capsys: pytest.CaptureFixture[str]) -> None:
    connector = connect(seeded)
    for table in TABLES:
        read_all(connector, table)
    assert capsys.readouterr().out == ""


def test_the_connector_pickles_without_its_connection(seeded: FakeAha) -> None:
    connector = connect(seeded)
    read_all(connector, "idea_comments")  # open sessions, limiter locks, worker threads
    copy = pickle.loads(pickle.dumps(connector))  # noqa: S301 - our own object
    assert copy.cap == connector.cap
    assert flat(read_all(copy, "ideas")[0]) == flat(read_all(connector, "ideas")[0])


@pytest.mark.parametrize("offset", [{"cursor": "yesterday", "id": "1"}, {"cursor": 5}, {"id": "1"}, []])
def test_bad_offsets_are_refused(seeded: FakeAha, offset: t.Any) -> None:
    with pytest.raises(ValueError, match="offset"):
        connect(seeded).read_table("ideas", offset, {})


# ---------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "bad",
    [
        {"api_key": ""},
        {"api_url": "", "subdomain": ""},
        {"api_url": "", "subdomain": "acme.example.com/ideas"},
        {"api_url": "http://example.com/api/v1"},
        {"page_size": "lots"},
        {"page_size": "500"},
        {"requests_per_minute": "0"},
        {"request_timeout": "-1"},
        {"start_date": "last tuesday"},
        {"max_ideas": "2.5"},
    ],
)
def test_bad_settings_fail_with_the_taps_message(fake: FakeAha, bad: dict[str, str]) -> None:
    options = options_for(fake, **bad)
    with pytest.raises(SettingsError) as tap_error:
        AhaSettings.from_config(options)  # what `tap-aha --config` reports for the same settings
    with pytest.raises(SettingsError) as error:
        LakeflowConnect(options)
    assert str(error.value) == str(tap_error.value)
    assert fake.count() == 0


def test_string_options_reach_the_tap_typed(fake: FakeAha) -> None:
    connector = LakeflowConnect(options_for(fake, page_size="50", request_timeout="2.5", max_retries="1"))
    config = connector.tap.config
    assert (config["page_size"], config["request_timeout"], config["max_retries"]) == (50, 2.5, 1)


def test_unknown_options_are_refused_by_name(fake: FakeAha) -> None:
    with pytest.raises(SettingsError, match=r"Unknown option\(s\) apikey, workflow"):
        LakeflowConnect({**options_for(fake), "apikey": "x", "workflow": "y"})
    with pytest.raises(SettingsError, match="Unknown option"):
        connect(fake).read_table("ideas", None, {"max_record_per_batch": "5"})


def test_framework_options_are_accepted_and_ignored(seeded: FakeAha) -> None:
    framework = {
        "tableName": "ideas",
        "tablenamelist": "ideas,idea_comments",
        "tableConfigs": "{}",
        "isDeleteFlow": "false",
        "databricks.connection": "aha",
        "externalOptionsAllowList": "max_records_per_batch",
    }
    connector = LakeflowConnect({**options_for(seeded), **framework})
    records, _ = connector.read_table("ideas", None, {**options_for(seeded), **framework})
    assert len(list(records)) == 60


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1.5"])
def test_bad_batch_sizes_are_refused(seeded: FakeAha, value: str) -> None:
    with pytest.raises(SettingsError, match=r"'max_records_per_batch' must be a (whole )?number"):
        connect(seeded).read_table("ideas", None, {"max_records_per_batch": value})


def test_connection_options_cannot_differ_per_table(seeded: FakeAha) -> None:
    connector = connect(seeded)
    with pytest.raises(SettingsError, match="'ideas_q' is a connection option"):
        connector.read_table("ideas", None, {"ideas_q": "export"})
    records, _ = connector.read_table("ideas", None, options_for(seeded))  # the same values are fine
    assert list(records)


def test_a_batch_size_given_with_the_connection_is_the_default(seeded: FakeAha) -> None:
    batches, _ = read_all(connect(seeded, max_records_per_batch="25"), "ideas")
    assert [len(batch) for batch in batches] == [25, 25, 10]


# ---------------------------------------------------------------------- connector_spec.yaml


def spec() -> dict[str, t.Any]:
    loaded: dict[str, t.Any] = yaml.safe_load((REPO / "connector_spec.yaml").read_text())
    return loaded


def test_spec_declares_exactly_the_options_the_code_reads() -> None:
    parameters = spec()["connection"]["parameters"]
    for parameter in parameters:
        assert set(parameter) == {"name", "type", "required", "description"}
        assert parameter["type"] == "string"
        assert parameter["description"].strip()
    assert [p["name"] for p in parameters] == list(CONNECTION_OPTIONS)
    assert {p["name"] for p in parameters if p["required"]} == {"api_key"}
    allowlist = [name.strip() for name in spec()["external_options_allowlist"].split(",") if name.strip()]
    assert allowlist == list(TABLE_OPTIONS)


def test_the_code_reads_the_taps_own_settings() -> None:
    builtins: dict[str, t.Any] = {"properties": {}}
    TapAha.append_builtin_config(builtins)
    own = [name for name in TapAha.config_jsonschema["properties"] if name not in builtins["properties"]]
    assert list(CONNECTION_OPTIONS) == own
    assert set(TapAha.config_jsonschema["required"]) == {"api_key"}


# A valid value for every declared option; a new setting must be added here, and so to the spec.
SAMPLES = {
    "api_key": "test-key",
    "subdomain": "fakeco",
    "api_url": "",  # replaced by the fake's URL
    "start_date": "2023-01-01T00:00:00Z",
    "ideas_workflow_status": "Planned",
    "ideas_q": "export",
    "max_ideas": "3",
    "page_size": "20",
    "requests_per_minute": "1000000",
    "requests_per_second": "100000",
    "request_timeout": "30",
    "max_retries": "2",
    "max_rate_limit_wait": "120",
    "parallel_requests": "2",
    "include_spam_portal_comments": "true",
    "capture_deletes": "false",
    "user_agent": "lakeflow-test/1.0",
}


def test_no_declared_option_is_ignored(fake: FakeAha) -> None:
    """Each connection option reaches the tap's settings; the table option changes the batches."""
    declared = [p["name"] for p in spec()["connection"]["parameters"]]
    assert sorted(SAMPLES) == sorted(declared)
    options = {**SAMPLES, "api_url": fake.url}
    connector = LakeflowConnect(options)
    settings = connector.settings
    assert settings.api_key == "test-key"
    assert settings.api_url == fake.url
    assert settings.start_date == "2023-01-01T00:00:00.000Z"
    assert (settings.ideas_workflow_status, settings.ideas_q, settings.max_ideas) == ("Planned", "export", 3)
    assert (settings.page_size, settings.requests_per_minute, settings.requests_per_second) == (
        20,
        1000000,
        100000,
    )
    assert (settings.request_timeout, settings.max_retries, settings.user_agent) == (
        30.0,
        2,
        "lakeflow-test/1.0",
    )
    assert settings.parallel_requests == 2
    assert settings.max_rate_limit_wait == 120.0
    assert settings.include_spam_portal_comments is True
    assert settings.capture_deletes is False
    tap_config = connector.tap.config
    for name in declared:
        # max_ideas: the connector applies it, in offset order; subdomain: folded into api_url above.
        if name not in {"max_ideas", "subdomain"}:
            assert name in tap_config, name
    with pytest.raises(SettingsError, match="'subdomain'"):
        LakeflowConnect({**options, "subdomain": "not a host"})


# ---------------------------------------------------------------------- without pyspark

BLOCKER = """
import sys, importlib.abc
class NoSpark(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, NoSpark())
"""


def test_tap_and_connector_work_without_pyspark(tmp_path: Path) -> None:
    script = BLOCKER + textwrap.dedent(
        """
        import contextlib, io, time
        from tests.fake_aha import FakeAha
        from tap_aha.tap import TapAha
        from tap_aha.lakeflow import LakeflowConnect
        with FakeAha() as fake:
            fake.seed(5)
            time.sleep(0.01)
            out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
            with contextlib.redirect_stdout(out):
                TapAha(config={"api_key": fake.api_key, "api_url": fake.url}).sync_all()
                out.flush()
            assert b'"RECORD"' in out.buffer.getvalue()
            connector = LakeflowConnect({"api_key": fake.api_key, "api_url": fake.url})
            records, offset = connector.read_table("idea_comments", None, {})
            assert offset and connector.read_table_metadata("ideas", {})["cursor_field"] == "updated_at"
            try:
                connector.get_table_schema("ideas", {})
            except ImportError as exc:
                assert "tap-aha[lakeflow]" in str(exc), exc
            else:
                raise AssertionError("get_table_schema worked without pyspark")
        assert "pyspark" not in sys.modules
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")
