"""The README is a short front door, docs/ holds the rest, and every relative link resolves, anchor too."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing as t
from pathlib import Path
from urllib.parse import unquote

import pytest

from tap_aha.tap import STREAM_NAMES
from tests.conftest import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
README_LIMIT = 15_000  # bytes
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# The SDK's own settings, documented by the SDK (docs/settings.md names them).
SDK_SETTINGS = {
    "stream_maps", "stream_map_config", "faker_config", "flattening_enabled", "flattening_max_depth",
    "flattening_max_key_length", "flattening_separator", "batch_config",
}  # fmt: skip


def prose(text: str) -> str:
    """The text without fenced code blocks, where a `[x](y)` or `# x` is code, not a link or a heading."""
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a link can name in a markdown file (a repeated heading gets -1, -2, ...)."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", prose(path.read_text(encoding="utf-8")), re.MULTILINE):
        base, n = slug(heading), 0
        while (candidate := base if n == 0 else f"{base}-{n}") in found:
            n += 1
        found.add(candidate)
    return found


def broken_links(path: Path) -> list[str]:
    """The relative links of a markdown file whose file or anchor does not exist."""
    broken = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file, _, anchor = unquote(target).partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken


def test_readme_is_at_most_15_kb() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size:,} bytes; move depth into docs/"


def test_readme_keeps_the_two_set_up_commands_ci_runs() -> None:
    readme = README.read_text(encoding="utf-8")
    assert re.search(r"^make run +#", readme, re.MULTILINE)
    assert re.search(r"^make test +#", readme, re.MULTILINE)
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title: `one`, two!\n\n## Title: one, two\n\n[ok](#title-one-two) [ok](#title-one-two-1) "
        "[ok](https://example.com/x.md) [gone](missing.md) [bad](#nowhere)\n\n"
        "```\n[code](not-a-link.md)\n# not a heading\n```\n",
        encoding="utf-8",
    )
    assert [line.split(":")[0] for line in broken_links(page)] == ["missing.md", "#nowhere"]


def test_every_docs_file_is_linked_from_the_readme() -> None:
    linked = {target.partition("#")[0] for target in LINK.findall(README.read_text(encoding="utf-8"))}
    assert DOCS
    assert [doc.name for doc in DOCS if f"docs/{doc.name}" not in linked] == []


def test_every_stream_is_in_the_readme_and_in_docs_streams() -> None:
    readme = README.read_text(encoding="utf-8")
    streams = (REPO / "docs" / "streams.md").read_text(encoding="utf-8")
    for name in STREAM_NAMES:
        assert re.search(rf"^\| `{name}` \|", readme, re.MULTILINE), name
        assert re.search(rf"^\| `{name}` \|", streams, re.MULTILINE), name


def test_every_setting_of_the_tap_is_in_docs_settings() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tap_aha", "--about", "--format", "json"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    about: dict[str, t.Any] = json.loads(proc.stdout)
    settings = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)` \|", settings, re.MULTILINE))
    assert set(about["settings"]["properties"]) - SDK_SETTINGS == documented
