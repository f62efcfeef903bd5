"""The tap's settings: one validated, typed view shared by the tap, the Lakeflow shim and the benchmark.

Values may arrive as JSON types (config file) or as strings (environment, Spark options); both are accepted.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import typing as t
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

from tap_aha import __version__
from tap_aha.errors import SettingsError
from tap_aha.timestamps import normalize_timestamp

AHA_MAX_PAGE_SIZE = 200
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SUBDOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})?$")


@dataclass(frozen=True)
class AhaSettings:
    """Everything a run needs, already checked; `api_key` is kept out of repr so it never lands in a log."""

    api_key: str
    api_url: str
    start_date: str | None = None
    ideas_workflow_status: str | None = None
    ideas_q: str | None = None
    max_ideas: int | None = None
    page_size: int = AHA_MAX_PAGE_SIZE
    requests_per_minute: int = 300
    requests_per_second: int = 15
    request_timeout: float = 60.0
    max_retries: int = 7
    max_rate_limit_wait: float = 900.0
    parallel_requests: int = 8
    include_spam_portal_comments: bool = False
    capture_deletes: bool = True
    user_agent: str = f"tap-aha/{__version__}"

    def __repr__(self) -> str:
        """Show the settings with the key masked."""
        return f"AhaSettings(api_url={self.api_url!r}, api_key='***')"

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> AhaSettings:
        """Validate a config mapping; the first problem raises SettingsError naming the setting."""
        api_key = _text(config, "api_key")
        if not api_key:
            raise SettingsError("Setting 'api_key' is required (TAP_AHA_API_KEY).")
        api_url = _text(config, "api_url")
        subdomain = _text(config, "subdomain")
        if api_url:
            base = _check_api_url(api_url)
        elif subdomain:
            base = f"https://{_check_subdomain(subdomain)}.aha.io/api/v1"
        else:
            raise SettingsError(
                "Setting 'subdomain' is required (TAP_AHA_SUBDOMAIN), e.g. 'acme' for acme.aha.io."
            )
        if subdomain and api_url:
            _check_subdomain(subdomain)
        rpm = _integer(config, "requests_per_minute", cls.requests_per_minute, minimum=1)
        rps = _integer(config, "requests_per_second", cls.requests_per_second, minimum=1)
        return cls(
            api_key=api_key,
            api_url=base,
            start_date=_start_date(config),
            ideas_workflow_status=_text(config, "ideas_workflow_status"),
            ideas_q=_text(config, "ideas_q"),
            max_ideas=optional_integer(config, "max_ideas", minimum=1),
            page_size=_integer(config, "page_size", cls.page_size, minimum=1, maximum=AHA_MAX_PAGE_SIZE),
            requests_per_minute=rpm,
            requests_per_second=min(rps, rpm),
            request_timeout=_number(config, "request_timeout", cls.request_timeout),
            max_retries=_integer(config, "max_retries", cls.max_retries, minimum=0, maximum=20),
            max_rate_limit_wait=_number(
                config, "max_rate_limit_wait", cls.max_rate_limit_wait, maximum=86400
            ),
            parallel_requests=_integer(
                config, "parallel_requests", cls.parallel_requests, minimum=1, maximum=16
            ),
            include_spam_portal_comments=_boolean(config, "include_spam_portal_comments"),
            capture_deletes=_boolean(config, "capture_deletes", default=cls.capture_deletes),
            user_agent=_text(config, "user_agent") or cls.user_agent,
        )


@dataclass(frozen=True)
class Setting:
    """One setting as users see it; the config schema, the Lakeflow options and the tests derive from these.

    `kind` is a JSON-schema type, or "date-time"; the default is AhaSettings' own (none for the others).
    """

    name: str
    kind: str
    description: str
    required: bool = False
    secret: bool = False

    @property
    def default(self) -> t.Any:
        """AhaSettings' default for this setting, None where it has none."""
        field = _FIELDS.get(self.name)
        if field is None or field.default is dataclasses.MISSING or field.default is None:
            return None
        return field.default


_FIELDS = {field.name: field for field in dataclasses.fields(AhaSettings)}

# Every setting of the tap, in the order users read them; `subdomain` becomes `api_url` once checked.
SETTINGS: tuple[Setting, ...] = (
    Setting("api_key", "string", "Aha! API key or OAuth token (sent as a Bearer token).", required=True,
            secret=True),
    Setting("subdomain", "string", "Account name: 'acme', 'acme.aha.io', 'https://acme.aha.io/' or a "
            "regional 'acme.euw4.aha.io'. Required unless api_url is set."),
    Setting("api_url", "string", "Override of https://{subdomain}.aha.io/api/v1 (a proxy, a test server); "
            "plain http only for loopback hosts."),
    Setting("start_date", "date-time", "Earliest updated_at read on the first run (ISO-8601)."),
    Setting("ideas_workflow_status", "string", "Only ideas in this workflow status (id or name)."),
    Setting("ideas_q", "string", "Only ideas whose name matches this search."),
    Setting("max_ideas", "integer",
            "Stop after this many ideas (trials); such a run keeps the old bookmark."),
    Setting("page_size", "integer", "Records per page, 1 to 200 (the API maximum)."),
    Setting("requests_per_minute", "integer", "Client-side limit; Aha! allows 300 a minute per account."),
    Setting("requests_per_second", "integer", "Client-side limit; Aha! allows 20 a second per account."),
    Setting("request_timeout", "number", "Seconds to wait for one response before retrying."),
    Setting("max_retries", "integer", "Retries of a failed request (5xx, timeout, broken body); 429s are "
            "waited out under max_rate_limit_wait instead."),
    Setting("max_rate_limit_wait", "number", "Seconds one request keeps waiting out HTTP 429 (rate limit) "
            "answers, honouring Retry-After, before the run stops (default 900)."),
    Setting("parallel_requests", "integer", "Requests in flight at once for idea details and comments (and "
            "votes where the vote listing is refused), and as many again for the account-wide listings a run "
            "reads ahead (1-16; 1: one request at a time); the rate limits still apply to all of them."),
    Setting("include_spam_portal_comments", "boolean", "Also read portal comments Aha! marked as spam."),
    Setting("capture_deletes", "boolean", "Send a tombstone (_sdc_deleted_at) for each record deleted in "
            "Aha!, read from its audit log."),
    Setting("user_agent", "string", "User-Agent header sent to Aha!."),
)  # fmt: skip


def _text(config: t.Mapping[str, t.Any], name: str) -> str | None:
    value = config.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingsError(f"Setting '{name}' must be a string.")
    return value.strip() or None


def _boolean(config: t.Mapping[str, t.Any], name: str, *, default: bool = False) -> bool:
    value = config.get(name)
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise SettingsError(f"Setting '{name}' must be true or false.")


def _check_subdomain(raw: str) -> str:
    host = raw.strip().lower()
    host = host.removeprefix("https://").removesuffix("/").removesuffix(".aha.io")
    if not _SUBDOMAIN.match(host):
        raise SettingsError(
            "Setting 'subdomain' must be your Aha! account name such as 'acme', 'acme.aha.io' or "
            "'acme.euw4.aha.io' (no slashes, '@', '#', ports or spaces)."
        )
    return host


def _check_api_url(raw: str) -> str:
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise SettingsError("Setting 'api_url' is not a valid URL.") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError("Setting 'api_url' must be an http(s) URL such as https://acme.aha.io/api/v1.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise SettingsError("Setting 'api_url' must not carry credentials, a query or a fragment.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise SettingsError("Setting 'api_url' must use https unless it points at this machine (loopback).")
    netloc = parts.hostname if port is None else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:
        netloc = f"[{parts.hostname}]" + ("" if port is None else f":{port}")
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _start_date(config: t.Mapping[str, t.Any]) -> str | None:
    value = _text(config, "start_date")
    if value is None:
        return None
    try:
        return normalize_timestamp(value)
    except ValueError:
        raise SettingsError(
            "Setting 'start_date' must be an ISO-8601 date or date-time, e.g. 2024-01-31T00:00:00Z."
        ) from None


def _raw_number(config: t.Mapping[str, t.Any], name: str) -> float | None:
    value = config.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise SettingsError(f"Setting '{name}' must be a number.")
    if isinstance(value, (int, float, Decimal)):  # the SDK reads config files with Decimal floats
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise SettingsError(f"Setting '{name}' must be a number.")


def optional_integer(
    config: t.Mapping[str, t.Any], name: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    """A whole number in range from a number or a string (the Lakeflow shim checks its options with it)."""
    number = _raw_number(config, name)
    if number is None:
        return None
    if not number.is_integer() or number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise SettingsError(f"Setting '{name}' must be a whole number {bound}.")
    return int(number)


def _integer(
    config: t.Mapping[str, t.Any], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    value = optional_integer(config, name, minimum=minimum, maximum=maximum)
    return default if value is None else value


def _number(config: t.Mapping[str, t.Any], name: str, default: float, *, maximum: float = 3600) -> float:
    number = _raw_number(config, name)
    if number is None:
        return default
    if not 0 < number <= maximum:
        raise SettingsError(f"Setting '{name}' must be a number of seconds between 0 and {maximum:g}.")
    return number
