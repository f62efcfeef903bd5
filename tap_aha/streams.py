"""The idea streams: ideas, and per changed idea its proxy votes, internal comments and portal comments."""

from __future__ import annotations

import functools
import typing as t

from singer_sdk import StreamSchema
from singer_sdk.schema.source import SchemaDirectory

from tap_aha import schemas
from tap_aha.client import ChildStream, ListingStream
from tap_aha.comment_counts import INTERNAL, PORTAL, CommentCounts, listed_count
from tap_aha.deletes import keep_deletes_bookmark
from tap_aha.errors import AhaAPIError, EndpointRefusedError, NotFoundError
from tap_aha.first_sync import MARKER, FirstSync, WindowEnd, first_window
from tap_aha.prefetch import run_ahead
from tap_aha.progress import quiet_detail
from tap_aha.sdk import tap_of
from tap_aha.timestamps import EPOCH, format_timestamp
from tap_aha.vote_index import ProxyVoteIndex

if t.TYPE_CHECKING:
    from collections.abc import Collection, Iterable

    from singer_sdk.helpers.types import Context, Record

    from tap_aha.listings import Walk
    from tap_aha.settings import AhaSettings

SCHEMAS = SchemaDirectory(schemas)

# What GET /ideas/{id} adds to the compact list item; asked for on the list with `fields=*,...`.
DETAIL_FIELDS = (
    "product_id", "score", "votes", "initial_votes", "endorsements_count", "comments_count",
    "status_changed_at", "visibility", "admin_response", "product", "created_by_user",
    "created_by_portal_user", "created_by_idea_user", "assigned_to_user", "feature", "epic", "initiative",
    "requirement", "score_facts",
    "tags", "full_tags", "categories", "custom_fields", "custom_object_links",
    "workflow_status_times", "submitted_idea_portal_record_url", "integration_fields",
    "duplicate_of", "watchers",
)  # fmt: skip
LIST_FIELDS = "*," + ",".join(DETAIL_FIELDS)  # the default set plus the detail fields
# Keys every full idea carries: a list item missing any of them is completed from its detail.
DETAIL_MARKERS = ("product_id", "endorsements_count", "comments_count", "votes", "custom_fields")


class IdeasStream(ListingStream):
    """Full ideas changed since the bookmark (`updated_since`); the parent of the other streams."""

    name = "ideas"
    path = "/ideas"
    root_key = "ideas"
    primary_keys = ("id",)
    replication_key = "updated_at"
    is_sorted = False  # Aha! documents no ascending order: bookmark promoted at stream end.
    string_fields = ("product_id",)
    schema = StreamSchema(SCHEMAS)
    delete_audit_types = ("Ideas::Idea",)
    detail_markers = DETAIL_MARKERS  # a list item without these is not the full record
    look_ahead_pages = 3  # pages of ideas listed, and their children fetched, ahead of the one written
    read_ahead = True  # the window comes from the state alone: the first page is listed as the run starts
    pages_ahead = 0  # only the first: `look_ahead_pages` lists the rest ahead in one thread, as before
    detail_path = "/ideas/{id}"
    detail_root = "idea"

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Whether this run read its window to the end; no `created_at` window (tap_aha.first_sync) yet."""
        super().__init__(*args, **kwargs)
        self.window_complete = False
        self.created_window: dict[str, str] = {}

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """Full ideas, the change window and the user's filters."""
        params = super().get_url_params(context, next_page_token)
        params["fields"] = LIST_FIELDS
        if self.settings.ideas_workflow_status:
            params["workflow_status"] = self.settings.ideas_workflow_status
        if self.settings.ideas_q:
            params["q"] = self.settings.ideas_q
        params.update(self.created_window)
        return params

    def walks_ahead(self) -> list[Walk]:
        """The run's first ideas request, read ahead: a resumed first sync's is its next window's.

        That request is the one `FirstSync.pages` makes first (`first_window`): a fresh run's unfiltered
        page 1 tells whether to read in windows; a resumed run never asks for it.
        """
        saved = self.created_window
        self.created_window = first_window(self.state_as_given().get(MARKER), self.settings.max_ideas)
        try:
            return super().walks_ahead()
        finally:
            self.created_window = saved

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Changed ideas a page at a time, each page's children fetched ahead while it is written."""
        if not self.selected:
            self.logger.warning(
                "A child stream is selected without 'ideas': the SDK then never saves the ideas bookmark, "
                "so every run reads every idea again. Select 'ideas' too."
            )
        since = self.window_start()
        children = [
            child
            for child in self.child_streams
            if isinstance(child, IdeaChildStream) and (child.selected or child.has_selected_descendents)
        ]
        votes = next((child for child in children if isinstance(child, IdeaProxyVotesStream)), None)
        if votes is not None and (votes.index is None or votes.index.since != since):
            votes.index = self.connection.votes.index_for(since) or votes.read_listing(since)
        if votes is not None and votes.index is not None:
            self.logger.info(
                "Proxy votes from the account-wide listing: %d ideas' votes held (%.1f MB).",
                len(votes.index.idea_ids()), votes.index.held_bytes / 1e6,
            )  # fmt: skip
        first_sync = FirstSync(self)
        counts = start_comment_counts(self.child_streams, children, self.settings, first_sync.readings())
        progress = self.connection.progress
        listing = first_sync.pages(since)
        pages: t.Iterator[list[dict[str, t.Any]]] = listing
        if self.connection.prefetcher.enabled:
            # The children of the next pages' ideas may be fetched ahead of the one the SDK waits for (a
            # back-off or a slow answer holds only its own idea), and those pages are listed meanwhile.
            ahead = self.look_ahead_pages
            fetching = [child for child in children if child is not votes or votes.index is None]
            self.connection.prefetcher.look_ahead(ahead * self.settings.page_size * len(fetching))
            pages = run_ahead(
                listing, functools.partial(self.prefetch_children, children=children), ahead=ahead
            )
        progress.start()
        try:
            for ideas in pages:
                self.settle_signpost()  # the listing's thread noted Aha!'s clock; the state is written here
                for idea in ideas:
                    yield idea  # the SDK writes it and syncs its children before asking for the next
                    progress.idea_done()
                if isinstance(ideas, WindowEnd):
                    self._window_done(first_sync, ideas, counts, children)
                else:
                    progress.report()
        finally:
            progress.stop()
        if counts is not None:
            self._sync_skipped_comments(counts, children)
        self.settle_signpost()
        if not self.window_complete:
            self._hold_bookmark(context)
        elif votes is not None and votes.index is not None:
            self._sync_votes_of_unlisted_ideas(votes, votes.index)
        self._sync_owed_comments(first_sync, counts, children)
        first_sync.finish()

    def window_start(self) -> str | None:
        """The ideas' `updated_since` for this run (None: everything), known before their sync starts too."""
        self.write_starting_value()  # the SDK writes the same value when the sync starts
        start = self.get_starting_timestamp(None)
        return format_timestamp(start) if start else None

    def _sync_votes_of_unlisted_ideas(self, votes: IdeaProxyVotesStream, index: ProxyVoteIndex) -> None:
        """Votes edited without a change to their idea (so it was not listed), synced after the last idea.

        Not with `ideas_workflow_status` or `ideas_q`: such an idea may be one the filters leave out.
        """
        if self.settings.ideas_workflow_status or self.settings.ideas_q:
            return
        for idea_id in index.idea_ids():
            votes.sync({"idea_id": idea_id, "endorsements_count": None})

    def _window_done(
        self,
        first_sync: FirstSync,
        window: WindowEnd,
        counts: CommentCounts | None,
        children: Iterable[IdeaChildStream],
    ) -> None:
        """A first sync's window is read: its STATE, once nothing of its ideas is owed.

        The STATE marks the window's ideas done for a resumed run: first the comment requests skipped until
        a contradiction, and the delete bookmark (a resumed run reads the deletes since this run's start).
        """
        if counts is not None:
            self._sync_skipped_comments(counts, children)
        keep_deletes_bookmark(tap_of(self), first_sync.started_at or self.server_start())
        first_sync.window_done(window, counts)

    def _sync_owed_comments(
        self, first_sync: FirstSync, counts: CommentCounts | None, children: Iterable[IdeaChildStream]
    ) -> None:
        """Comment requests interrupted runs skipped on a reading this run's evidence contradicts.

        Their ideas lie in windows those runs finished: listed again, and each counted 0 gets the requests
        (tap_aha.first_sync, invariant 6). Only after the last window, so the listing is not walked twice at
        once; a STATE before then carries the debt in the marker.
        """
        owed = first_sync.owed(counts)
        if owed is None:
            return
        kinds, pages = owed
        streams = [child for child in children if child.comment_kind in kinds]
        for ideas in pages:
            for idea in ideas:
                context = self.get_child_context(idea, None)
                if listed_count(context) == 0 and self.will_sync_children(idea):
                    for child in streams:
                        child.sync(dict(context))

    def _sync_skipped_comments(self, counts: CommentCounts, children: Iterable[IdeaChildStream]) -> None:
        """After a contradiction, the comment requests skipped so far, before a bookmark moves past them."""
        for child in children:
            if child.comment_kind:
                for context in counts.deferred(child.comment_kind):
                    child.sync(dict(context))

    def changed_idea_pages(
        self, since: str | None, listing: t.Iterable[list[dict[str, t.Any]]] | None = None
    ) -> t.Generator[list[dict[str, t.Any]], None, None]:
        """Pages of full ideas updated since `since`, each idea once, however the listing shifts.

        `listing` is a walk of the list already begun (tap_aha.first_sync), else one is started here.
        `window_complete` tells afterwards whether the window was read to its end (False when `max_ideas`
        stopped it).
        """
        self.window_complete = False
        taken = 0
        cap = self.settings.max_ideas
        progress = self.connection.progress
        for items in self.walk_pages(None, since) if listing is None else listing:
            if self._walk.last_total and not self.created_window:  # a window's total is not the run's
                progress.listed(self._walk.last_total if cap is None else min(self._walk.last_total, cap))
            ideas = self.complete(items)
            if cap is not None:
                ideas = ideas[: cap - taken]
            taken += len(ideas)
            yield ideas
            if cap is not None and taken >= cap:
                self.logger.info("Stopped at max_ideas=%d: the window is kept for the next run.", cap)
                return
        self.window_complete = True

    def listed_total(self) -> int:
        """`total_records` of the listing's last page read (0 before any)."""
        return self._walk.last_total

    def sync_finished(self) -> None:
        """The prefetches dropped however the sync ended (an error, an abort)."""
        self.connection.prefetcher.discard()

    def get_child_context(self, record: Record, context: Context | None) -> Context:
        """Children need the idea id; its counts (and when they were listed) let them skip empty requests."""
        return {
            "idea_id": record["id"],
            "endorsements_count": record.get("endorsements_count"),
            "comments_count": record.get("comments_count"),
            "updated_at": record.get("updated_at"),
        }

    def prefetch_children(self, ideas: list[dict[str, t.Any]], children: t.Sequence[IdeaChildStream]) -> None:
        """Plan the children requests of these ideas; each child stream's get_records takes the result."""
        prefetcher = self.connection.prefetcher
        if not prefetcher.enabled:
            return
        for idea in ideas:  # in the order they will be taken
            if not self.will_sync_children(idea):
                continue
            child_context = self.get_child_context(idea, None)
            for child in children:
                if child.wants(child_context):
                    prefetcher.plan((child.name, idea["id"]), functools.partial(child.fetch, child_context))

    def will_sync_children(self, idea: dict[str, t.Any]) -> bool:
        """Whether the SDK will sync this idea's children: not where a stream map's `__filter__` drops it."""
        record = self.post_process(idea)  # what the SDK's filter sees (idempotent)
        return record is not None and bool(self.stream_maps[0].get_filter_result(record))

    def _hold_bookmark(self, context: Context | None) -> None:
        """Keep the next run's window where this one started: a max_ideas run read only part of it."""
        self._signpost = self._updated_since or EPOCH
        self._signpost_unwritten = False
        self.write_signpost(self._signpost, context)


class IdeaChildStream(ChildStream):
    """A per-idea listing synced for each idea the parent emits, with one flat bookmark."""

    parent_stream_type = IdeasStream
    primary_keys = ("id",)
    comment_kind: t.ClassVar[str | None] = None  # what `comments_count` may count of these records

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Per-idea INFO lines only at DEBUG; no comment counts learned yet."""
        super().__init__(*args, **kwargs)
        quiet_detail(self.logger)
        self.comment_counts: CommentCounts | None = None

    def wants(self, context: Context) -> bool:
        """Whether this idea can have records here at all (no request when it cannot)."""
        return True

    def fetch(self, context: Context) -> list[dict[str, t.Any]]:
        """All of an idea's records: none without a request where the verified comment count says so."""
        counts, kind = self.comment_counts, self.comment_kind
        if counts is None or kind is None:
            return self.fetch_all(context)
        if counts.skips(kind, context):
            return []
        rows = self.fetch_all(context)
        counts.observe(kind, context, rows)
        return rows

    def fetch_all(self, context: Context) -> list[dict[str, t.Any]]:
        """All of an idea's records, with requests; an idea deleted since it was listed has none (404).

        A 404 is taken for a deletion only once the idea itself answers 404 too: any other cause (a
        feature switched off, a permission) would otherwise drop its records without a word.
        """
        idea_id = context["idea_id"]
        try:
            return list(self.request_records(context))
        except NotFoundError:
            try:
                self.get_object(f"/ideas/{idea_id}", "idea", {"fields": "id"})
            except NotFoundError:
                self.logger.warning("Idea %s is gone (404 on %s); skipping it.", idea_id, self.name)
                return []
            msg = (
                f"Aha! answered HTTP 404 for the {self.name} of idea {idea_id}, which exists: they cannot "
                "be read (a feature switched off, or the key's permissions?)."
            )
            raise AhaAPIError(msg) from None

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The idea's records, prefetched by the ideas stream when it could."""
        if context is None or not self.wants(context):
            return []
        rows = self.connection.prefetcher.take((self.name, context["idea_id"]))
        return self.fetch(context) if rows is None else rows

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Tie each record to its idea with the parent's string id."""
        if context:
            row["idea_id"] = context["idea_id"]
        return super().post_process(row, context)


class IdeaProxyVotesStream(IdeaChildStream):
    """Votes entered by staff for customer organizations, from the account-wide vote listing.

    The listing is read once, before the ideas (by `idea_votes` when it is selected too, so one listing
    serves both); each idea takes its votes from the index. Where Aha! refuses the listing, each changed idea
    with votes costs one `/ideas/{id}/endorsements?proxy=true`.
    """

    name = "idea_proxy_votes"
    path = "/ideas/{idea_id}/endorsements"
    replication_key = "updated_at"
    is_sorted = False
    root_key = "idea_endorsements"
    string_fields = ("value",)  # a decimal string such as "2.0"
    schema = StreamSchema(SCHEMAS)
    # A destroy audit does not tell a proxy vote from a portal vote: every deleted vote gets a tombstone
    # here, and one for a vote this table never had deletes nothing.
    delete_audit_types = ("Ideas::IdeaEndorsement",)

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """No index until the run's listing was read."""
        super().__init__(*args, **kwargs)
        self.index: ProxyVoteIndex | None = None

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """Only proxy votes."""
        return {**super().get_url_params(context, next_page_token), "proxy": "true"}

    def wants(self, context: Context) -> bool:
        """A request only without the index, and none for an idea without any vote (the count counts all)."""
        return self.index is None and context.get("endorsements_count") != 0

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The idea's votes from the index, else from its own request."""
        if self.index is not None and context is not None:
            return self.index.take(context["idea_id"])
        return super().get_records(context)

    def walks_ahead(self) -> list[Walk]:
        """The proxy votes' own listing (`read_listing`), started with the run when `RunVotes` says so."""
        votes = self.connection.votes
        if not votes.listed_alone():
            return []
        return [ProxyVoteListing(tap=tap_of(self)).walk_ahead(None, votes.since)]

    def read_listing(self, since: str | None) -> ProxyVoteIndex | None:
        """The proxy votes updated since `since`, from the account-wide listing (`proxy=true`).

        None, with one warning, when Aha! refuses the listing: the votes are then read per idea.
        """
        run_votes = self.connection.votes
        if not run_votes.refused:
            index = ProxyVoteIndex(since)
            try:
                for page in ProxyVoteListing(tap=tap_of(self)).walk_pages(None, since):
                    index.add(page)
            except EndpointRefusedError:
                run_votes.refused = True
            else:
                return index
        self.logger.warning(
            "Aha! refused the account-wide vote listing (GET /ideas/endorsements): reading %s with one "
            "request per changed idea that has votes instead.",
            self.name,
        )
        return None


class ProxyVoteListing(ListingStream):
    """`GET /ideas/endorsements?proxy=true` for `idea_proxy_votes`' index; not a stream of the tap."""

    name = "proxy_vote_listing"
    path = "/ideas/endorsements"
    root_key = "idea_endorsements"
    optional_endpoint = True  # refused: `read_listing` warns, and the votes are read per idea
    schema: t.ClassVar[dict[str, t.Any]] = {"type": "object", "properties": {"id": {"type": "string"}}}

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """Only proxy votes (the index drops portal votes too, should Aha! ignore the filter)."""
        return {**super().get_url_params(context, next_page_token), "proxy": "true"}


class IdeaCommentsStream(IdeaChildStream):
    """Internal comments by staff; the API gives them no `idea_id`, so the tap adds it."""

    name = "idea_comments"
    path = "/ideas/{idea_id}/comments"
    replication_key = "updated_at"
    is_sorted = False
    root_key = "comments"
    schema = StreamSchema(SCHEMAS)
    delete_audit_types = ("Comment",)  # comments on other records have other ids: harmless
    comment_kind = INTERNAL


class IdeaPortalCommentsStream(IdeaChildStream):
    """Comments customers and employees wrote in the ideas portal: the feedback product managers read.

    Aha! gives them no `updated_at`, so there is no bookmark: every portal comment of each changed idea is
    sent again, and a merge on `id` absorbs the repeats. Spam is left out unless asked for.
    """

    name = "idea_portal_comments"
    path = "/ideas/{idea_id}/idea_comments"
    replication_key = None
    root_key = "idea_comments"
    schema = StreamSchema(SCHEMAS)
    delete_audit_types = ("Ideas::IdeaComment",)
    comment_kind = PORTAL

    def get_url_params(self, context: Context | None, next_page_token: int | None) -> dict[str, t.Any]:
        """Spam only when the setting asks for it."""
        params = super().get_url_params(context, next_page_token)
        if self.settings.include_spam_portal_comments:
            params["spam"] = "true"
        return params

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Drop spam the API sent anyway, unless it was asked for."""
        if row.get("spam") is True and not self.settings.include_spam_portal_comments:
            return None
        return super().post_process(row, context)


def start_comment_counts(
    streams: Iterable[object],
    active: Collection[object],
    settings: AhaSettings,
    readings: Collection[str] | None = None,
) -> CommentCounts | None:
    """One CommentCounts for the `active` comment streams of a run (or Lakeflow batch); the others get none.

    The others' plain fetches serve the learning sample (tap_aha.comment_counts). `readings`: those an
    interrupted first sync's evidence left (None: all).
    """
    comment_streams = [s for s in streams if isinstance(s, IdeaChildStream) and s.comment_kind]
    for stream in comment_streams:
        stream.comment_counts = None
    kinds = [s.comment_kind for s in comment_streams if s in active and s.comment_kind]
    if not kinds:
        return None
    fetchers = {s.comment_kind: s.fetch_all for s in comment_streams if s.comment_kind}
    counts = CommentCounts(
        kinds, fetchers, skip_portal=not settings.include_spam_portal_comments, readings=readings
    )
    for stream in comment_streams:
        if stream in active:
            stream.comment_counts = counts
    return counts
