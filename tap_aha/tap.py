"""The tap class: its settings, its streams and its command line."""

from __future__ import annotations

import contextlib
import sys
import typing as t
from functools import cached_property

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError

from tap_aha.client import AhaConnection
from tap_aha.companions import COMPANION_TYPES
from tap_aha.deletes import DELETES_BOOKMARK, capture_deletes
from tap_aha.errors import TapAhaError
from tap_aha.inputs import read_catalog, read_state
from tap_aha.roadmap import ROADMAP_TYPES
from tap_aha.settings import AHA_MAX_PAGE_SIZE, AhaSettings
from tap_aha.streams import IdeaCommentsStream, IdeaPortalCommentsStream, IdeaProxyVotesStream, IdeasStream

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator

    import click
    from singer_sdk.plugin_base import _ConfigInput
    from singer_sdk.streams import Stream

    from tap_aha.client import AhaStream

STREAM_TYPES: tuple[type[AhaStream], ...] = (
    IdeasStream,
    IdeaProxyVotesStream,
    IdeaCommentsStream,
    IdeaPortalCommentsStream,
    *COMPANION_TYPES,
    *ROADMAP_TYPES,
)
STREAM_NAMES: tuple[str, ...] = tuple(vars(stream_type)["name"] for stream_type in STREAM_TYPES)
SYNC_ORDER: tuple[str, ...] = ("idea_votes", *(name for name in STREAM_NAMES if name != "idea_votes"))
# Each stream's replication key, as a catalog must keep it (None: a full-table stream).
REPLICATION_KEYS: dict[str, str | None] = {
    vars(stream_type)["name"]: vars(stream_type)["replication_key"] for stream_type in STREAM_TYPES
}


class TapAha(Tap):
    """Aha! ideas with their votes and comments, what they point at, and the roadmap they lead to."""

    name = "tap-aha"
    message_writer_class = MsgSpecWriter  # several times faster than the default JSON writer

    config_jsonschema = th.PropertiesList(
        th.Property("api_key", th.StringType, required=True, secret=True,
                    description="Aha! API key or OAuth token (sent as a Bearer token)."),
        th.Property("subdomain", th.StringType,
                    description="Account name: 'acme', 'acme.aha.io', 'https://acme.aha.io/' or a "
                    "regional 'acme.euw4.aha.io'. Required unless api_url is set."),
        th.Property("api_url", th.StringType,
                    description="Override of https://{subdomain}.aha.io/api/v1 (a proxy, a test "
                    "server); plain http only for loopback hosts."),
        th.Property("start_date", th.DateTimeType,
                    description="Earliest updated_at read on the first run (ISO-8601)."),
        th.Property("ideas_workflow_status", th.StringType,
                    description="Only ideas in this workflow status (id or name)."),
        th.Property("ideas_q", th.StringType, description="Only ideas whose name matches this search."),
        th.Property("max_ideas", th.IntegerType,
                    description="Stop after this many ideas (trials); such a run keeps the old bookmark."),
        th.Property("page_size", th.IntegerType, default=AHA_MAX_PAGE_SIZE,
                    description="Records per page, 1 to 200 (the API maximum)."),
        th.Property("requests_per_minute", th.IntegerType, default=AhaSettings.requests_per_minute,
                    description="Client-side limit; Aha! allows 300 a minute per account."),
        th.Property("requests_per_second", th.IntegerType, default=AhaSettings.requests_per_second,
                    description="Client-side limit; Aha! allows 20 a second per account."),
        th.Property("request_timeout", th.NumberType, default=AhaSettings.request_timeout,
                    description="Seconds to wait for one response before retrying."),
        th.Property("max_retries", th.IntegerType, default=AhaSettings.max_retries,
                    description="Retries of a failed request (5xx, timeout, broken body); 429s "
                    "are waited out under max_rate_limit_wait instead."),
        th.Property("max_rate_limit_wait", th.NumberType, default=AhaSettings.max_rate_limit_wait,
                    description="Seconds one request keeps waiting out HTTP 429 (rate limit) "
                    "answers, honouring Retry-After, before the run stops (default 900)."),
        th.Property("parallel_requests", th.IntegerType, default=AhaSettings.parallel_requests,
                    description="Requests in flight at once for details, votes and comments (1-16); "
                    "the rate limits still apply to all of them."),
        th.Property("include_spam_portal_comments", th.BooleanType, default=False,
                    description="Also read portal comments Aha! marked as spam."),
        th.Property("capture_deletes", th.BooleanType, default=AhaSettings.capture_deletes,
                    description="Send a tombstone (_sdc_deleted_at) for each record deleted in Aha!, "
                    "read from its audit log."),
        th.Property("user_agent", th.StringType, default=AhaSettings.user_agent,
                    description="User-Agent header sent to Aha!."),
    ).to_dict()  # fmt: skip

    def discover_streams(self) -> list[AhaStream]:
        """Every stream; the constructor makes no request (the SDK's tests rely on that)."""
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    @property
    def streams(self) -> dict[str, Stream]:
        """The SDK's streams in SYNC_ORDER, not its alphabetical one.

        `idea_votes` syncs before `ideas`, so that its listing also gives the ideas their proxy votes; then
        `ideas`, so a key that cannot read ideas stops the run before the other streams.
        """
        streams = super().streams
        if list(streams) != list(SYNC_ORDER):
            self._streams = streams = {name: streams[name] for name in SYNC_ORDER}
        return streams

    @cached_property
    def settings(self) -> AhaSettings:
        """The config, validated once (raises SettingsError naming the first bad setting)."""
        return AhaSettings.from_config(self.config)

    @cached_property
    def connection(self) -> AhaConnection:
        """Settings, HTTP session and rate limiter shared by every stream of this run."""
        return AhaConnection(self.settings)

    def sync_all(self) -> None:  # type: ignore[misc]  # final in the SDK, which has no hook before the streams
        """Tombstones first, then the streams: a record restored after its delete arrives after it."""
        capture_deletes(self)
        super().sync_all()

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Our checks first: they name the setting and never echo a value (the key included)."""
        if raise_errors:
            _ = self.settings
        return super()._validate_config(raise_errors=raise_errors)

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
    ) -> None:
        """Run a sync; inputs are checked first and a user's mistake ends in one line and exit 1."""
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        cls.print_version(print_fn=cls.logger.info)
        with user_errors(cls.logger):
            tap = cls(
                config=config.config if config else None,
                state=None if state is None else read_state(state, (*STREAM_NAMES, DELETES_BOOKMARK)),
                catalog=None if catalog is None else read_catalog(catalog, REPLICATION_KEYS),
                parse_env_config=config.parse_env if config else False,
                validate_config=True,
            )
            tap.sync_all()

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`, with the same one-line errors as a sync."""
        with user_errors(cls.logger):
            super().cb_test(ctx, param, value)


@contextlib.contextmanager
def user_errors(logger: logging.Logger) -> Iterator[None]:
    """Turn a user-facing error into one log line and exit status 1 (no traceback, no secret)."""
    try:
        yield
    except TapAhaError as exc:
        logger.error("%s", exc)  # noqa: TRY400 - the message is the whole story
        sys.exit(1)
    except ConfigValidationError as exc:
        problems = "; ".join(exc.errors) or str(exc)
        logger.error("Invalid settings: %s", problems)  # noqa: TRY400
        sys.exit(1)
