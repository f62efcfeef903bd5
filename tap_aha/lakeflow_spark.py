"""The Lakeflow connector as a PySpark data source (Spark 4.0+): `spark.read` and `spark.readStream`.

    from tap_aha.lakeflow_spark import register_lakeflow_source
    register_lakeflow_source(spark)
    spark.readStream.format("aha").option("tableName", "ideas").option("api_key", ...).load()

With option `isDeleteFlow` "true" (the framework's delete flow) both read the deleted keys instead
(`read_table_deletes`). Offsets of the streaming reader are the connector's offsets, so a checkpoint resumes
exactly where the last run stopped. Like Databricks' own framework, a streaming reader keeps one connector
for the query's lifetime: a continuous query (a processingTime trigger) keeps reading what changes, an
AvailableNow run stops with the data that existed when it started. Needs the `lakeflow` extra
(`pip install 'tap-aha[lakeflow]'`); Databricks provides Spark. Spark pickles the data source and its readers
to Python workers: they hold options (and a connector's passes) only, and make a connector where they read.
"""

from __future__ import annotations

import json
import typing as t

from pyspark.sql.datasource import DataSource, DataSourceReader, SimpleDataSourceStreamReader
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from tap_aha.lakeflow import TABLES, LakeflowConnect

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from pyspark.sql import SparkSession
    from pyspark.sql.datasource import InputPartition
    from pyspark.sql.streaming.datasource import SupportsTriggerAvailableNow as _AvailableNow
else:
    try:  # Spark 4.1+: an AvailableNow run reads every batch up to one cap, not just the first batch
        from pyspark.sql.streaming.datasource import SupportsTriggerAvailableNow as _AvailableNow
    except ImportError:  # Spark 4.0
        _AvailableNow = object

SHORT_NAME = "aha"
LAKEFLOW_FORMAT = "lakeflow_connect"  # the name the Lakeflow community-connector pipeline reads from
METADATA_TABLE = "_lakeflow_metadata"
METADATA_SCHEMA = StructType(
    [
        StructField("tableName", StringType(), nullable=False),
        StructField("primary_keys", ArrayType(StringType()), nullable=True),
        StructField("cursor_field", StringType(), nullable=True),
        StructField("ingestion_type", StringType(), nullable=True),
    ]
)
Row = tuple[t.Any, ...]
Read = t.Callable[
    [str, "Mapping[str, t.Any] | None", "Mapping[str, t.Any]"],
    tuple["Iterator[dict[str, t.Any]]", dict[str, t.Any]],
]


def _options(options: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """A plain dict with Spark's lower-cased keys (picklable, and the same in tests and in Spark)."""
    return {str(key).lower(): value for key, value in options.items()}


def _table(options: Mapping[str, t.Any]) -> str:
    table = options.get("tablename")
    if not table:
        raise ValueError(f"Option 'tableName' is required: one of {', '.join(TABLES)} or {METADATA_TABLE}.")
    return str(table)


class AhaDataSource(DataSource):
    """Aha! ideas, votes, comments and their companions; option `tableName` picks the table."""

    def __init__(self, options: Mapping[str, t.Any]) -> None:
        """Keep the options only: a connector is made where data is read."""
        self.options = _options(options)

    @classmethod
    def name(cls) -> str:
        """`spark.read.format("aha")`."""
        return SHORT_NAME

    def schema(self) -> StructType:
        """The table's schema from the connector, or the metadata table's."""
        table = _table(self.options)
        if table == METADATA_TABLE:
            return METADATA_SCHEMA
        return LakeflowConnect(self.options).get_table_schema(table, self.options)

    def reader(self, schema: StructType) -> DataSourceReader:
        """A batch read of everything up to the moment it starts."""
        return AhaBatchReader(self.options)

    def simpleStreamReader(self, schema: StructType) -> SimpleDataSourceStreamReader:
        """A streaming read whose offsets are the connector's."""
        return AhaStreamReader(self.options)


class LakeflowConnectSource(AhaDataSource):
    """The same source under the name the Lakeflow community-connector pipeline reads from."""

    @classmethod
    def name(cls) -> str:
        """`spark.read.format("lakeflow_connect")`."""
        return LAKEFLOW_FORMAT


class AhaBatchReader(DataSourceReader):
    """Reads the whole table (batch after batch when `max_records_per_batch` is set) up to its cap."""

    def __init__(self, options: Mapping[str, t.Any]) -> None:
        """Options only (picklable)."""
        self.options = _options(options)

    def read(self, partition: InputPartition) -> Iterator[Row]:
        """All rows of the table, or one row per table for `_lakeflow_metadata`."""
        table = _table(self.options)
        connector = LakeflowConnect(self.options)
        if table == METADATA_TABLE:
            yield from _metadata_rows(connector, self.options)
            return
        read = _flow(connector, self.options)
        columns = connector.columns(table)
        offset: dict[str, t.Any] = {}
        while True:
            records, end = read(table, offset, self.options)
            for record in records:
                yield columns.spark_row(record)
            if end == offset:
                return
            offset = end


class AhaStreamReader(SimpleDataSourceStreamReader, _AvailableNow):
    """Micro-batches from one connector; a checkpoint's offset resumes exactly after the last idea read."""

    def __init__(self, options: Mapping[str, t.Any]) -> None:
        """Options; the connector is made at the first read, or when an AvailableNow run starts."""
        self.options = _options(options)
        self._connector: LakeflowConnect | None = None

    def initialOffset(self) -> dict[str, t.Any]:
        """An empty offset: a new query reads everything."""
        return {}

    def prepareForTriggerAvailableNow(self) -> None:
        """One pass with the cap fixed now, so the run ends after the data that existed when it started."""
        self._connector = LakeflowConnect(self.options, continuous=False)

    def read(self, start: dict[str, t.Any]) -> tuple[Iterator[Row], dict[str, t.Any]]:
        """Rows after `start` up to the pass's cap, and the offset to start the next batch from."""
        table = _table(self.options)
        if self._connector is None:
            self._connector = LakeflowConnect(self.options)
        connector = self._connector
        records, end = _flow(connector, self.options)(table, start, self.options)
        columns = connector.columns(table)
        return iter([columns.spark_row(record) for record in records]), end

    def readBetweenOffsets(self, start: dict[str, t.Any], end: dict[str, t.Any]) -> Iterator[Row]:
        """A batch replayed after a restart: the same rows from `start` up to `end`."""
        table = _table(self.options)
        connector = LakeflowConnect(self.options)
        columns = connector.columns(table)
        deletes = _is_delete_flow(self.options)
        records = connector.read_table_between(table, start, end, self.options, deletes=deletes)
        return iter([columns.spark_row(record) for record in records])


def _metadata_rows(connector: LakeflowConnect, options: Mapping[str, t.Any]) -> Iterator[Row]:
    names = [name.strip() for name in str(options.get("tablenamelist") or "").split(",") if name.strip()]
    configs = json.loads(options.get("tableconfigs") or "{}")
    for name in names or connector.list_tables():
        metadata = connector.read_table_metadata(name, configs.get(name, {}))
        yield (name, metadata["primary_keys"], metadata.get("cursor_field"), metadata["ingestion_type"])


def _is_delete_flow(options: Mapping[str, t.Any]) -> bool:
    """The framework's delete flow of a `cdc_with_deletes` table (option isDeleteFlow) reads deleted keys."""
    return str(options.get("isdeleteflow", "")).strip().lower() == "true"


def _flow(connector: LakeflowConnect, options: Mapping[str, t.Any]) -> Read:
    return connector.read_table_deletes if _is_delete_flow(options) else connector.read_table


def register_lakeflow_source(spark: SparkSession) -> None:
    """Register the source as `aha` and as `lakeflow_connect` (what a Lakeflow pipeline reads from)."""
    spark.dataSource.register(AhaDataSource)
    spark.dataSource.register(LakeflowConnectSource)


__all__ = ["AhaDataSource", "LakeflowConnectSource", "register_lakeflow_source"]
