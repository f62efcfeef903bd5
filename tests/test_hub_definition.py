"""The MeltanoHub plugin definition says what `tap-aha --about` says, and the README's commands work with it.

The end-to-end test does what the README shows a Meltano user: `meltano init` a new project, `meltano add
--plugin-type extractor tap-aha --from-ref <the definition>` (its pip_url pointed at this checkout),
`meltano config set`, `meltano run` into a loader, against the fake Aha! server.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]  # singer-sdk's; stubs only with types-PyYAML
from filelock import FileLock

from tests.conftest import REPO
from tests.fake_aha import FakeAha
from tests.meltano_helpers import MELTANO, MISSING, meltano_env, meltano_kind, run_meltano, tap_about

DEFINITION = REPO / "meltano-hub" / "extractors" / "tap-aha.yml"
# A small loader for the test's own project, the way a user adds one that is not on MeltanoHub.
JSONL_LOADER = {
    "name": "target-jsonl",
    "namespace": "target_jsonl",
    "pip_url": "target-jsonl==0.1.4",
    "executable": "target-jsonl",
    "settings": [{"name": "destination_path", "kind": "string"}],
}


@pytest.fixture(scope="module")
def definition() -> dict[str, t.Any]:
    data: dict[str, t.Any] = yaml.safe_load(DEFINITION.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def about() -> dict[str, t.Any]:
    return tap_about()


def test_definition_file_is_the_one_the_script_writes() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "hub_definition.py"), "--check"],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_settings_and_capabilities_are_those_of_tap_aha_about(
    definition: dict[str, t.Any], about: dict[str, t.Any]
) -> None:
    assert sorted(definition["capabilities"]) == sorted(about["capabilities"])
    declared = {s["name"]: s for s in definition["settings"]}
    assert len(declared) == len(definition["settings"]), "a setting is declared twice"
    properties: dict[str, dict[str, t.Any]] = about["settings"]["properties"]
    assert list(declared) == list(properties)
    for name, schema in properties.items():
        assert declared[name]["kind"] == meltano_kind(schema), name
        assert declared[name]["description"] == schema.get("description", ""), name
        assert declared[name]["label"], name
        secret = bool(schema.get("secret") or schema.get("writeOnly"))
        assert bool(declared[name].get("sensitive")) is secret, name
    assert declared["api_key"]["sensitive"] is True
    # Whatever satisfies a validation group satisfies the tap: each group holds the required settings.
    required = set(about["settings"].get("required", []))
    for group in definition["settings_group_validation"]:
        assert required <= set(group) <= set(properties), group


def test_definition_has_the_fields_meltanohub_lists(definition: dict[str, t.Any]) -> None:
    for field in ("name", "namespace", "variant", "label", "description", "pip_url", "executable", "repo"):
        assert isinstance(definition.get(field), str), field
        assert definition[field].strip(), field
    assert (definition["name"], definition["namespace"], definition["executable"]) == (
        "tap-aha", "tap_aha", "tap-aha",
    )  # fmt: skip
    assert definition["pip_url"] == f"git+{definition['repo']}.git"
    assert definition["repo"].startswith("https://")
    assert definition["docs"].startswith(definition["repo"])
    assert definition["keywords"]
    assert definition["settings_group_validation"] == [["api_key", "subdomain"], ["api_key", "api_url"]]


def readme_meltano_commands() -> list[str]:
    """The `meltano ...` lines of the README's Meltano section, comments dropped."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using it from your own Meltano project", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("meltano ")]


def test_readme_commands_add_configure_and_run_the_tap_in_a_new_project(
    tmp_path: Path, checkout_build_lock: FileLock
) -> None:
    assert MELTANO.is_file(), MISSING
    commands = readme_meltano_commands()
    assert [c.split()[:3] for c in commands] == [
        ["meltano", "add", "--plugin-type"],
        ["meltano", "config", "set"],
        ["meltano", "config", "set"],
        ["meltano", "run", "tap-aha"],
    ]
    local = yaml.safe_load(DEFINITION.read_text(encoding="utf-8"))
    local["pip_url"] = str(REPO)  # the checkout, not the published repository
    reference = tmp_path / "tap-aha.yml"
    reference.write_text(yaml.safe_dump(local), encoding="utf-8")
    loader = tmp_path / "target-jsonl.yml"
    loader.write_text(yaml.safe_dump(JSONL_LOADER), encoding="utf-8")
    env = meltano_env()
    project = tmp_path / "project"

    def meltano(*args: str) -> str:
        return run_meltano(*args, cwd=project if project.exists() else tmp_path, env=env)

    meltano("init", str(project), "--no-usage-stats")
    meltano("add", "--plugin-type", "loader", "target-jsonl", "--from-ref", str(loader))
    output = tmp_path / "jsonl"
    output.mkdir()
    meltano("config", "set", "target-jsonl", "destination_path", str(output))
    with FakeAha() as fake:
        fake.seed(12)
        for command in commands:
            argv = command.split()[1:]
            given = {"YOUR_API_KEY": fake.api_key, "target-postgres": "target-jsonl"}
            argv = [given.get(arg, arg) for arg in argv]
            argv = [str(reference) if arg.endswith("extractors/tap-aha.yml") else arg for arg in argv]
            if argv[0] == "run":  # the subdomain's address is the fake's; the loader is the test's own
                meltano("config", "set", "tap-aha", "api_url", fake.url)
            if argv[0] == "add":  # pip builds the checkout in place to install the tap
                with checkout_build_lock:
                    meltano(*argv)
            else:
                meltano(*argv)
        assert any(r.path == "/api/v1/ideas" for r in fake.requests)
        expected = sorted(fake.idea_ids())

    added = yaml.safe_load((project / "meltano.yml").read_text(encoding="utf-8"))
    assert [p["name"] for p in added["plugins"]["extractors"]] == ["tap-aha"]
    assert "utilities" not in added["plugins"]
    assert (project / ".meltano" / "extractors" / "tap-aha" / "venv" / "bin" / "tap-aha").exists()
    assert fake.api_key not in (project / "meltano.yml").read_text(encoding="utf-8")  # the secret is in .env
    assert fake.api_key in (project / ".env").read_text(encoding="utf-8")
    files = {re.sub(r"-\d{8}T\d{6}\.jsonl$", "", f.name): f for f in output.glob("*.jsonl")}
    assert {"ideas", "idea_comments", "idea_votes", "products"} <= files.keys()
    ideas = [json.loads(line) for line in files["ideas"].read_text(encoding="utf-8").splitlines()]
    assert sorted(idea["id"] for idea in ideas) == expected
    state = json.loads(meltano("state", "get", "dev:tap-aha-to-target-jsonl"))
    assert state["singer_state"]["bookmarks"]["ideas"]["replication_key_value"]
