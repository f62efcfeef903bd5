"""The PySpark data source (`tap_aha.lakeflow_spark`) in a real local Spark session, against the fake Aha!.

One session for the module (`local[2]`, no UI, temporary warehouse and checkpoints). The fake server runs in
this process on 127.0.0.1; Spark's Python workers are processes of this machine and reach it there.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import time
import typing as t
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.functions import input_file_name
from pyspark.sql.streaming.query import StreamingQuery

from tap_aha.lakeflow import TABLES, LakeflowConnect
from tap_aha.lakeflow_spark import (
    METADATA_TABLE,
    AhaDataSource,
    AhaStreamReader,
    register_lakeflow_source,
)
from tests.fake_aha import FakeAha
from tests.lakeflow_helpers import CURSORS, IDEA_TABLES, INGESTION, change_every_table, options_for

try:
    from pyspark.sql.streaming.datasource import SupportsTriggerAvailableNow  # noqa: F401

    AVAILABLE_NOW_READS_ALL = True
except ImportError:
    AVAILABLE_NOW_READS_ALL = False

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17+ (none on PATH)")


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[SparkSession]:
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("tap-aha-lakeflow-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.streaming.minBatchesToRetain", "100")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    register_lakeflow_source(session)
    yield session
    session.stop()


def settle() -> None:
    """Let the clock pass the last change, so a connector made now has it before its cap."""
    time.sleep(0.003)


@dataclass
class Sink:
    """A parquet sink and its checkpoint: one table's pipeline across runs."""

    table: str
    out: Path
    checkpoint: Path
    query: StreamingQuery | None = None
    before: frozenset[str] = frozenset()

    def start(self, spark: SparkSession, options: dict[str, str]) -> None:
        """Start one pipeline run: an AvailableNow streaming query from the checkpoint into the sink."""
        exists = (self.out / "_spark_metadata").exists()
        self.before = frozenset(spark.read.parquet(str(self.out)).inputFiles()) if exists else frozenset()
        self.query = (
            spark.readStream.format("aha")
            .option("tableName", self.table)
            .options(**options)
            .load()
            .writeStream.format("parquet")
            .option("path", str(self.out))
            .option("checkpointLocation", str(self.checkpoint))
            .trigger(availableNow=True)
            .start()
        )

    def finish(self, spark: SparkSession) -> tuple[DataFrame, int]:
        """Wait for the run; the rows it added to the sink and the number of non-empty micro-batches."""
        assert self.query is not None
        self.query.awaitTermination(300)
        assert self.query.exception() is None, self.query.exception()
        batches = sum(1 for progress in self.query.recentProgress if progress["numInputRows"] > 0)
        rows = spark.read.parquet(str(self.out)).withColumn("_file", input_file_name())
        added = rows.where(~rows["_file"].isin(sorted(self.before))) if self.before else rows
        return added.drop("_file"), batches


def run(spark: SparkSession, sinks: list[Sink], options: dict[str, str]) -> list[DataFrame]:
    """One pipeline run of every sink's table, the queries side by side as a pipeline runs its flows."""
    for sink in sinks:
        sink.start(spark, options)
    return [sink.finish(spark)[0] for sink in sinks]


def ids(frame: DataFrame, column: str = "id") -> list[str]:
    return sorted(row[column] for row in frame.select(column).collect())


@pytest.mark.parametrize("table", TABLES)
def test_batch_read_matches_the_connector(spark: SparkSession, fake: FakeAha, table: str) -> None:
    fake.seed(30)
    settle()
    frame = spark.read.format("aha").option("tableName", table).options(**options_for(fake)).load()
    connector = LakeflowConnect(options_for(fake))
    assert frame.schema == connector.get_table_schema(table, {})
    records = list(connector.read_table(table, None, {})[0])
    rows = frame.collect()
    assert sorted(row["id"] for row in rows) == sorted(r["id"] for r in records)
    cursor = CURSORS[table]
    assert cursor is None or all(row[cursor] is not None for row in rows)


def test_batch_read_goes_through_every_batch(spark: SparkSession, fake: FakeAha) -> None:
    fake.seed(30)
    settle()
    options = options_for(fake, max_records_per_batch="4")
    frame = spark.read.format("aha").option("tableName", "ideas").options(**options).load()
    assert ids(frame) == sorted(fake.idea_ids())


def test_nested_values_arrive_typed(spark: SparkSession, fake: FakeAha) -> None:
    fake.seed(20)
    settle()
    frame = spark.read.format("aha").option("tableName", "ideas").options(**options_for(fake)).load()
    row = frame.where("size(custom_fields) > 0").first()
    assert row is not None
    stored = fake.idea(row["id"])
    assert row["workflow_status"]["name"] == stored["workflow_status"]["name"]
    assert row["endorsements_count"] == stored["endorsements_count"]
    assert row["updated_at"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" == stored["updated_at"]
    stored_values = {f["key"]: f["value"] for f in stored["custom_fields"]}
    for field in row["custom_fields"]:  # any JSON value, as JSON text
        assert json.loads(field["value"]) == stored_values[field["key"]]
    parsed = frame.selectExpr("explode(custom_fields) AS f").selectExpr("parse_json(f.value) AS v")
    assert parsed.where("v IS NOT NULL").count() > 0


def test_metadata_table(spark: SparkSession, fake: FakeAha) -> None:
    frame = (
        spark.read.format("aha")
        .option("tableName", METADATA_TABLE)
        .option("tableNameList", ",".join(TABLES))
        .option("tableConfigs", '{"ideas": {"max_records_per_batch": "10"}}')
        .options(**options_for(fake))
        .load()
    )
    rows = {row["tableName"]: row.asDict() for row in frame.collect()}
    assert set(rows) == set(TABLES)
    for table in TABLES:
        assert rows[table]["primary_keys"] == ["id"]
        assert rows[table]["cursor_field"] == CURSORS[table]
        assert rows[table]["ingestion_type"] == INGESTION[table]
    assert fake.count() == 0


def test_registered_for_lakeflow_pipelines(spark: SparkSession, fake: FakeAha) -> None:
    frame = (
        spark.read.format("lakeflow_connect")
        .option("databricks.connection", "aha")
        .option("tableName", METADATA_TABLE)
        .option("tableNameList", "idea_comments")
        .options(**options_for(fake))
        .load()
    )
    assert [row["tableName"] for row in frame.collect()] == ["idea_comments"]


def test_streaming_runs_pick_up_exactly_the_changes(
    spark: SparkSession, fake: FakeAha, tmp_path: Path
) -> None:
    fake.seed(30)
    settle()
    options = options_for(fake)
    sinks = [Sink(table, tmp_path / table, tmp_path / f"{table}.checkpoint") for table in IDEA_TABLES]

    first = run(spark, sinks, options)
    connector = LakeflowConnect(options)
    for table, added in zip(IDEA_TABLES, first, strict=True):
        assert ids(added) == sorted(r["id"] for r in connector.read_table(table, None, {})[0]), table

    all_ids = fake.idea_ids()
    changed = [all_ids[2], all_ids[12], all_ids[22]]
    fake.update_idea(changed[0], name="Renamed in the fake")
    fake.add_vote(changed[1])
    fake.add_comment(changed[2])
    fake.add_portal_comment(changed[0])
    settle()
    ideas, votes, comments, portal = run(spark, sinks, options)
    assert ids(ideas) == sorted(changed)
    assert ids(votes) == sorted(v["id"] for i in changed for v in fake.votes(i))
    assert ids(comments) == sorted(c["id"] for i in changed for c in fake.comments(i))
    # Portal comments have no updated_at: every portal comment of each changed idea comes again.
    assert ids(portal) == sorted(
        c["id"] for i in changed for c in fake.portal_comments(i, include_spam=False)
    )
    assert set(ids(votes, "idea_id")) | set(ids(comments, "idea_id")) | set(ids(portal, "idea_id")) <= set(
        changed
    )

    assert [added.count() for added in run(spark, sinks, options)] == [0] * len(IDEA_TABLES)


def wait_for(condition: t.Callable[[], bool], timeout: float = 180) -> float:
    """Poll until `condition` holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.2)
    return time.monotonic() - started


def test_a_continuous_query_picks_up_changes_while_it_runs(spark: SparkSession, fake: FakeAha) -> None:
    """A processingTime query per idea table, never restarted, into a memory sink: what changes arrives.

    (The companion tables' passes are covered in test_lakeflow.py: ten streaming queries at once are more
    than a two-core test machine runs in reasonable time.)
    """
    fake.seed(40)
    settle()
    options = options_for(fake, poll_interval_seconds="5")
    queries = [
        spark.readStream.format("aha")
        .option("tableName", table)
        .options(**options)
        .load()
        .writeStream.format("memory")
        .queryName(f"continuous_{table}")
        .trigger(processingTime="1 second")
        .start()
        for table in IDEA_TABLES
    ]

    def sink(table: str) -> list[str]:
        return ids(spark.table(f"continuous_{table}"))

    connector = LakeflowConnect(options)
    first = {
        table: sorted(r["id"] for r in connector.read_table(table, None, {})[0]) for table in IDEA_TABLES
    }
    try:
        wait_for(lambda: all(sink(table) == first[table] for table in IDEA_TABLES))
        changed = change_every_table(fake)

        def arrived(table: str) -> bool:
            rows = sink(table)
            if table == "ideas":  # the changed ideas come again, the new one for the first time
                return len(rows) == len(first[table]) + len(changed[table])
            return changed[table] <= set(rows)

        changed_at = time.monotonic()
        took: dict[str, float] = {}

        def all_arrived() -> bool:
            for table in IDEA_TABLES:
                if table not in took and arrived(table):
                    took[table] = round(time.monotonic() - changed_at, 1)
            return len(took) == len(IDEA_TABLES)

        wait_for(all_arrived)
        assert all(query.isActive and query.exception() is None for query in queries)
    finally:
        for query in queries:
            query.stop()
    picked_up = {table: len(sink(table)) - len(first[table]) for table in IDEA_TABLES}
    assert set(sink("ideas")) == set(first["ideas"]) | changed["ideas"]
    for table in IDEA_TABLES[1:]:  # the children of the changed ideas, and only theirs
        rows = spark.table(f"continuous_{table}").collect()
        counts = Counter(row["id"] for row in rows)
        again = {key for key, n in counts.items() if n > 1 or key not in first[table]}
        assert {row["idea_id"] for row in rows if row["id"] in again} <= changed["ideas"]
    print(f"continuous query: records picked up after the change {picked_up}; seconds after it {took}")


def test_streaming_batches_resume_exactly(spark: SparkSession, fake: FakeAha, tmp_path: Path) -> None:
    fake.seed(30)
    for idea_id in fake.idea_ids()[:12]:  # a run of ties across several batch boundaries
        fake.update_idea(idea_id, updated_at="2023-01-01T00:10:00.000Z")
    settle()
    options = options_for(fake, max_records_per_batch="5")
    sink = Sink("ideas", tmp_path / "out", tmp_path / "checkpoint")
    runs: list[tuple[list[str], int]] = []
    while not runs or runs[-1][0]:  # pipeline runs until one finds nothing new
        assert len(runs) < 10
        sink.start(spark, options)
        added, batches = sink.finish(spark)
        runs.append((ids(added), batches))
    read = [idea_id for run_ids, _ in runs for idea_id in run_ids]
    assert sorted(read) == sorted(fake.idea_ids())  # nothing lost, nothing twice
    if AVAILABLE_NOW_READS_ALL:  # Spark 4.1+: one run reads every batch up to its cap
        assert len(runs) == 2
        assert runs[0][1] >= 6
    else:  # Spark 4.0: each AvailableNow run reads one batch; the next run resumes exactly after it
        assert len(runs) == 7
    fake.update_idea(fake.idea_ids()[0], name="Edited")
    settle()
    sink.start(spark, options)
    second, _ = sink.finish(spark)
    assert ids(second) == [fake.idea_ids()[0]]


def test_stream_reader_replays_a_batch_and_pickles(fake: FakeAha) -> None:
    fake.seed(20)
    settle()
    options = {**options_for(fake, max_records_per_batch="6"), "tablename": "idea_comments"}
    reader = AhaStreamReader(options)
    start = reader.initialOffset()
    rows, end = reader.read(start)
    batch = list(rows)
    assert batch
    assert list(reader.readBetweenOffsets(start, end)) == batch
    copy = pickle.loads(pickle.dumps(reader))  # noqa: S301 - our own object
    assert list(copy.read(start)[0]) == batch
    source = pickle.loads(pickle.dumps(AhaDataSource(options)))  # noqa: S301
    assert source.schema() == LakeflowConnect(options).get_table_schema("idea_comments", {})


@pytest.mark.parametrize("table", ["ideas", "idea_proxy_votes"])
def test_delete_flow_reads_the_deleted_keys_as_rows(spark: SparkSession, fake: FakeAha, table: str) -> None:
    fake.seed(30)
    voted = [i for i in fake.idea_ids() if fake.votes(i)]
    vote = fake.delete_vote(fake.votes(voted[0])[0]["id"])
    idea = next(i for i in fake.idea_ids() if i not in voted)
    fake.delete_idea(idea)
    settle()
    options = {**options_for(fake), "isDeleteFlow": "true"}
    frame = spark.read.format("aha").option("tableName", table).options(**options).load()
    rows = frame.collect()
    deleted = {"ideas": {idea}, "idea_proxy_votes": {vote["id"]}}[table]
    assert deleted <= {row["id"] for row in rows}
    audits = {str(a["auditable_id"]): a["created_at"] for a in fake.audits()}
    for row in rows:
        assert row[CURSORS[table]].isoformat(timespec="milliseconds") + "Z" == audits[row["id"]]
    if table == "idea_proxy_votes":
        assert {row["idea_id"] for row in rows if row["id"] == vote["id"]} == {vote["idea_id"]}
    assert frame.schema == LakeflowConnect(options_for(fake)).get_table_schema(table, {})

    reader = AhaStreamReader(options | {"tableName": table})
    streamed, end = reader.read({})
    batch = list(streamed)
    assert {row[0] for row in batch} == {row["id"] for row in rows}
    assert list(reader.readBetweenOffsets({}, end)) == batch
