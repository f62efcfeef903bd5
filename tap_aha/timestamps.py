"""Timestamps in the one form Aha! writes them (`2019-01-01T00:00:00.000Z`).

Bookmarks are compared as strings by the SDK, so every value the tap stores must share this form.
"""

from __future__ import annotations

import datetime as dt

EPOCH = "1970-01-01T00:00:00.000Z"  # the earliest bookmark, in that form


def parse_timestamp(value: str) -> dt.datetime:
    """Parse an ISO-8601 date or date-time; naive values are taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def format_timestamp(moment: dt.datetime) -> str:
    """Format as Aha! does, truncating to the millisecond so the value never moves later."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def later_start(bookmark: str | None, start_date: str | None) -> str | None:
    """Where a read starts: the later of a bookmark and `start_date`, both in Aha!'s form (None: all)."""
    return max((value for value in (bookmark, start_date) if value is not None), default=None)


def normalize_timestamp(value: str) -> str:
    """Any ISO-8601 text in Aha!'s form."""
    return format_timestamp(parse_timestamp(value))


def is_timestamp(value: object) -> bool:
    """Whether a value read from outside (a state file) is an ISO-8601 date or date-time."""
    if not isinstance(value, str):
        return False
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True
