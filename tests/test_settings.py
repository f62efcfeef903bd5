"""Settings validation: accepted forms normalise to one base URL; bad ones name the setting."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
import yaml

from tap_aha.errors import SettingsError
from tap_aha.settings import SETTINGS, AhaSettings
from tap_aha.tap import TapAha
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("subdomain", "base"),
    [
        ("acme", "https://acme.aha.io/api/v1"),
        ("ACME", "https://acme.aha.io/api/v1"),
        ("acme.aha.io", "https://acme.aha.io/api/v1"),
        ("https://acme.aha.io/", "https://acme.aha.io/api/v1"),
        ("acme.euw4.aha.io", "https://acme.euw4.aha.io/api/v1"),
        (" big-co ", "https://big-co.aha.io/api/v1"),
    ],
)
def test_accepted_subdomains(subdomain: str, base: str) -> None:
    assert AhaSettings.from_config({"api_key": "k", "subdomain": subdomain}).api_url == base


@pytest.mark.parametrize(
    "subdomain",
    ["acme/x", "me@acme", "acme#frag", "acme:8080", "ac me", "http://acme.aha.io", "a.b.c", "-acme", "", "é"],
)
def test_rejected_subdomains(subdomain: str) -> None:
    with pytest.raises(SettingsError, match="'subdomain'"):
        AhaSettings.from_config({"api_key": "k", "subdomain": subdomain})


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://127.0.0.1:8080/api/v1/", "http://127.0.0.1:8080/api/v1"),
        ("http://localhost:9/api/v1", "http://localhost:9/api/v1"),
        ("http://[::1]:9/api/v1", "http://[::1]:9/api/v1"),
        ("https://proxy.example.com/aha/api/v1", "https://proxy.example.com/aha/api/v1"),
    ],
)
def test_api_url_override(url: str, base: str) -> None:
    assert AhaSettings.from_config({"api_key": "k", "api_url": url}).api_url == base


def test_strings_are_accepted_for_numbers_as_spark_and_env_send_them() -> None:
    settings = AhaSettings.from_config(
        {"api_key": "k", "subdomain": "acme", "page_size": "50", "max_ideas": "7", "request_timeout": "2.5"}
    )
    assert (settings.page_size, settings.max_ideas, settings.request_timeout) == (50, 7, 2.5)


def test_defaults_stay_within_ahas_limits() -> None:
    settings = AhaSettings.from_config({"api_key": "k", "subdomain": "acme"})
    assert settings.page_size == 200
    assert settings.requests_per_minute <= 300
    assert settings.requests_per_second <= 20


def test_start_date_is_normalised_to_ahas_form() -> None:
    settings = AhaSettings.from_config(
        {"api_key": "k", "subdomain": "a", "start_date": "2024-02-03T04:05:06+02:00"}
    )
    assert settings.start_date == "2024-02-03T02:05:06.000Z"


def test_repr_hides_the_key() -> None:
    assert "secret-value" not in repr(AhaSettings.from_config({"api_key": "secret-value", "subdomain": "a"}))


def test_decimal_numbers_from_a_config_file_are_accepted() -> None:
    settings = AhaSettings.from_config({"api_key": "k", "subdomain": "a", "request_timeout": Decimal("60.5")})
    assert settings.request_timeout == 60.5


# ---------------------------------------------------------------------- declared once

MELTANO_KINDS = {"string": "string", "date-time": "date_iso8601", "integer": "integer", "number": "decimal",
                 "boolean": "boolean"}  # fmt: skip


def test_every_setting_is_declared_once_and_the_config_schema_is_built_from_it() -> None:
    fields = {field.name for field in dataclasses.fields(AhaSettings)}
    assert {s.name for s in SETTINGS} == fields | {"subdomain"}  # subdomain becomes api_url
    properties = TapAha.config_jsonschema["properties"]
    for setting in SETTINGS:
        assert properties[setting.name]["description"] == setting.description
        assert properties[setting.name].get("default") == setting.default
    assert TapAha.config_jsonschema["required"] == [s.name for s in SETTINGS if s.required]


def test_connector_spec_and_meltano_yml_agree_with_the_declaration() -> None:
    spec = yaml.safe_load((REPO / "connector_spec.yaml").read_text())
    parameters = spec["connection"]["parameters"]
    assert [p["name"] for p in parameters] == [s.name for s in SETTINGS]
    assert [p["required"] for p in parameters] == [s.required for s in SETTINGS]

    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-aha")
    declared = {s.name: s for s in SETTINGS}
    ours = [s for s in tap["settings"] if s["name"] in declared]
    assert [s["name"] for s in ours] == list(declared)
    for entry in ours:
        setting = declared[entry["name"]]
        assert entry["kind"] == MELTANO_KINDS[setting.kind], setting.name
        assert entry.get("sensitive", False) == setting.secret, setting.name
