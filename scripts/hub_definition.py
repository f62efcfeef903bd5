"""Write or check meltano-hub/extractors/tap-aha.yml, the tap's plugin definition in MeltanoHub's format.

    python scripts/hub_definition.py          write it from `tap-aha --about` and meltano.yml
    python scripts/hub_definition.py --check  exit 1, naming the first difference, if the file is stale

Capabilities and settings (name, kind, description, sensitive) come from `tap-aha --about --format json`, and
`settings_group_validation` from meltano.yml, so the definition says what the tap says; the rest (names,
links, keywords) is fixed below. `meltano add extractor tap-aha --from-ref <this file>` adds the tap to any
Meltano project; its pip_url installs from the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import typing as t
from pathlib import Path

import yaml  # type: ignore[import-untyped, unused-ignore]  # singer-sdk's; stubs only with types-PyYAML

ROOT = Path(__file__).resolve().parents[1]
DEFINITION = ROOT / "meltano-hub" / "extractors" / "tap-aha.yml"
REPOSITORY = "https://github.com/tap-aha/tap-aha"
# JSON schema type of a tap setting -> the Meltano `kind` that carries it (date-time strings: date_iso8601).
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "object": "object",
}
# Labels a name's words do not spell well; any other label is the name as words.
LABELS = {
    "api_key": "API key",
    "api_url": "API URL",
    "ideas_q": "Ideas search",
    "user_agent": "User-Agent",
    "stream_maps": "Stream maps",
}
FIXED: dict[str, t.Any] = {
    "name": "tap-aha",
    "namespace": "tap_aha",
    "variant": "tap-aha",
    "label": "Aha!",
    "description": "Aha! product ideas, their votes, comments and deletes, and the customer organizations, "
    "idea users, portals, workspaces and categories that rank them",
    "domain_url": "https://www.aha.io/api",
    "pip_url": f"git+{REPOSITORY}.git",
    "repo": REPOSITORY,
    "docs": f"{REPOSITORY}#readme",
    "executable": "tap-aha",
    "maintenance_status": "active",
    "keywords": ["api", "aha", "product-management", "ideas", "meltano_sdk"],
}


def about() -> dict[str, t.Any]:
    """What the tap in this checkout says about itself."""
    proc = subprocess.run(
        [sys.executable, "-m", "tap_aha", "--about", "--format", "json"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    data: dict[str, t.Any] = json.loads(proc.stdout)
    return data


def kind(schema: dict[str, t.Any]) -> str:
    """The Meltano kind of a setting's JSON schema."""
    if schema.get("format") == "date-time":
        return "date_iso8601"
    types = schema.get("type", [])
    first = next(kind for kind in ([types] if isinstance(types, str) else types) if kind != "null")
    return KINDS[first]


def setting(name: str, schema: dict[str, t.Any]) -> dict[str, t.Any]:
    """One setting as MeltanoHub lists it."""
    entry: dict[str, t.Any] = {
        "name": name,
        "kind": kind(schema),
        "label": LABELS.get(name, name.replace("_", " ").capitalize()),
        "description": schema.get("description", ""),
    }
    if schema.get("secret") or schema.get("writeOnly"):
        entry["sensitive"] = True
    return entry


def group_validation() -> list[list[str]]:
    """The settings that together configure the tap, as the project's meltano.yml declares them."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-aha")
    groups: list[list[str]] = tap["settings_group_validation"]
    return groups


def definition() -> dict[str, t.Any]:
    """The plugin definition of the tap in this checkout."""
    described = about()
    properties: dict[str, dict[str, t.Any]] = described["settings"]["properties"]
    return {
        **FIXED,
        "capabilities": sorted(described["capabilities"]),
        "settings_group_validation": group_validation(),
        "settings": [setting(name, schema) for name, schema in properties.items()],
    }


def difference(found: dict[str, t.Any], expected: dict[str, t.Any]) -> str | None:
    """The first difference between the file and what the tap says, in words; None when they agree."""
    for key in expected.keys() | found.keys():
        if key == "settings":
            continue
        if found.get(key) != expected.get(key):
            return f"{key}: the file has {found.get(key)!r}, the tap says {expected.get(key)!r}"
    have = {s["name"]: s for s in found.get("settings", [])}
    want = {s["name"]: s for s in expected["settings"]}
    for name in want.keys() - have.keys():
        return f"setting {name!r} is missing"
    for name in have.keys() - want.keys():
        return f"setting {name!r} is not a setting of the tap"
    for name, entry in want.items():
        if have[name] != entry:
            return f"setting {name!r}: the file has {have[name]!r}, the tap says {entry!r}"
    if [s["name"] for s in found["settings"]] != [s["name"] for s in expected["settings"]]:
        return "the settings are not in the tap's order"
    return None


def main(argv: list[str] | None = None) -> int:
    """Write the definition, or check it; one line either way."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check the file instead of writing it")
    args = parser.parse_args(argv)
    expected = definition()
    shown = DEFINITION.relative_to(ROOT)
    if args.check:
        found = yaml.safe_load(DEFINITION.read_text(encoding="utf-8")) if DEFINITION.is_file() else {}
        problem = difference(found or {}, expected)
        if problem:
            print(f"{shown} is stale ({problem}): run python scripts/hub_definition.py", file=sys.stderr)
            return 1
        print(f"{shown} matches tap-aha --about")
        return 0
    DEFINITION.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# tap-aha's plugin definition in MeltanoHub's format. Generated by scripts/hub_definition.py from\n"
        "# `tap-aha --about` and meltano.yml; tests/test_hub_definition.py keeps it current.\n"
        "# Use: meltano add extractor tap-aha --from-ref meltano-hub/extractors/tap-aha.yml\n"
    )
    body = yaml.safe_dump(expected, sort_keys=False, allow_unicode=True, width=100)
    DEFINITION.write_text(header + body, encoding="utf-8")
    print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
