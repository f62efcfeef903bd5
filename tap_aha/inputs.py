"""Checks on the --state and --catalog files, so a bad one stops the run before any request."""

from __future__ import annotations

import json
import typing as t

from tap_aha.errors import CatalogError, StateError
from tap_aha.first_sync import MARKER, check_marker
from tap_aha.timestamps import is_timestamp


def _read_json(source: t.IO[str], what: str, error: type[Exception]) -> t.Any:
    name = getattr(source, "name", what)
    try:
        return json.loads(source.read())
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"Cannot read the {what} file {name}: {exc.__class__.__name__}.") from None
    except json.JSONDecodeError as exc:
        raise error(
            f"The {what} file {name} is not valid JSON (line {exc.lineno}, column {exc.colno})."
        ) from None


def read_state(source: t.IO[str], stream_names: t.Collection[str]) -> dict[str, t.Any]:
    """Singer state: `{"bookmarks": {stream: {...}}}`; `meltano state get` output is unwrapped."""
    state = _read_json(source, "state", StateError)
    if isinstance(state, dict) and set(state) == {"singer_state"}:
        state = state["singer_state"]
    if not isinstance(state, dict):
        raise StateError('The state file must hold a JSON object such as {"bookmarks": {...}}.')
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        raise StateError("The state file's 'bookmarks' must be a JSON object keyed by stream name.")
    for stream, bookmark in bookmarks.items():
        if stream not in stream_names:
            continue
        if not isinstance(bookmark, dict):
            raise StateError(f"The state bookmark of stream '{stream}' must be a JSON object.")
        if stream == "ideas" and MARKER in bookmark:
            check_marker(bookmark[MARKER])
        value = bookmark.get("replication_key_value")
        if value is None:
            continue
        if not is_timestamp(value):
            raise StateError(
                f"The state bookmark of stream '{stream}' has a replication_key_value that is not "
                "an ISO-8601 timestamp."
            )
    return state


def read_catalog(source: t.IO[str], replication_keys: t.Mapping[str, str | None]) -> dict[str, t.Any]:
    """A Singer catalog: `{"streams": [{"tap_stream_id", "schema", "metadata"}, ...]}`.

    Selection, properties and the replication method may be changed; keys may not: the tap reads by
    `updated_at` and merges by `id`, whatever a catalog says.
    """
    stream_names = replication_keys.keys()
    catalog = _read_json(source, "catalog", CatalogError)
    if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
        raise CatalogError("The catalog file must hold a JSON object with a 'streams' list.")
    for index, entry in enumerate(catalog["streams"]):
        where = f"catalog entry {index}"
        if not isinstance(entry, dict):
            raise CatalogError(f"The {where} is not a JSON object.")
        stream = entry.get("tap_stream_id")
        if not isinstance(stream, str):
            raise CatalogError(f"The {where} has no 'tap_stream_id' string.")
        if stream not in stream_names:
            raise CatalogError(
                f"The catalog names stream '{stream}', which tap-aha does not have "
                f"({', '.join(sorted(stream_names))})."
            )
        if not isinstance(entry.get("schema"), dict):
            raise CatalogError(f"The catalog entry for '{stream}' has no 'schema' object.")
        metadata = entry.get("metadata", [])
        if not isinstance(metadata, list) or not all(
            isinstance(item, dict)
            and isinstance(item.get("breadcrumb"), list)
            and isinstance(item.get("metadata"), dict)
            for item in metadata
        ):
            raise CatalogError(
                f"The catalog entry for '{stream}' has 'metadata' that is not a list of "
                "{breadcrumb, metadata} objects."
            )
        top: dict[str, t.Any] = next((m["metadata"] for m in metadata if m["breadcrumb"] == []), {})
        _check_keys(stream, replication_keys[stream], entry, top)
    return catalog


def _check_keys(
    stream: str, replication_key: str | None, entry: dict[str, t.Any], top: dict[str, t.Any]
) -> None:
    for value in (entry.get("replication_key"), top.get("replication-key")):
        if value is not None and value != replication_key:
            raise CatalogError(
                f"The catalog gives stream '{stream}' the replication key {value!r}; it can only be "
                f"{replication_key!r}."
            )
    for value in (entry.get("key_properties"), top.get("table-key-properties")):
        if value is not None and value != ["id"]:
            raise CatalogError(
                f"The catalog gives stream '{stream}' key properties {value!r}; they are ['id']."
            )
