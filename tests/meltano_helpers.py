"""What the Meltano tests share: the Meltano `make test` installs, a clean environment for it, `--about`.

tests/test_meltano.py (this project's meltano.yml) and tests/test_hub_definition.py (a new project that adds
the tap from its MeltanoHub definition) run the same Meltano the same way and check settings against the same
`tap-aha --about`, read as scripts/hub_definition.py reads it (a script does not import tests; tests may
import the script).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from scripts.hub_definition import about as tap_about
from scripts.hub_definition import kind as meltano_kind
from tests.conftest import REPO

MELTANO = Path(os.environ.get("MELTANO_FOR_TESTS") or REPO / ".venv" / "meltano" / "bin" / "meltano")
__all__ = ["MELTANO", "MISSING", "meltano_env", "meltano_kind", "run_meltano", "tap_about"]
MISSING = f"{MELTANO} is missing: `make test` installs Meltano into .venv/meltano"


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
