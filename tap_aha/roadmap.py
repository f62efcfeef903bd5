"""The roadmap ideas lead to (docs/roadmap.md).

Features, epics, releases and their phases, initiatives, goals and key results, requirements, to-dos, staff
users and idea themes.

Each is a listing read like the companions (`AccountStream`): paged, drift-safe, filtered by `updated_since`
where Aha! offers it, skipped with one warning where the plan or the key's role refuses it (each says
`optional_endpoint = True`; a stream read per parent skips only the parent refused). Most roadmap
lists send stubs: they ask `fields=` for the rest, and whatever item still lacks the detail fields is
completed with one GET (`detail_markers`), decided per item from what came back. Releases, key results and
requirements have no account-wide list: they are read per workspace, goal or feature (`parent_stream_type`);
key results and requirements come from their parent's record where it holds them whole, at no request.
"""

from __future__ import annotations

import typing as t

from tap_aha.client import ChildStream
from tap_aha.companions import AccountStream, ProductsStream
from tap_aha.progress import quiet_detail

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

# What the GETs add to the stub list items, asked for on the lists with `fields=*,...`.
FEATURE_FIELDS = (
    "updated_at", "product_id", "reference_num", "position", "score", "start_date", "due_date", "progress",
    "progress_source", "status_changed_on", "workflow_kind", "workflow_status", "description", "release",
    "release_reference_num", "epic", "epic_reference_num", "master_feature", "initiative",
    "initiative_reference_num", "goals", "key_results", "requirements", "belongs_to_release_phase",
    "assigned_to_user", "created_by_user", "tags", "full_tags", "custom_fields", "integration_fields",
    "comments_count", "score_facts", "feature_links", "attachments", "project",
)  # fmt: skip
EPIC_FIELDS = (
    "updated_at", "product_id", "position", "score", "start_date", "due_date", "progress", "progress_source",
    "status_changed_on", "workflow_status", "description", "release", "initiative",
    "initiative_reference_num", "features", "goals", "key_results", "assigned_to_user", "created_by_user",
    "tags", "full_tags", "custom_fields", "integration_fields", "comments_count", "score_facts", "epic_links",
    "attachments", "project",
)  # fmt: skip
RELEASE_FIELDS = (
    "updated_at", "end_date", "development_started_on", "external_release_date", "released", "released_on",
    "master_release", "position", "progress", "progress_source", "status_changed_on", "workflow_status",
    "goals", "initiatives", "key_results", "custom_fields", "comments_count", "created_by_user",
)  # fmt: skip
TASK_FIELDS = (
    "updated_at", "body", "position", "product_id", "assigned_to_users", "created_by_user", "attachments",
    "url", "resource", "comments_count", "taskable",
)  # fmt: skip


def _fields(names: tuple[str, ...]) -> str:
    return "*," + ",".join(names)


class FeaturesStream(AccountStream):
    """Features, whole: status, release, epic, initiative, requirements; the parent of `requirements`."""

    name = "features"
    path = "/features"
    root_key = "features"
    optional_endpoint = True  # a plan without Aha! Roadmaps (404), or the key's role (403)
    replication_key = "updated_at"
    string_fields = ("product_id",)
    list_fields = _fields(FEATURE_FIELDS)
    detail_markers = ("updated_at", "workflow_status")
    detail_path = "/features/{id}"
    detail_root = "feature"
    delete_audit_types = ("Feature",)

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """The changed features; a warning when they are read for `requirements` alone."""
        if not self.selected:
            self.logger.warning(
                "'requirements' is selected without 'features': the SDK then never saves the features "
                "bookmark, so every run reads every feature again. Select 'features' too."
            )
        return super().get_records(context)

    def get_child_context(self, record: Record, context: Context | None) -> Context:
        """Requirements come from the feature's record where it holds them (None: read their listing)."""
        return {"feature_id": record["id"], "requirements": record.get("requirements")}


class EpicsStream(AccountStream):
    """Epics, whole (Aha! also calls them master features)."""

    name = "epics"
    path = "/epics"
    root_key = "epics"
    optional_endpoint = True  # a plan without Aha! Roadmaps, or the key's role
    replication_key = "updated_at"
    string_fields = ("product_id",)
    list_fields = _fields(EPIC_FIELDS)
    detail_markers = ("updated_at", "workflow_status")
    detail_path = "/epics/{id}"
    detail_root = "epic"
    delete_audit_types = ("Epic", "MasterFeature")  # the class name is not documented: both are matched


class ReleasesStream(ChildStream, AccountStream):
    """Releases of every workspace and product line (roll-up releases included): one listing per workspace.

    Aha! has no account-wide release list. Synced through the workspaces whether or not `products` is
    selected; one flat bookmark.
    """

    name = "releases"
    path = "/products/{product_id}/releases"
    root_key = "releases"
    optional_endpoint = True  # a workspace the key's role may not read: that workspace alone
    replication_key = "updated_at"
    parent_stream_type = ProductsStream
    string_fields = ("product_id",)
    list_fields = _fields(RELEASE_FIELDS)
    detail_markers = ("updated_at", "workflow_status")
    detail_path = "/releases/{id}"
    detail_root = "release"
    delete_audit_types = ("Release", "MasterRelease")

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Per-workspace INFO lines only at DEBUG."""
        super().__init__(*args, **kwargs)
        quiet_detail(self.logger)

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """The workspace listed, where the item does not name its own."""
        if context and not row.get("product_id"):
            row["product_id"] = context["product_id"]
        return super().post_process(row, context)


class ReleasePhasesStream(AccountStream):
    """Phases and milestones of every release: one account-wide listing, whole each run."""

    name = "release_phases"
    path = "/release_phases"
    root_key = "release_phases"
    optional_endpoint = True  # a plan without Aha! Roadmaps, or the key's role
    replication_key = None
    string_fields = ("release_id",)  # an integer in Aha!'s answers; a string like every other id here
    delete_audit_types = ("ReleasePhase",)


class InitiativesStream(AccountStream):
    """Initiatives: the list items are nearly whole and carry `updated_at`."""

    name = "initiatives"
    path = "/initiatives"
    root_key = "initiatives"
    optional_endpoint = True  # a plan without strategy records, or the key's role
    replication_key = "updated_at"
    string_fields = ("product_id",)
    detail_markers = ("updated_at",)
    detail_path = "/initiatives/{id}"
    detail_root = "initiative"
    delete_audit_types = ("Initiative",)


class GoalsStream(AccountStream):
    """Goals (no `updated_since` on their list): whole each run; the parent of `key_results`."""

    name = "goals"
    path = "/goals"
    root_key = "goals"
    optional_endpoint = True  # a plan without strategy records, or the key's role
    replication_key = None
    string_fields = ("product_id",)
    delete_audit_types = ("Goal", "StrategicImperative")  # goals are `StrategicImperative` in to-dos

    def get_child_context(self, record: Record, context: Context | None) -> Context:
        """Key results come from the goal's record where it holds them whole."""
        return {"goal_id": record["id"], "key_results": record.get("key_results")}


class NestedStream(ChildStream, AccountStream):
    """Records a parent's record holds (`nested_key`), with the parent's id added.

    Taken from there when each carries `nested_markers`, else from the parent's own listing (`path`).
    """

    nested_key: t.ClassVar[str]
    nested_markers: t.ClassVar[tuple[str, ...]]
    parent_key: t.ClassVar[str]
    # Not read ahead: a listing per parent would be spent even where the parent's record holds them whole.
    read_ahead = False

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Per-parent INFO lines only at DEBUG."""
        super().__init__(*args, **kwargs)
        quiet_detail(self.logger)

    def pages(self, context: Context | None, since: str | None) -> t.Iterator[list[dict[str, t.Any]]]:
        """The parent's records of this kind, whole: nested ones at no request, else one listing."""
        nested = (context or {}).get(self.nested_key)
        if isinstance(nested, list) and all(
            isinstance(item, dict)
            and item.get("id") not in {None, ""}
            and all(k in item for k in self.nested_markers)
            for item in nested
        ):
            yield [{**item, "id": str(item["id"])} for item in nested]
            return
        yield from super().pages(context, None)

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Tie each record to its parent with the parent's string id."""
        if context:
            row[self.parent_key] = context[self.parent_key]
        return super().post_process(row, context)


class KeyResultsStream(NestedStream):
    """Key results of every goal, whole each run; `goal_id` added (Aha!'s record has none)."""

    name = "key_results"
    path = "/goals/{goal_id}/key_results"
    root_key = "key_results"
    optional_endpoint = True  # a goal Aha! refuses: that goal alone
    replication_key = None
    parent_stream_type = GoalsStream
    nested_key = "key_results"
    nested_markers = ("description", "workflow_status")
    parent_key = "goal_id"
    delete_audit_types = ("KeyResult",)


class RequirementsStream(NestedStream):
    """Requirements of each changed feature, from its full record (else its listing); `feature_id` added.

    Follows the features' window: a requirement edit that leaves its feature's `updated_at` alone arrives
    when the feature next changes (docs/roadmap.md).
    """

    name = "requirements"
    path = "/features/{feature_id}/requirements"
    root_key = "requirements"
    optional_endpoint = True  # a feature Aha! refuses: that feature alone
    replication_key = "updated_at"
    parent_stream_type = FeaturesStream
    nested_key = "requirements"
    nested_markers = ("updated_at", "workflow_status")
    parent_key = "feature_id"
    string_fields = ("release_id",)
    delete_audit_types = ("Requirement",)


class ToDosStream(AccountStream):
    """To-dos and approvals (`/tasks`), whole; `taskable` (the record it belongs to) when Aha! sends it."""

    name = "to_dos"
    path = "/tasks"
    root_key = "tasks"
    optional_endpoint = True  # the key's role
    replication_key = "updated_at"
    string_fields = ("product_id",)
    list_fields = _fields(TASK_FIELDS)
    detail_markers = ("updated_at",)
    detail_path = "/tasks/{id}"
    detail_root = "task"
    delete_audit_types = ("Task",)


class UsersStream(AccountStream):
    """The account's staff, with their workspace roles (no `updated_since`): whole each run."""

    name = "users"
    path = "/users"
    root_key = "users"
    optional_endpoint = True  # listing the staff may take an administrator's key (403)
    replication_key = None
    delete_audit_types = ("User",)


class IdeaThemesStream(AccountStream):
    """Idea themes: not in the REST reference; read where the account answers, else one warning."""

    name = "idea_themes"
    path = "/idea_themes"
    root_key = "idea_themes"
    optional_endpoint = True  # not in the REST reference: an account may not serve it (404)
    replication_key = None
    string_fields = ("product_id",)
    delete_audit_types = ("Ideas::IdeaTheme",)


ROADMAP_TYPES: tuple[type[AccountStream], ...] = (
    FeaturesStream,
    RequirementsStream,
    EpicsStream,
    ReleasesStream,
    ReleasePhasesStream,
    InitiativesStream,
    GoalsStream,
    KeyResultsStream,
    ToDosStream,
    UsersStream,
    IdeaThemesStream,
)
