"""The fake Aha!'s answers and what every listing shares: ``page``/``per_page``, the list envelope with its
``pagination``, the ``updated_since``-style filters and ``fields=``.

Pages are computed per request from the current data, so writes during a walk shift page boundaries, and an
empty result has ``total_pages`` 0, as on the real service.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tests.fake_formats import JSON, dumps, error, micros, parse_ts, select_fields

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 200


@dataclass
class Response:
    """What the handler must write; ``mode`` covers the faults that break HTTP itself."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    mode: str = "normal"  # "normal" | "truncated" | "reset"


class BadRequest(Exception):
    """Raised for unparseable filter values so the request is answered with 400."""


def not_found() -> Response:
    """The answer to an unknown path or record, as on the real service."""
    return Response(404, error("Record not found"))


def refused(status: int) -> Response:
    """The answer to an endpoint the account's plan or permissions refuse."""
    return Response(status, error("Forbidden"))


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, dumps(obj).encode())


def paging(query: dict[str, str]) -> tuple[int, int]:
    """page 1-indexed (bad or < 1 means 1); per_page default 30, clamped to 1..200."""
    try:
        page = max(int(query.get("page", "1")), 1)
    except ValueError:
        page = 1
    try:
        per_page = int(query.get("per_page", str(DEFAULT_PER_PAGE)))
    except ValueError:
        per_page = DEFAULT_PER_PAGE
    if per_page < 1:
        per_page = DEFAULT_PER_PAGE
    return page, min(per_page, MAX_PER_PAGE)


def envelope(root: str, items: list[str], total: int, page: int, per_page: int) -> Response:
    """Build the list body from pre-serialised items (fast path for big pages)."""
    pagination = {
        "total_records": total,
        "total_pages": math.ceil(total / per_page),
        "current_page": page,
    }
    body = f'{{"{root}":[{",".join(items)}],"pagination":{dumps(pagination)}}}'
    return Response(200, body.encode())


def page_of(
    root: str, records: list[JSON], query: dict[str, str], fields: list[str] | None = None
) -> Response:
    """The requested page of ``records`` (each cut to ``fields`` if given) under ``root``."""
    page, per_page = paging(query)
    chunk = records[(page - 1) * per_page : page * per_page]
    items = [dumps(r if fields is None else select_fields(r, fields, r)) for r in chunk]
    return envelope(root, items, len(records), page, per_page)


def time_filter(query: dict[str, str], name: str) -> int | None:
    """A timestamp filter (``updated_since``, ``created_before``...) in microseconds; 400 if unparseable."""
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return micros(parse_ts(value))
    except ValueError:
        raise BadRequest(f"Invalid {name}: {value!r}") from None


def fields_of(query: dict[str, str]) -> list[str] | None:
    """The names ``fields=`` asks for, or None when it names none."""
    raw = query.get("fields")
    if not raw:
        return None
    names = [f.strip() for f in raw.split(",") if f.strip()]
    return names or None


def after(changed: int, since: int | None, inclusive: bool) -> bool:
    """Whether a record changed at ``changed`` passes ``updated_since`` (inclusive or not, as configured)."""
    if since is None:
        return True
    return changed > since or (inclusive and changed == since)
