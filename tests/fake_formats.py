"""Aha!'s wire forms as the fake writes them: hosts, timestamps, compact JSON, error bodies, ``fields=``.

The bottom of the fake (see ``tests/fake_aha.py``): every other part of it imports these, and this imports
none of them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

JSON = dict[str, Any]

API_PREFIX = "/api/v1"
HOST = "https://fakeco.aha.io"
PORTAL_HOST = "https://fakeco.ideas.aha.io"
TRUE_VALUES = frozenset({"true", "1", "t", "yes", "on"})  # what a boolean query parameter accepts
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fmt_ts(dt: datetime) -> str:
    """Format like Aha! does (milliseconds, ``Z``), because bookmarks compare these strings."""
    dt = dt.astimezone(UTC) if dt.tzinfo else dt
    return dt.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_ts(value: str) -> datetime:
    """Parse the ISO-8601 forms clients send; a '+' lost to form-decoding is restored."""
    text = value.strip()
    if len(text) > 19 and text[-6] == " " and text[-3] == ":":
        text = text[:-6] + "+" + text[-5:]
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def micros(dt: datetime) -> int:
    """Exact integer microseconds, so inclusive/exclusive comparisons have no float error."""
    return (dt - _EPOCH) // timedelta(microseconds=1)


def ms(dt: datetime) -> datetime:
    """Truncate to milliseconds so stored datetimes equal what the JSON says."""
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def error(message: str) -> bytes:
    """Aha!-style error body (clients must key off the status, but it should look real)."""
    return json.dumps({"errors": [{"message": message}]}).encode()


def html(title: str) -> bytes:
    """An HTML page as a proxy or maintenance screen would return instead of JSON."""
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head>"
        f"<body><center><h1>{title}</h1></center><hr><center>nginx</center></body></html>"
    ).encode()


def dumps(obj: Any) -> str:
    """Compact UTF-8 JSON like Rails emits (non-ASCII not escaped)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def copy_json(obj: Any) -> Any:
    """Deep copy via JSON: faster than copy.deepcopy and proves the data is JSON-clean."""
    return json.loads(json.dumps(obj))


def flip(value: Any) -> Any:
    """Swap an id between int and str to mimic the real service's nested id type drift."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def select_fields(record: JSON, fields: list[str], default: JSON) -> JSON:
    """Apply Aha!'s ``fields``: ``*,a,b`` is the default set plus a, b; ``a,b`` is id plus a, b."""
    if "*" in fields:
        out = dict(default)
        for name in fields:
            if name != "*" and name in record and name not in out:
                out[name] = record[name]
        return out
    out = {"id": record["id"]}
    for name in fields:
        if name in record:
            out[name] = record[name]
    return out
