"""What the Meltano tests share: the Meltano `make test` installs, a clean environment for it, `--about`.

tests/test_meltano.py (this project's meltano.yml) and tests/test_hub_definition.py (a new project that adds
the tap from its MeltanoHub definition) run the same Meltano the same way and check settings against the same
`tap-aha --about`. scripts/hub_definition.py keeps its own `--about` call: a script does not import tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

from tests.conftest import REPO

MELTANO = Path(os.environ.get("MELTANO_FOR_TESTS") or REPO / ".venv" / "meltano" / "bin" / "meltano")
MISSING = f"{MELTANO} is missing: `make test` installs Meltano into .venv/meltano"
# JSON schema type of a tap setting -> the Meltano `kind` that carries it.
KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "object": "object",
}


def tap_about() -> dict[str, t.Any]:
    """What `tap-aha --about --format json` of this checkout says."""
    proc = subprocess.run(
        [sys.executable, "-m", "tap_aha", "--about", "--format", "json"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    data: dict[str, t.Any] = json.loads(proc.stdout)
    return data


def meltano_kind(schema: dict[str, t.Any]) -> str:
    """The Meltano kind a setting with this JSON schema needs (date-time strings: date_iso8601)."""
    if schema.get("format") == "date-time":
        return "date_iso8601"
    return KINDS[next(kind for kind in schema.get("type", []) if kind != "null")]


def meltano_env(**extra: str) -> dict[str, str]:
    """This process's environment without the tap's, loaders' and Meltano's own settings, plus `extra`.

    A developer's TAP_AHA_API_KEY or MELTANO_PROJECT_ROOT must not leak into the project a test runs.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TAP_AHA_", "TARGET_", "MELTANO_", "VIRTUAL_ENV"))
    }
    env["MELTANO_CLI_DISABLE_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def run_meltano(*args: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    """The stdout of a Meltano command that must succeed; on failure, all it said."""
    proc = subprocess.run(
        [str(MELTANO), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"meltano {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr[-6000:]}"
    return proc.stdout
