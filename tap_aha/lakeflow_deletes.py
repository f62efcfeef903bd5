"""The rows of the Lakeflow delete flow: a table's deletions from Aha!'s audit log (tap_aha.deletes).

`read_table_deletes` reads them as read_table reads records (tap_aha.lakeflow): offsets
`{"cursor": <deleted at>, "id": <record id>}` over deletions in (deleted at, id) order, so a batch can stop
anywhere and the next resume exactly, in passes that each list the audit log once, up to their cap.
"""

from __future__ import annotations

import logging
import typing as t

from tap_aha.deletes import read_deletions
from tap_aha.errors import EndpointRefusedError
from tap_aha.lakeflow_offsets import Key, Row

if t.TYPE_CHECKING:
    from tap_aha.client import AhaStream
    from tap_aha.tap import TapAha

logger = logging.getLogger(__name__)


def deleted_rows(
    tap: TapAha, stream: AhaStream, cursor: str, since: str | None, until: str
) -> list[tuple[Key, Row]]:
    """The table's deletions audited in [since, until): rows (the key, `idea_id`, `cursor` = when deleted).

    In (deleted at, id) order, each with that key. None, with a warning, where Aha! refuses the audit log.
    """
    try:
        deletions, _ = read_deletions(tap, [stream], since, until)
    except EndpointRefusedError as exc:
        logger.warning(
            "Aha! refused GET /audits (%s): no deletes for %s; set 'capture_deletes' to false to read it "
            "as cdc without deletes.",
            exc, stream.name,
        )  # fmt: skip
        return []
    return [
        ((d.deleted_at, d.id), {"id": d.id, "idea_id": d.idea_id, cursor: d.deleted_at}) for d in deletions
    ]
