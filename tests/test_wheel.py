"""`make wheel`: the wheel a Databricks cluster installs holds the connector and reads Aha! through Spark.

The wheel is built once for the module with `make wheel` and installed, with its own dependencies, into an
empty venv to which only PySpark and pyarrow are added (what a Databricks runtime provides): this checkout's
own, linked from its dev venv rather than unpacked again (half a gigabyte). A table is read there through the
PySpark data source, against the fake Aha! server, in that venv's Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing as t
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest
from filelock import FileLock

from tests.conftest import REPO
from tests.fake_aha import FakeAha

# Run by the clean venv's Python: read one table through the data source, say where tap_aha came from.
READ_IDEAS = """
import json, os, sys
os.environ["PYSPARK_PYTHON"] = sys.executable
from pyspark.sql import SparkSession
import tap_aha
from tap_aha.lakeflow_spark import register_lakeflow_source
url, key = sys.argv[1], sys.argv[2]
spark = (
    SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
    .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.sql.session.timeZone", "UTC").getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
register_lakeflow_source(spark)
frame = (
    spark.read.format("aha").option("tableName", "ideas")
    .option("api_url", url).option("api_key", key).option("requests_per_second", "1000").load()
)
rows = [row.asDict() for row in frame.select("id", "name", "updated_at").collect()]
print(json.dumps({"module": tap_aha.__file__, "rows": rows}, default=str))
spark.stop()
"""


def add_package(site: Path, name: str) -> None:
    """Link an installed distribution of the dev venv (its packages and its dist-info) into `site`."""
    dist = distribution(name)
    tops = {Path(str(file)).parts[0] for file in dist.files or []} - {".."}
    assert tops, name
    for top in tops:
        (site / top).symlink_to(Path(str(dist.locate_file(top))))


# A one-table read needs no optimized code: with the JVM's quick compiler alone Spark starts in half the time.
QUICK_JVM = '--driver-java-options "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC" pyspark-shell'


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, checkout_build_lock: FileLock) -> Path:
    """`make wheel`, into a folder of its own."""
    dist = tmp_path_factory.mktemp("dist")
    with checkout_build_lock:
        subprocess.run(
            ["make", "--no-print-directory", "wheel", f"DIST={dist}", f"PYTHON={sys.executable}"],
            cwd=REPO, check=True, capture_output=True, text=True,
        )  # fmt: skip
    built = list(dist.glob("tap_aha-*-py3-none-any.whl"))
    assert len(built) == 1, built
    return built[0]


def test_wheel_holds_every_module_and_schema_and_nothing_else(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    package = REPO / "tap_aha"
    needed = {path.relative_to(REPO).as_posix() for path in package.rglob("*.py")}
    needed |= {path.relative_to(REPO).as_posix() for path in (package / "schemas").glob("*.json")}
    assert needed, "no sources found"
    assert needed <= names, sorted(needed - names)
    packaged = {name for name in names if name.startswith("tap_aha/") and name.endswith((".py", ".json"))}
    assert packaged == needed, sorted(packaged - needed)  # no module left over from an earlier build
    assert "tap_aha/py.typed" in names
    assert {"tap_aha/lakeflow.py", "tap_aha/lakeflow_spark.py", "tap_aha/spark_schema.py"} <= names
    assert not {name for name in names if name.startswith(("tests/", "scripts/", "bench/"))}
    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    requires = [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist")
    ]
    runtime = [req for req in requires if "extra ==" not in req]
    assert not [req for req in runtime if req.lower().startswith(("pyspark", "pyarrow"))], runtime
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    assert "tap-aha = tap_aha.tap:TapAha.cli" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17+ (none on PATH)")
def test_wheel_reads_a_table_through_pyspark_in_a_clean_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-compile", str(wheel)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-4000:]
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    for name in ("pyspark", "py4j", "pyarrow"):
        add_package(site, name)
    with FakeAha() as fake:
        fake.seed(15)
        proc = subprocess.run(
            [str(python), "-c", READ_IDEAS, fake.url, fake.api_key],
            cwd=tmp_path, env={**env, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_SUBMIT_ARGS": QUICK_JVM},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-6000:]
        expected = {idea["id"]: idea["name"] for idea in fake.ideas()}
    read: dict[str, t.Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(read["module"]).is_relative_to(venv), read["module"]  # the wheel's code, not the checkout's
    assert {row["id"]: row["name"] for row in read["rows"]} == expected
    assert len(read["rows"]) == len(expected) == 15
    assert all(row["updated_at"] for row in read["rows"])
