"""Errors a user can act on: each carries one line that names the problem and never a secret."""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class TapAhaError(Exception):
    """A problem with the user's input or account; the CLI prints its message alone and exits 1."""


class SettingsError(TapAhaError, ValueError):
    """A setting is missing or invalid (raised before any request)."""


class StateError(TapAhaError):
    """The --state file cannot be read or does not look like Singer state."""


class CatalogError(TapAhaError):
    """The --catalog file cannot be read or does not look like a Singer catalog."""


class AuthError(TapAhaError, FatalAPIError):
    """Aha! rejected the API key (401) or its permissions (403); retrying cannot help."""


class AhaAPIError(TapAhaError, FatalAPIError):
    """Aha! answered in a way retries did not fix; the run stops without advancing bookmarks."""


class NotFoundError(TapAhaError, FatalAPIError):
    """A 404: skipped where an idea was deleted mid-run, else a wrong `subdomain` or `api_url`."""


class EndpointRefusedError(TapAhaError, FatalAPIError):
    """Aha! refuses an optional endpoint (403, or 404 where the plan lacks it): its stream is skipped.

    Inside a per-parent fan-out only that parent is skipped (`AhaStream.skip_refused` decides).
    """

    def __init__(self, message: str, *, status: int = 0, where: str = "") -> None:
        """Keep the status and the request, for a warning that names the parent instead of the stream."""
        super().__init__(message)
        self.status = status
        self.where = where
