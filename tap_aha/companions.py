"""The records ideas point at, read account-wide: votes, organizations, idea users, portals, workspaces.

The idea categories of each workspace too.

Each is one paged listing (about one request per 200 records, never one per idea), read with the same
drift-safe walk, limiter and retries as the ideas. The account's plan or the key's role may refuse any of
them, so each says `optional_endpoint = True`: such a stream is skipped with one warning and the run goes on
(a workspace's categories: that workspace alone). A listing that does not say so fails the run on a 404, so
a mistyped path fails the tests (tests/test_companions.py runs every stream and expects no refusal).
"""

from __future__ import annotations

import typing as t

from singer_sdk import StreamSchema

from tap_aha.client import ChildStream, ListingStream
from tap_aha.errors import EndpointRefusedError
from tap_aha.streams import SCHEMAS
from tap_aha.timestamps import EPOCH, format_timestamp, later_start, normalize_timestamp
from tap_aha.vote_index import ProxyVoteIndex, changed_at

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from singer_sdk.helpers.types import Context, Record


class AccountStream(ListingStream):
    """A listing of the account, filtered by `updated_since` from the bookmark where it has one."""

    primary_keys = ("id",)
    is_sorted = False  # no documented order: bookmark promoted at stream end, capped at the run's start
    schema = StreamSchema(SCHEMAS)
    list_fields: t.ClassVar[str | None] = None  # `fields=` when the default list item is not the full one
    read_ahead = True  # the window comes from the state alone: the first walk starts with the run

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """Paging, the change window and the fields that make a list item the full record."""
        params = super().get_url_params(context, next_page_token)
        if self.list_fields:
            params["fields"] = self.list_fields
        return params

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """No listing found ignoring `updated_since` yet."""
        super().__init__(*args, **kwargs)
        self._warned_since = False

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The records changed since the bookmark (all of them for a full table)."""
        for page in self.pages(context, self.updated_since(context)):
            self.settle_signpost()
            yield from page
        self.settle_signpost()

    def pages(self, context: Context | None, since: str | None) -> t.Iterator[list[dict[str, t.Any]]]:
        """Full records changed since `since` (all: None), a page at a time: what the tap and Lakeflow read.

        Stubs are completed (`complete`). A listing that ignores `updated_since` (it sends records last
        changed before it) is filtered here, with one warning a run.
        """
        done = 0
        for items in self.walk_pages(context, since):
            records = self.complete(items)
            if records is not items:  # details were read: a request per stub, worth a progress line
                done += len(items)
                self.connection.progress.listing(self.name, done, self._walk.last_total or None)
            if since is not None and self.replication_key:
                kept = [
                    record for record in records if not _changed_before(record, self.replication_key, since)
                ]
                if len(kept) < len(records) and not self._warned_since:
                    self._warned_since = True
                    self.logger.warning(
                        "The %s listing ignored updated_since=%s (it sent records last changed before it): "
                        "they are left out here, but every run reads the whole listing.",
                        self.name, since,
                    )  # fmt: skip
                records = kept
            yield records

    def updated_since(self, context: Context | None) -> str | None:
        """The bookmark, or start_date, as `updated_since`; None (everything) for a full table."""
        if not self.replication_key:
            return None
        start = self.get_starting_timestamp(context)
        return format_timestamp(start) if start else None


def _changed_before(record: dict[str, t.Any], key: str, since: str) -> bool:
    """Whether the record's cursor lies before `since` (a record without one is kept)."""
    value = record.get(key)
    return isinstance(value, str) and bool(value) and normalize_timestamp(value) < since


class IdeaVotesStream(AccountStream):
    """Every vote of the account: portal votes (who voted) and proxy votes (for which organization)."""

    name = "idea_votes"
    path = "/ideas/endorsements"
    root_key = "idea_endorsements"
    replication_key = "updated_at"
    string_fields = ("idea_id", "value")  # `value` is a decimal string such as "2.0"
    optional_endpoint = True  # refused: idea_proxy_votes reads per idea instead
    schema = StreamSchema(SCHEMAS, key="idea_proxy_votes")  # the same vote record
    delete_audit_types = ("Ideas::IdeaEndorsement",)

    def on_refused(self, exc: EndpointRefusedError, context: Context | None) -> None:
        """Refused: the stream is skipped, and the run's vote listing is not asked for again."""
        super().on_refused(exc, context)
        self.connection.votes.refused = True

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The votes changed since the bookmark; the proxy votes of the ideas' window too, when wanted.

        One listing then serves both (`RunVotes`; the tap syncs this stream before the ideas): it starts at
        the earlier of this bookmark and the ideas' window, gives this stream the votes of its own window and
        offers the proxy votes of the ideas' window to `idea_proxy_votes`.
        """
        own = self.updated_since(context)
        votes = self.connection.votes
        if not votes.wanted:
            yield from super().get_records(context)
            return
        index = ProxyVoteIndex(votes.since)
        for page in self.walk_pages(context, votes.window(own)):
            index.add(page)
            yield from (vote for vote in page if own is None or changed_at(vote) >= own)
        self.settle_signpost()
        votes.offer(index)

    def since_ahead(self) -> str | None:
        """Where the listing starts (`get_records`), before the sync: the run's vote plan widens it."""
        return self.connection.votes.window(super().since_ahead())


class IdeaOrganizationsStream(AccountStream):
    """The customer organizations behind proxy votes, with their revenue (a decimal string)."""

    name = "idea_organizations"
    path = "/idea_organizations"
    root_key = "idea_organizations"
    replication_key = "updated_at"
    string_fields = ("revenue",)
    optional_endpoint = True  # may need Aha!'s "Ideas Advanced" plan
    delete_audit_types = ("Ideas::IdeaOrganization",)  # the class name is assumed (README, Deletes)
    # List items are stubs (id, name, created_at, url, resource) unless the rest is named.
    list_fields = (
        "*,updated_at,description,endorsements_count,email_domains,revenue,custom_fields,"
        "integration_fields,created_by_user"
    )


class IdeaUsersStream(AccountStream):
    """The people who vote and comment in portals, with their organizations.

    Records carry no `updated_at`, yet the listing takes `updated_since`: the bookmark is the moment, on
    Aha!'s clock, this run's first request left, written once the whole listing was read, as
    `{"replication_key": "updated_since", "replication_key_value": <that moment>}`.
    """

    name = "idea_users"
    path = "/idea_users"
    root_key = "idea_users"
    replication_key = None
    delete_audit_types = ("Ideas::IdeaUser",)  # the class name is assumed (README, Deletes)
    list_fields = "*,title,phone"  # named explicitly, or Aha! leaves them out
    optional_endpoint = True  # portal users: the key's role may not see them
    listing_cursor = "listed_at"  # Lakeflow reads them as cdc, not as a snapshot re-read whole every poll
    bookmark_key: t.ClassVar[str] = "updated_since"

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: a run sends only the users changed, and a new version would drop all the others."""
        return False

    def updated_since(self, context: Context | None) -> str | None:
        """The later of the stored bookmark and start_date."""
        return self._since(self.stream_state)

    def since_ahead(self) -> str | None:
        """`updated_since`, before the sync (the state as given, not written)."""
        return self._since(self.state_as_given())

    def _since(self, state: Mapping[str, t.Any]) -> str | None:
        stored = state.get("replication_key_value")
        return later_start(
            normalize_timestamp(stored) if isinstance(stored, str) else None, self.settings.start_date
        )

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The users changed since the bookmark; then the bookmark moves to this run's start.

        Never back: Aha!'s `Date` counts whole seconds, so two runs in one second could otherwise go back.
        """
        since = self.updated_since(context)
        yield from super().get_records(context)
        self.stream_state.update(
            replication_key=self.bookmark_key,
            replication_key_value=max(since or EPOCH, self.server_start()),
        )


class IdeaPortalsStream(AccountStream):
    """The account's ideas portals (few records): a full table."""

    name = "idea_portals"
    path = "/idea_portals"
    root_key = "idea_portals"
    replication_key = None
    optional_endpoint = True  # the key's role may not see portals


class ProductsStream(AccountStream):
    """Aha! workspaces (`products` in the API), which ideas carry as `product_id`: a full table.

    List items have no `updated_at`, so there is nothing to bookmark on.
    """

    name = "products"
    path = "/products"
    root_key = "products"
    replication_key = None
    optional_endpoint = True  # the key's role may not list workspaces

    def get_child_context(self, record: Record, context: Context | None) -> Context:
        """Idea categories are listed per workspace."""
        return {"product_id": record["id"]}


class IdeaCategoriesStream(ChildStream, AccountStream):
    """The category tree (`parent_id`) of each workspace's ideas: a full table, one listing per workspace.

    Synced through the workspaces listing whether or not `products` is selected.
    """

    name = "idea_categories"
    path = "/products/{product_id}/idea_categories"
    root_key = "idea_categories"
    replication_key = None
    parent_stream_type = ProductsStream
    optional_endpoint = True  # 404 in a workspace without ideas: that workspace is skipped

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Tie each category to its workspace with the workspace's string id."""
        if context:
            row["product_id"] = context["product_id"]
        return super().post_process(row, context)


COMPANION_TYPES: tuple[type[AccountStream], ...] = (
    IdeaVotesStream,
    IdeaOrganizationsStream,
    IdeaUsersStream,
    IdeaPortalsStream,
    ProductsStream,
    IdeaCategoriesStream,
)
