"""The Lakeflow connector's options: which are the tap's settings, which a table's, which the framework's.

Databricks passes one flat map of strings per table (connection options, table options and the framework's
own); the connector (tap_aha.lakeflow) splits it here, so a mistyped option fails with its name.
"""

from __future__ import annotations

import dataclasses
import typing as t

from tap_aha.errors import SettingsError
from tap_aha.settings import SETTINGS, AhaSettings, optional_integer

if t.TYPE_CHECKING:
    from collections.abc import Mapping

# The options the connector reads: the tap's own settings (connector_spec.yaml declares exactly these).
CONNECTION_OPTIONS: tuple[str, ...] = tuple(setting.name for setting in SETTINGS)
TABLE_OPTIONS: tuple[str, ...] = (
    "max_records_per_batch",
    "poll_interval_seconds",
    "snapshot_interval_seconds",
)
# A continuous query may ask for its next batch every few milliseconds: a `cdc` table (and its delete flow)
# that has caught up lists Aha! again at most once a minute, one request each when nothing changed; a
# `snapshot` table, read whole, at most once an hour. An idle pipeline of every table then spends about 14
# of the account's 300 requests a minute (docs/operations-failures.md; `python -m bench.idle` measures it).
DEFAULT_POLL_INTERVAL = 60
DEFAULT_SNAPSHOT_INTERVAL = 3600
# Set by the Lakeflow framework or Spark rather than the user; accepted and ignored (keys are lower-cased).
FRAMEWORK_OPTIONS = frozenset(
    {
        "tablename", "tablenamelist", "tableconfigs", "isdeleteflow", "externaloptionsallowlist",
        "path", "scd_type", "primary_keys", "sequence_by",
    }
)  # fmt: skip


def split_options(options: Mapping[str, t.Any]) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """Tap settings and table options; framework options dropped; anything else rejected by name."""
    settings: dict[str, t.Any] = {}
    table: dict[str, t.Any] = {}
    unknown: list[str] = []
    for key, value in options.items():
        name = str(key).lower()
        if value is None or name in FRAMEWORK_OPTIONS or "." in name:  # e.g. databricks.connection
            continue
        if name in CONNECTION_OPTIONS:
            settings[name] = value
        elif name in TABLE_OPTIONS:
            table[name] = value
        else:
            unknown.append(str(key))
    if unknown:
        known = ", ".join((*CONNECTION_OPTIONS, *TABLE_OPTIONS))
        raise SettingsError(f"Unknown option(s) {', '.join(sorted(unknown))}; known options: {known}.")
    return settings, table


def batch_limit(table: Mapping[str, t.Any], default: int | None) -> int | None:
    """`max_records_per_batch` of a table's options, else the connection's."""
    value = optional_integer(table, "max_records_per_batch", minimum=1)
    return default if value is None else value


def interval(table: Mapping[str, t.Any], name: str, default: int) -> int:
    """A table's interval option in seconds, else the connection's (0: none)."""
    value = optional_integer(table, name, minimum=0)
    return default if value is None else value


def tap_config(settings: AhaSettings) -> dict[str, t.Any]:
    """The validated settings as the tap's config, less max_ideas.

    The connector applies max_ideas itself, to ideas in offset order; the tap would stop in listing order.
    """
    values = dataclasses.asdict(settings)
    values.pop("max_ideas")
    return {name: value for name, value in values.items() if value is not None}
