"""The tap class: its settings, its streams and its command line."""

from __future__ import annotations

import contextlib
import sys
import typing as t
from functools import cached_property

import click
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError

from tap_aha.client import AhaConnection, AhaStream
from tap_aha.companions import COMPANION_TYPES, IdeaVotesStream
from tap_aha.deletes import DELETES_BOOKMARK, capture_deletes, deletes_ahead, start_deletes_bookmark
from tap_aha.doctor import run_doctor
from tap_aha.errors import TapAhaError
from tap_aha.inputs import read_catalog, read_state
from tap_aha.roadmap import ROADMAP_TYPES
from tap_aha.sdk import SdkTap, order_streams
from tap_aha.settings import SETTINGS, AhaSettings
from tap_aha.streams import IdeaCommentsStream, IdeaPortalCommentsStream, IdeaProxyVotesStream, IdeasStream

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator

    from singer_sdk.streams import Stream

    from tap_aha.listings import Walk
    from tap_aha.sdk import ConfigInput

_TYPES: dict[str, type[th.JSONTypeHelper[t.Any]]] = {
    "string": th.StringType, "date-time": th.DateTimeType, "integer": th.IntegerType, "number": th.NumberType,
    "boolean": th.BooleanType,
}  # fmt: skip
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


class TapAha(SdkTap):
    """Aha! ideas with their votes and comments, what they point at, and the roadmap they lead to."""

    name = "tap-aha"
    message_writer_class = MsgSpecWriter  # several times faster than the default JSON writer
    _first_run = False  # this run found no delete bookmark (before_streams)

    config_jsonschema = th.PropertiesList(
        *(
            th.Property(setting.name, _TYPES[setting.kind], required=setting.required, secret=setting.secret,
                        default=setting.default, description=setting.description)
            for setting in SETTINGS
        )
    ).to_dict()  # fmt: skip

    def discover_streams(self) -> list[AhaStream]:
        """Every stream; the constructor makes no request (the SDK's tests rely on that)."""
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    @property
    def streams(self) -> dict[str, Stream]:
        """The SDK's streams in SYNC_ORDER, not its alphabetical one.

        `idea_votes` syncs before `ideas`, so that its listing also gives the ideas their proxy votes (else
        each lists them: one listing more, the same records); then `ideas`, so a key that cannot read ideas
        stops the run before the other streams.
        """
        return order_streams(self, super().streams, SYNC_ORDER)

    @cached_property
    def settings(self) -> AhaSettings:
        """The config, validated once (raises SettingsError naming the first bad setting)."""
        return AhaSettings.from_config(self.config)

    @cached_property
    def connection(self) -> AhaConnection:
        """Settings, HTTP session and rate limiter shared by every stream of this run."""
        return AhaConnection(self.settings)

    def before_streams(self) -> None:
        """The run's vote plan; every listing the run will walk started at once; then the tombstones.

        With `idea_proxy_votes` selected, the proxy votes of the ideas' window are wanted from the run's one
        vote listing (`RunVotes`). The listings' first pages are read ahead (tap_aha.listings): the streams
        still sync one after another and take their pages as they come to them. Tombstones go before the
        streams: a record restored after its delete arrives after it.
        """
        proxy, ideas = self.streams[IdeaProxyVotesStream.name], self.streams[IdeasStream.name]
        if proxy.selected and isinstance(ideas, IdeasStream):
            by_idea_votes = self.streams[IdeaVotesStream.name].selected
            self.connection.votes.want(ideas.window_start(), by_idea_votes=by_idea_votes)
        self.connection.listings.start(self.walks_ahead())
        self._first_run = capture_deletes(self)

    def after_streams(self) -> None:
        """A first run's delete bookmark, on Aha!'s clock now that it answered."""
        if self._first_run:
            start_deletes_bookmark(self)

    def run_finished(self) -> None:
        """However the run ended: the pages read ahead are forgotten and their workers give up."""
        self.connection.listings.stop()

    def walks_ahead(self) -> list[Walk]:
        """The walks the selected streams declare, in the order the run reads them (deletes first)."""
        walks = deletes_ahead(self)
        for stream in self.streams.values():
            if isinstance(stream, AhaStream):
                walks += stream.walks_ahead()
        return walks

    def check_settings(self) -> None:
        """Our checks first: they name the setting and never echo a value (the key included)."""
        _ = self.settings

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: ConfigInput | None = None,
        state: t.IO[str] | None = None,
        catalog: t.IO[str] | None = None,
        doctor: bool = False,
    ) -> None:
        """Run a sync or `--doctor`; inputs are checked first, a user's mistake ends in one line, exit 1."""
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
            if doctor:
                sys.exit(run_doctor(tap, about_format))
            tap.sync_all()

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command plus `--doctor` (`--format json` for a JSON report)."""
        command = super().get_singer_command()
        command.params.append(
            click.Option(
                ["--doctor"],
                is_flag=True,
                help="Check what the selected streams assume about this Aha! account (read-only, at most "
                "60 requests) and exit; --format json for JSON.",
            )
        )
        return command

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
