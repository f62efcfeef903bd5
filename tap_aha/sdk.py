"""The one module that touches the Meltano Singer SDK's private and `@final` surface.

Everything else in tap_aha uses the SDK's public API and the hooks below, so an SDK upgrade has one place to
check (tests/test_layers.py fails if a private SDK name is used anywhere else). Each use, and why:

* `Stream._sync_records` (wrapped): the SDK has no hook around a stream's sync loop. Through it a refusal of
  an optional endpoint ends that stream or that parent (`on_refused`), and the prefetches of an aborted sync
  are dropped (`sync_finished`).
* `Stream._write_schema_message` (wrapped, and called): SCHEMA once per run (`schema_sent`), though a child
  syncs once per parent and tombstones go first; loaders flush on every SCHEMA.
* `Stream._write_record_message`: tombstones are written outside a stream's sync (`write_record`).
* `Stream._write_replication_key_signpost`, `Stream._write_starting_replication_value`: a bookmark capped at
  Aha!'s clock, a window held by a `max_ideas` run, the ideas' window known before their sync starts
  (`write_signpost`, `write_starting_value`). Only on the thread that drives the sync: a worker thread's
  write raises (`StateWriteFromWorker`), since the SDK's state is not thread-safe.
* `Stream._write_state_message` (called): a STATE in the middle of a stream's sync, after each window of a
  first sync (`write_state`); the SDK writes one only every so many records. The sync's thread only.
* `RESTStream._request`: one GET outside the stream's own listing (an idea's detail) through the same
  session, limiter and retries (`send`).
* `Stream._tap`: the tap a stream belongs to (`tap_of`), for the run's shared connection.
* `Tap.sync_all` (`@final`, wrapped): deletes are read and their tombstones written before the streams
  (`before_streams`), a first run's delete bookmark after them (`after_streams`), the run's read-ahead
  stopped however it ended (`run_finished`); the SDK has no such hooks.
* `Tap._streams`: the streams in the tap's order (`order_streams`), not the SDK's alphabetical one.
* `PluginBase._validate_config` (wrapped): our checks first, with one line naming the setting
  (`check_settings`).
* `PluginBase._setup_signal_handlers` (skipped where `handles_signals` is False): a tap embedded in a Spark
  driver must leave the host's SIGINT and SIGTERM alone.
* `singer_sdk.plugin_base._ConfigInput`: the type of `invoke`'s `config` (`ConfigInput`).
"""

from __future__ import annotations

import threading
import typing as t

from singer_sdk import Tap
from singer_sdk.streams import RESTStream

from tap_aha.errors import EndpointRefusedError

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context
    from singer_sdk.plugin_base import _ConfigInput as ConfigInput
    from singer_sdk.streams import Stream

__all__ = ["ConfigInput", "SdkStream", "SdkTap", "StateWriteFromWorker", "order_streams", "tap_of"]

WORKER_PREFIX = "tap-aha-"  # the names of the tap's own threads (prefetch workers, the listing producer)


class StateWriteFromWorker(RuntimeError):
    """An SDK state write from one of the tap's worker threads: a bug, never a user's problem."""


def _check_thread(what: str) -> None:
    name = threading.current_thread().name
    if name.startswith(WORKER_PREFIX):
        raise StateWriteFromWorker(
            f"{what} from worker thread {name!r}: state is written by the sync's thread."
        )


def tap_of(stream: Stream) -> Tap:
    """The tap a stream belongs to."""
    return stream._tap


def order_streams(tap: Tap, streams: dict[str, Stream], names: t.Sequence[str]) -> dict[str, Stream]:
    """The tap's `streams` in the order of `names`, kept by the tap (the SDK syncs in its dict's order)."""
    if list(streams) != list(names):
        tap._streams = streams = {name: streams[name] for name in names}
    return streams


class SdkStream(RESTStream[int]):
    """A REST stream with public hooks over the SDK's private ones."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """No SCHEMA message sent yet this run."""
        super().__init__(*args, **kwargs)
        self.schema_sent = False

    def skip_sync(self, context: Context | None) -> bool:
        """Whether this sync (of this parent) is skipped without a request."""
        return False

    def on_refused(self, exc: EndpointRefusedError, context: Context | None) -> None:
        """Aha! refused an optional endpoint during a sync: decide what that skips."""
        raise exc

    def sync_finished(self) -> None:
        """After a sync (of one parent), however it ended."""

    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> t.Generator[dict[str, t.Any], t.Any, t.Any]:
        """The SDK's sync loop, with `skip_sync`, `on_refused` and `sync_finished` around it."""
        if self.skip_sync(context):
            return
        try:
            yield from super()._sync_records(context, write_messages=write_messages)
        except EndpointRefusedError as exc:
            self.on_refused(exc, context)
        finally:
            self.sync_finished()

    def _write_schema_message(self) -> None:
        """SCHEMA once per run."""
        if not self.schema_sent:
            super()._write_schema_message()
            self.schema_sent = True

    def write_schema(self) -> None:
        """The stream's SCHEMA message, unless it was sent this run."""
        self._write_schema_message()

    def write_record(self, record: dict[str, t.Any]) -> None:
        """A RECORD message outside the stream's sync (a tombstone)."""
        self._write_record_message(record)

    def write_signpost(self, value: str, context: Context | None = None) -> None:
        """The bookmark's cap in the state (the sync's thread only)."""
        _check_thread("A bookmark signpost write")
        self._write_replication_key_signpost(context, value)

    def write_starting_value(self, context: Context | None = None) -> None:
        """The bookmark a sync starts from, in the state, as the SDK writes it when the sync starts."""
        _check_thread("A starting bookmark write")
        self._write_starting_replication_value(context)

    def write_state(self) -> None:
        """A STATE message with the state as it is now (the sync's thread only)."""
        _check_thread("A STATE write")
        self.state_manager.is_flushed = False
        self._write_state_message()

    def send(self, prepared: requests.PreparedRequest) -> requests.Response:
        """One prepared request through the SDK's session (no retries: `request_decorator` adds them)."""
        return self._request(prepared, None)


class SdkTap(Tap):
    """A tap with hooks before and after its streams sync, and our settings checks first."""

    handles_signals: t.ClassVar[bool] = True  # False: a host process (Spark) keeps SIGINT and SIGTERM

    def before_streams(self) -> None:
        """Before the first stream syncs."""

    def after_streams(self) -> None:
        """After the last stream synced."""

    def run_finished(self) -> None:
        """After `sync_all`, however it ended (an error, an abort)."""

    def check_settings(self) -> None:
        """Validate the config our way first (raise a TapAhaError naming the setting)."""

    def sync_all(self) -> None:  # type: ignore[misc]  # final in the SDK, which has no hook around the streams
        """`before_streams`, the SDK's sync of every stream, `after_streams`; `run_finished` in any case."""
        try:
            self.before_streams()
            super().sync_all()
            self.after_streams()
        finally:
            self.run_finished()

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """`check_settings` first, then the SDK's JSON-schema validation."""
        if raise_errors:
            self.check_settings()
        return super()._validate_config(raise_errors=raise_errors)

    def _setup_signal_handlers(self) -> None:
        """The SDK's handlers (a STATE line, then exit) only where the tap owns the process."""
        if self.handles_signals:
            super()._setup_signal_handlers()
