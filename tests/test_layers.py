"""The package's shape: one floor per module, no import circles, the SDK's private surface in one module."""

from __future__ import annotations

import ast
import inspect
import re
import typing as t
from pathlib import Path

from singer_sdk import Tap
from singer_sdk.plugin_base import PluginBase
from singer_sdk.streams import RESTStream, Stream

PACKAGE = Path(__file__).resolve().parents[1] / "tap_aha"
# Each module's floor: a module imports only modules on lower floors, or on its own without a cycle.
BASE = (
    "__init__", "errors", "timestamps", "settings", "inputs", "sdk", "ratelimit", "progress", "prefetch",
    "listings", "vote_index", "first_sync",
)  # fmt: skip
FLOORS: dict[str, int] = {
    **dict.fromkeys(BASE, 0),
    **dict.fromkeys(("client", "comment_counts"), 1),
    **dict.fromkeys(("streams", "companions", "roadmap", "deletes"), 2),
    **dict.fromkeys(("doctor", "tap", "__main__"), 3),
    **dict.fromkeys(
        (
            "lakeflow_deletes",
            "lakeflow_options",
            "lakeflow_offsets",
            "spark_schema",
            "lakeflow",
            "lakeflow_spark",
        ),
        4,
    ),
}
SDK_MODULE = "sdk"  # the one module that may use the SDK's private and @final surface


def modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.glob("*.py"))}


def imports_of(tree: ast.Module) -> set[str]:
    """The tap_aha modules a module imports, TYPE_CHECKING blocks and function bodies included."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tap_aha":
                found.update(alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists())
            elif node.module.startswith("tap_aha."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("tap_aha."))
    return found


def test_every_module_has_a_floor() -> None:
    assert set(modules()) == set(FLOORS), "add a new module to FLOORS (settings < client < streams < tap)"


def test_no_module_imports_a_higher_floor() -> None:
    wrong = [
        f"{name} (floor {FLOORS[name]}) imports {other} (floor {FLOORS[other]})"
        for name, tree in modules().items()
        for other in imports_of(tree)
        if FLOORS[other] > FLOORS[name]
    ]
    assert wrong == []


def test_no_import_circles() -> None:
    graph = {name: imports_of(tree) for name, tree in modules().items()}

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for other in graph[path[-1]]:
            if other == start:
                return [*path, start]
            if other not in path:
                found = cycle_from(start, [*path, other])
                if found:
                    return found
        return None

    cycles = [" -> ".join(cycle) for name in graph if (cycle := cycle_from(name, [name]))]
    assert cycles == []


def sdk_private_names() -> tuple[set[str], set[str]]:
    """The private attribute names and the @final method names of the SDK classes tap-aha builds on."""
    private: set[str] = set()
    final: set[str] = set()
    for cls in (RESTStream, Stream, Tap, PluginBase):
        for klass in cls.__mro__:
            if not klass.__module__.startswith("singer_sdk"):
                continue
            for name, value in vars(klass).items():
                if name.startswith("_") and not name.startswith("__"):
                    private.add(name)
                function = value.fget if isinstance(value, property) else value
                if getattr(function, "__final__", False):
                    final.add(name)
            private.update(re.findall(r"self\.(_[a-z]\w*)\s*(?::[^=\n]+)?=", inspect.getsource(klass)))
    return private, final


def test_the_sdks_private_surface_is_used_in_one_module_only() -> None:
    private, final = sdk_private_names()
    assert {"_sync_records", "_tap", "_streams", "_request"} <= private  # the scan finds them
    assert {"sync_all", "sync"} <= final
    uses: list[str] = []
    for name, tree in modules().items():
        if name == SDK_MODULE:
            continue
        for node in ast.walk(tree):
            where = f"{name}.py:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Attribute) and node.attr in private:
                uses.append(f"{where} uses {node.attr}")
            elif isinstance(node, ast.FunctionDef) and (node.name in private or node.name in final):
                uses.append(f"{where} defines {node.name}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
                module = t.cast("str", node.module)
                hidden = [a.name for a in node.names if a.name.startswith("_")]
                if hidden or any(part.startswith("_") for part in module.split(".")):
                    uses.append(f"{where} imports {module}.{hidden or '*'}")
    assert uses == [], "move these into tap_aha/sdk.py and list them in its docstring"


def test_the_sdk_module_lists_each_private_name_it_uses() -> None:
    private, final = sdk_private_names()
    source = (PACKAGE / f"{SDK_MODULE}.py").read_text()
    tree = ast.parse(source)
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in private}
    used |= {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and (node.name in private or node.name in final)
    }
    docstring = ast.get_docstring(tree) or ""
    assert used
    assert [name for name in sorted(used) if f".{name}`" not in docstring] == []


def test_the_local_runner_loads_every_stream_of_the_tap() -> None:
    """scripts/run_local.py runs with Meltano's Python, without tap_aha: its tables must follow the tap's."""
    from tap_aha.tap import STREAM_NAMES  # noqa: PLC0415 - only this test needs the tap

    tree = ast.parse((PACKAGE.parent / "scripts" / "run_local.py").read_text())
    tables = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(getattr(target, "id", "") == "TABLES" for target in node.targets)
    )
    assert ast.literal_eval(tables) == STREAM_NAMES
