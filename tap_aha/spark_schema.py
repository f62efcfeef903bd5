"""A stream's JSON schema compiled to Spark: the column types and the conversion of records to rows.

The Lakeflow connector reads records as JSON-like dicts; this module says what Spark holds for each of them.
Integers are LongType (never IntegerType), nested objects structs, date-times TimestampType; a scalar sent as
a number one time and a string another (an id) is kept as text, and any JSON value (a custom field's value) as
JSON text, so nothing is lost. pyspark is optional: only `Column.spark_type` imports it.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass

from tap_aha.deletes import DELETED_AT
from tap_aha.timestamps import parse_timestamp

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from pyspark.sql.types import DataType

    from tap_aha.client import AhaStream

STRING, TEXT, JSON_TEXT, LONG, DOUBLE, BOOLEAN, TIMESTAMP, STRUCT, ARRAY = (
    "string", "text", "json", "long", "double", "boolean", "timestamp", "struct", "array",
)  # fmt: skip


@dataclass(frozen=True)
class Column:
    """A JSON-schema node compiled to what Spark holds.

    `string`/`text`/`json` are all StringType: `text` is a scalar of mixed type (an id sent as integer or
    string) kept in its string form; `json` is any JSON value (an object without properties, a custom
    field's value) kept as JSON text, so it stays lossless and `from_json`/`parse_json` can read it.
    """

    kind: str
    fields: tuple[tuple[str, Column], ...] = ()
    item: Column | None = None

    def record(self, value: t.Any) -> dict[str, t.Any]:
        """A top-level record shaped for the table: its columns only, each converted (see `json_value`)."""
        return {name: column.json_value(value.get(name), name) for name, column in self.fields}

    def json_value(self, value: t.Any, path: str) -> t.Any:
        """JSON-like value the Lakeflow framework converts to this column's Spark type as it is."""
        if value is None:
            return None
        kind = self.kind
        if kind == STRUCT:
            if not isinstance(value, dict):
                raise _mismatch(path, "an object", value)
            return {
                name: column.json_value(value.get(name), f"{path}.{name}") for name, column in self.fields
            }
        if kind == ARRAY:
            if not isinstance(value, list):
                raise _mismatch(path, "an array", value)
            item = self.item or Column(JSON_TEXT)
            return [item.json_value(v, f"{path}[]") for v in value]
        if kind == JSON_TEXT:
            return _json_text(value)
        if kind in (STRING, TEXT):
            return value if isinstance(value, str) else _json_text(value)
        return _scalar(kind, value, path)

    def spark_value(self, value: t.Any) -> t.Any:
        """A value from `json_value` as a Spark row holds it: structs as tuples, timestamps as datetimes."""
        if value is None:
            return None
        if self.kind == STRUCT:
            return tuple(column.spark_value(value.get(name)) for name, column in self.fields)
        if self.kind == ARRAY:
            item = self.item or Column(JSON_TEXT)
            return [item.spark_value(v) for v in value]
        if self.kind == TIMESTAMP:
            return parse_timestamp(value)
        return value

    def spark_row(self, record: Mapping[str, t.Any]) -> tuple[t.Any, ...]:
        """A record from `record` as a Spark row (a tuple in column order)."""
        return tuple(column.spark_value(record.get(name)) for name, column in self.fields)

    def spark_type(self) -> DataType:
        """The Spark type: integers are LongType, nested objects structs, mixed values strings."""
        try:
            from pyspark.sql import types as st  # noqa: PLC0415 - pyspark is an optional extra
        except ImportError:
            raise ImportError("Spark schemas need pyspark: pip install 'tap-aha[lakeflow]'.") from None
        simple: dict[str, DataType] = {
            STRING: st.StringType(), TEXT: st.StringType(), JSON_TEXT: st.StringType(),
            LONG: st.LongType(), DOUBLE: st.DoubleType(), BOOLEAN: st.BooleanType(),
            TIMESTAMP: st.TimestampType(),
        }  # fmt: skip
        if self.kind == STRUCT:
            return st.StructType(
                [st.StructField(name, c.spark_type(), nullable=True) for name, c in self.fields]
            )
        if self.kind == ARRAY:
            return st.ArrayType((self.item or Column(JSON_TEXT)).spark_type(), containsNull=True)
        return simple[self.kind]


def compile_schema(node: Mapping[str, t.Any]) -> Column:
    """Compile a JSON schema; anything it cannot type precisely becomes JSON text rather than an error."""
    if any(key in node for key in ("anyOf", "oneOf", "allOf")):
        return Column(JSON_TEXT)
    raw = node.get("type")
    types = [raw] if isinstance(raw, str) else list(raw or [])
    kinds = list(dict.fromkeys(kind for kind in types if kind != "null"))
    if len(kinds) != 1:
        return Column(JSON_TEXT if not kinds or {"object", "array"} & set(kinds) else TEXT)
    kind = kinds[0]
    if kind == "object" and node.get("properties"):
        return Column(STRUCT, tuple((name, compile_schema(sub)) for name, sub in node["properties"].items()))
    if kind == "array":
        items = node.get("items")
        return Column(ARRAY, item=compile_schema(items) if isinstance(items, dict) else Column(JSON_TEXT))
    if kind == "string" and node.get("format") == "date-time":
        return Column(TIMESTAMP)
    return Column(
        {"string": STRING, "integer": LONG, "number": DOUBLE, "boolean": BOOLEAN}.get(kind, JSON_TEXT)
    )


_COLUMNS: dict[str, Column] = {}


def table_columns(stream: AhaStream) -> Column:
    """A stream's columns, compiled once from its own JSON schema (the one its SCHEMA message carries).

    Singer's delete marker `_sdc_deleted_at` is left out: Lakeflow reads deletes through its delete flow.
    A stream's `listing_cursor` is added: the connector fills it.
    """
    if stream.name not in _COLUMNS:
        properties = {name: node for name, node in stream.schema["properties"].items() if name != DELETED_AT}
        if stream.listing_cursor:
            properties[stream.listing_cursor] = {"type": ["string", "null"], "format": "date-time"}
        _COLUMNS[stream.name] = compile_schema({**stream.schema, "properties": properties})
    return _COLUMNS[stream.name]


def _json_text(value: t.Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _scalar(kind: str, value: t.Any, path: str) -> t.Any:
    if kind == TIMESTAMP:
        if not isinstance(value, str):
            raise _mismatch(path, "an ISO-8601 timestamp", value)
        if not value.strip():
            return None
        try:
            parse_timestamp(value)
        except ValueError:
            raise _mismatch(path, "an ISO-8601 timestamp", value) from None
        return value
    if isinstance(value, bool) != (kind == BOOLEAN):
        if kind == BOOLEAN and isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        raise _mismatch(path, kind, value)
    try:
        if kind == LONG and (isinstance(value, int) or float(value).is_integer()):
            return int(value) if isinstance(value, int) else int(float(value))
        if kind == DOUBLE:
            return float(value)
    except (TypeError, ValueError):
        pass
    if kind == BOOLEAN:
        return value
    raise _mismatch(path, kind, value)


def _mismatch(path: str, expected: str, value: t.Any) -> ValueError:
    return ValueError(f"Column {path!r}: expected {expected}, got {type(value).__name__}.")


__all__ = ["Column", "compile_schema", "table_columns"]
