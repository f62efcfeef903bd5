"""The Meltano project: meltano.yml agrees with the tap, and real Meltano runs load, upsert and resume.

The end-to-end tests run the real `meltano install` and `meltano run tap-aha target-duckdb` (the Meltano that
`make test` installs in .venv/meltano) against the fake Aha! server, with Meltano's system folder, system
database and DuckDB file in temporary folders, and read the loaded tables with the loader's own duckdb.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import typing as t
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]  # singer-sdk's; stubs only with types-PyYAML
from filelock import FileLock

from tap_aha.tap import STREAM_NAMES
from tests.conftest import REPO
from tests.fake_aha import FakeAha, parse_ts
from tests.meltano_helpers import MELTANO, MISSING, meltano_env, meltano_kind, run_meltano, tap_about

PLUGINS = ("tap-aha", "target-duckdb")
STATE_ID = "dev:tap-aha-to-target-duckdb"
CHILDREN = ("idea_proxy_votes", "idea_comments", "idea_portal_comments")
COMPANIONS = ("idea_votes", "idea_organizations", "idea_users", "idea_portals", "products", "idea_categories")
ROADMAP = (
    "features", "requirements", "epics", "releases", "release_phases", "initiatives", "goals", "key_results",
    "to_dos", "users", "idea_themes",
)  # fmt: skip
FAST = {"TAP_AHA_REQUESTS_PER_MINUTE": "1000000", "TAP_AHA_REQUESTS_PER_SECOND": "100000"}


# --------------------------------------------------------------------------- meltano.yml and the tap


@pytest.fixture(scope="module")
def project() -> dict[str, t.Any]:
    data: dict[str, t.Any] = yaml.safe_load((REPO / "meltano.yml").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def about() -> dict[str, t.Any]:
    return tap_about()


def plugin(project: dict[str, t.Any], kind: str, name: str) -> dict[str, t.Any]:
    found: list[dict[str, t.Any]] = [p for p in project["plugins"][kind] if p["name"] == name]
    assert len(found) == 1, f"{name} declared {len(found)} times"
    return found[0]


def settings(declared: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    names = [s["name"] for s in declared["settings"]]
    assert len(names) == len(set(names)), "a setting is declared twice"
    return {s["name"]: s for s in declared["settings"]}


def test_tap_is_a_custom_extractor_installed_from_this_repository(project: dict[str, t.Any]) -> None:
    tap = plugin(project, "extractors", "tap-aha")
    assert (tap["namespace"], tap["pip_url"], tap["executable"]) == ("tap_aha", "-e .", "tap-aha")
    for kind in ("extractors", "loaders"):
        for declared in project["plugins"][kind]:
            assert "variant" not in declared, (
                f"{declared['name']}: a variant makes `meltano install` ask MeltanoHub"
            )
            assert {"namespace", "pip_url", "executable"} <= declared.keys(), declared["name"]


def test_capabilities_are_those_of_tap_aha_about(project: dict[str, t.Any], about: dict[str, t.Any]) -> None:
    declared = plugin(project, "extractors", "tap-aha")["capabilities"]
    assert len(declared) == len(set(declared))
    assert set(declared) == set(about["capabilities"])
    assert {"state", "catalog", "discover", "about", "stream-maps", "schema-flattening"} <= set(declared)


def test_every_tap_setting_is_declared_with_its_kind(
    project: dict[str, t.Any], about: dict[str, t.Any]
) -> None:
    declared = settings(plugin(project, "extractors", "tap-aha"))
    properties: dict[str, dict[str, t.Any]] = about["settings"]["properties"]
    assert set(declared) == set(properties), "meltano.yml and `tap-aha --about` list different settings"
    for name, schema in properties.items():
        assert declared[name].get("kind") == meltano_kind(schema), name
        if "value" in declared[name]:  # a default here must be the tap's own
            assert declared[name]["value"] == schema.get("default"), name


def test_secrets_are_sensitive_and_nothing_else(project: dict[str, t.Any], about: dict[str, t.Any]) -> None:
    declared = settings(plugin(project, "extractors", "tap-aha"))
    for name, schema in about["settings"]["properties"].items():
        secret = bool(schema.get("secret") or schema.get("writeOnly"))
        assert bool(declared[name].get("sensitive")) is secret, name
        assert declared[name].get("kind") != "password", f"{name}: kind password is deprecated"
    assert declared["api_key"]["sensitive"] is True


def test_ideas_is_selected_whenever_a_child_stream_is(project: dict[str, t.Any]) -> None:
    select = plugin(project, "extractors", "tap-aha")["select"]
    assert any(pattern.split(".")[0] in CHILDREN for pattern in select)
    assert "ideas.*" in select
    assert not any(pattern.startswith("!ideas") for pattern in select)


def test_every_stream_is_selected_by_default(project: dict[str, t.Any]) -> None:
    select = plugin(project, "extractors", "tap-aha")["select"]
    assert [pattern.split(".")[0] for pattern in select] == list(STREAM_NAMES)
    assert set(STREAM_NAMES) == {"ideas", *CHILDREN, *COMPANIONS, *ROADMAP}


def test_duckdb_loader_is_pinned_to_a_duckdb_that_loads_every_row(project: dict[str, t.Any]) -> None:
    loader = plugin(project, "loaders", "target-duckdb")
    pins = dict(re.findall(r"([\w-]+)==([\d.]+)", loader["pip_url"]))
    assert pins["target-duckdb"] == "0.8.0"
    # DuckDB 1.3+ sniffs a header in target-duckdb's `COPY ... FROM 'x.csv'` and drops a row per batch.
    assert tuple(int(part) for part in pins["duckdb"].split(".")) < (1, 3)
    config = loader["config"]
    assert config["filepath"].endswith("/aha.duckdb")
    assert config["default_target_schema"]
    assert config["primary_key_required"] is True
    assert config["hard_delete"] is True  # the tap's tombstones delete rows


def test_databricks_loader_is_declared_as_a_custom_upserting_target(project: dict[str, t.Any]) -> None:
    loader = plugin(project, "loaders", "target-databricks")
    assert loader["pip_url"] == "git+https://github.com/MeltanoLabs/target-databricks.git"
    assert str(loader["python"]) == "3.13"
    declared = settings(loader)
    assert set(declared) == {
        "server_hostname", "http_path", "auth_type", "access_token", "client_id", "client_secret",
        "catalog", "default_target_schema", "load_method", "hard_delete", "add_record_metadata",
    }  # fmt: skip
    assert {name for name, s in declared.items() if s.get("sensitive")} == {"access_token", "client_secret"}
    assert all(s.get("kind") for s in declared.values())
    assert declared["load_method"]["value"] == "upsert"


def test_project_runs_offline_with_dev_and_prod(project: dict[str, t.Any]) -> None:
    assert project["send_anonymous_usage_stats"] is False
    assert project["cli"]["disable_version_check"] is True
    assert project["project_id"]
    assert project["default_environment"] == "dev"
    assert {"dev", "prod"} <= {env["name"] for env in project["environments"]}
    assert project.get("state_backend", {}).get("uri", "systemdb") == "systemdb"


# --------------------------------------------------------------------------- real Meltano runs


@dataclass
class Meltano:
    """Meltano with the plugins installed once for this module, in a temporary system folder."""

    sys_dir: Path
    env: dict[str, str]

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
        return run_meltano(*args, cwd=REPO, env={**self.env, **(env or {})}, timeout=timeout)

    @property
    def duckdb_python(self) -> Path:
        return self.sys_dir / "loaders" / "target-duckdb" / "venv" / "bin" / "python"

    def tables(self, database: Path) -> dict[str, list[dict[str, t.Any]]]:
        """Every row of the ten tables, read with the loader's own duckdb."""
        code = (
            "import json, sys, duckdb\n"
            "con = duckdb.connect(sys.argv[1], read_only=True)\n"
            "out = {}\n"
            "for table in sys.argv[2:]:\n"
            "    cur = con.execute(f'select * from tap_aha.{table}')\n"
            "    names = [d[0] for d in cur.description]\n"
            "    out[table] = [dict(zip(names, row)) for row in cur.fetchall()]\n"
            "print(json.dumps(out, default=str))\n"
        )
        proc = subprocess.run(
            [str(self.duckdb_python), "-c", code, str(database), "ideas", *CHILDREN, *COMPANIONS],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows: dict[str, list[dict[str, t.Any]]] = json.loads(proc.stdout)
        return rows


@pytest.fixture(scope="module")
def meltano(tmp_path_factory: pytest.TempPathFactory, checkout_build_lock: FileLock) -> Meltano:
    """`meltano install tap-aha target-duckdb`, as `make run` does it, once for the module.

    `make run` installs again only if meltano.yml changed: Meltano skips a plugin whose venv is current.
    """
    assert MELTANO.is_file(), MISSING
    sys_dir = tmp_path_factory.mktemp("meltano") / ".meltano"
    runner = Meltano(sys_dir, meltano_env(MELTANO_SYS_DIR_ROOT=str(sys_dir)))
    with checkout_build_lock:  # tap-aha is installed from this checkout, built in place
        runner("install", *PLUGINS, timeout=600)
    assert (sys_dir / "extractors" / "tap-aha" / "venv" / "bin" / "tap-aha").exists()
    assert runner.duckdb_python.exists()
    assert not (sys_dir / "loaders" / "target-databricks").exists()
    return runner


@pytest.fixture
def run_env(meltano: Meltano, tmp_path: Path) -> dict[str, str]:
    """A system database (so a state) and a DuckDB file of this test's own."""
    return {
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "TARGET_DUCKDB_FILEPATH": str(tmp_path / "aha.duckdb"),
    }


def utc(value: str) -> datetime:
    """A timestamp from DuckDB (naive UTC) or from Aha! (ISO with Z), comparable."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def idea_of_request(path: str) -> str | None:
    match = re.fullmatch(r"/api/v1/ideas/([^/]+)/(endorsements|comments)", path)
    return match.group(1) if match else None


def test_meltano_run_loads_everything_then_only_the_changes(
    meltano: Meltano, run_env: dict[str, str]
) -> None:
    database = Path(run_env["TARGET_DUCKDB_FILEPATH"])
    with FakeAha() as fake:
        fake.seed(80)
        env = {**run_env, **FAST, "TAP_AHA_API_URL": fake.url, "TAP_AHA_API_KEY": fake.api_key}

        meltano("run", *PLUGINS, env=env)  # the default environment, dev
        first = meltano.tables(database)
        votes = {v["id"]: iid for iid in fake.idea_ids() for v in fake.votes(iid)}
        comments = {c["id"]: iid for iid in fake.idea_ids() for c in fake.comments(iid)}
        portal = {
            c["id"]: iid for iid in fake.idea_ids() for c in fake.portal_comments(iid, include_spam=False)
        }
        assert sorted(r["id"] for r in first["ideas"]) == sorted(fake.idea_ids())
        assert {r["id"]: r["idea_id"] for r in first["idea_proxy_votes"]} == votes
        assert {r["id"]: r["idea_id"] for r in first["idea_comments"]} == comments
        assert len(first["idea_proxy_votes"]) == len(votes) > 0
        assert len(first["idea_comments"]) == len(comments) > 0
        assert {r["id"]: r["idea_id"] for r in first["idea_portal_comments"]} == portal
        assert len(first["idea_portal_comments"]) == len(portal) > 0
        every_vote = {v["id"]: iid for iid in fake.idea_ids() for v in fake.votes(iid, proxy_only=False)}
        assert {r["id"]: r["idea_id"] for r in first["idea_votes"]} == every_vote
        organizations = {o["id"]: o["revenue"] for o in fake.companions.organizations()}
        assert {r["id"]: r["revenue"] for r in first["idea_organizations"]} == organizations
        assert any(revenue for revenue in organizations.values())
        assert sorted(r["id"] for r in first["idea_users"]) == sorted(
            u["id"] for u in fake.companions.idea_users()
        )
        assert len(first["idea_portals"]) == len(fake.companions.portals()) > 0
        assert sorted(r["id"] for r in first["products"]) == sorted(
            p["id"] for p in fake.companions.products()
        )
        categories = {c["id"]: pid for pid, cats in fake.companions.categories().items() for c in cats}
        assert {r["id"]: r["product_id"] for r in first["idea_categories"]} == categories

        state = json.loads(meltano("state", "get", STATE_ID, env=env))["singer_state"]
        bookmark = state["bookmarks"]["ideas"]["replication_key_value"]
        assert parse_ts(bookmark) == max(parse_ts(i["updated_at"]) for i in fake.ideas())

        ids = fake.idea_ids()
        renamed = fake.update_idea(ids[3], name="Renamed: export roadmaps as PDF", workflow_status="Shipped")
        vote = fake.add_vote(ids[10])
        comment = fake.add_comment(ids[20])
        portal_comment = fake.add_portal_comment(ids[30])
        added = fake.add_idea(name="A brand-new idea")
        customer = fake.companions.update_organization(next(iter(organizations)), revenue="123456.5")
        # Deletes: a vote, a comment and a portal comment of ideas left alone, and an idea with its children.
        alone = [i for i in ids[40:] if fake.votes(i) or fake.comments(i) or fake.portal_comments(i)]
        gone_vote = fake.delete_vote(next(v["id"] for i in alone for v in fake.votes(i)))
        gone_comment = fake.delete_comment(next(c["id"] for i in alone for c in fake.comments(i)))
        portal_of = [c for i in alone for c in fake.portal_comments(i, include_spam=False)]
        gone_portal = fake.delete_portal_comment(portal_of[0]["id"])
        gone_idea = next(i for i in alone if fake.votes(i) and i not in {gone_vote["idea_id"]})
        gone_children = {
            "idea_proxy_votes": {v["id"] for v in fake.votes(gone_idea)},
            "idea_votes": {v["id"] for v in fake.votes(gone_idea, proxy_only=False)},
            "idea_comments": {c["id"] for c in fake.comments(gone_idea)},
            "idea_portal_comments": {c["id"] for c in fake.portal_comments(gone_idea)},
        }
        fake.delete_idea(gone_idea)
        fake.clear_requests()

        meltano("run", *PLUGINS, env=env)
        second = meltano.tables(database)
        changed = {i["id"] for i in fake.ideas() if parse_ts(i["updated_at"]) >= parse_ts(bookmark)}
        requests = list(fake.requests)

    # The second run started from the bookmark Meltano stored, and read the changed ideas' children only.
    listings = [r for r in requests if r.path == "/api/v1/ideas"]
    assert listings
    assert all(parse_ts(r.query["updated_since"]) == parse_ts(bookmark) for r in listings)
    assert {ids[3], ids[10], ids[20], ids[30], added["id"]} <= changed
    assert len(changed) < len(ids) // 4
    assert {idea_of_request(r.path) for r in requests if idea_of_request(r.path)} <= changed

    # Deletes applied: the deleted idea, vote and comments are gone, and so are the deleted idea's children.
    assert gone_idea not in {r["id"] for r in second["ideas"]}
    assert gone_vote["id"] not in {r["id"] for r in second["idea_proxy_votes"]}
    assert gone_comment["id"] not in {r["id"] for r in second["idea_comments"]}
    assert gone_portal["id"] not in {r["id"] for r in second["idea_portal_comments"]}
    for table, children in gone_children.items():
        assert not children & {r["id"] for r in second[table]}, table
    assert all(r["_sdc_deleted_at"] is None for rows in second.values() for r in rows)
    votes = {
        v: i for v, i in votes.items() if v != gone_vote["id"] and v not in gone_children["idea_proxy_votes"]
    }
    comments = {
        c: i
        for c, i in comments.items()
        if c != gone_comment["id"] and c not in gone_children["idea_comments"]
    }
    portal = {
        c: i
        for c, i in portal.items()
        if c != gone_portal["id"] and c not in gone_children["idea_portal_comments"]
    }

    # Upserts: one row per idea, the renamed one with its new values; the new idea and children added.
    assert len(second["ideas"]) == len({r["id"] for r in second["ideas"]}) == len(ids)
    rows = [r for r in second["ideas"] if r["id"] == ids[3]]
    assert len(rows) == 1
    assert rows[0]["name"] == renamed["name"]
    assert json.loads(rows[0]["workflow_status"])["name"] == "Shipped"
    assert utc(rows[0]["updated_at"]) == parse_ts(renamed["updated_at"])
    voted = next(r for r in second["ideas"] if r["id"] == ids[10])
    assert voted["endorsements_count"] == fake.idea(ids[10])["endorsements_count"]
    assert next(r for r in second["ideas"] if r["id"] == added["id"])["name"] == "A brand-new idea"
    new_votes = {r["id"]: r["idea_id"] for r in second["idea_proxy_votes"]}
    new_comments = {r["id"]: r["idea_id"] for r in second["idea_comments"]}
    assert new_votes == {**votes, vote["id"]: ids[10]}
    assert new_comments == {**comments, comment["id"]: ids[20]}
    new_portal = {r["id"]: r["idea_id"] for r in second["idea_portal_comments"]}
    assert new_portal == {**portal, portal_comment["id"]: ids[30]}  # repeats merged on id

    # The companions: the changed organization upserted, the new vote added.
    assert {r["id"]: r["revenue"] for r in second["idea_organizations"]} == {
        **organizations,
        customer["id"]: "123456.5",
    }
    every_vote = {
        v: i for v, i in every_vote.items() if v != gone_vote["id"] and v not in gone_children["idea_votes"]
    }
    assert {r["id"]: r["idea_id"] for r in second["idea_votes"]} == {**every_vote, vote["id"]: ids[10]}
    org_requests = [r for r in requests if r.path == "/api/v1/idea_organizations"]
    assert len(org_requests) == 1
    assert org_requests[0].query["updated_since"]

    # What the second run loaded (inserted or updated) is exactly the changes and their children.
    for table in ("ideas", *CHILDREN):
        before = first[table]
        last = max(utc(r["_sdc_batched_at"]) for r in before)
        loaded = [r for r in second[table] if utc(r["_sdc_batched_at"]) > last]
        assert loaded, table
        touched = {r["id"] for r in loaded} if table == "ideas" else {r["idea_id"] for r in loaded}
        assert touched <= changed, table
    assert {r["id"] for r in second["ideas"] if utc(r["_sdc_batched_at"]) > last_batch(first)} == changed

    state = json.loads(meltano("state", "get", STATE_ID, env=env))["singer_state"]
    assert parse_ts(state["bookmarks"]["ideas"]["replication_key_value"]) > parse_ts(bookmark)


def last_batch(tables: dict[str, list[dict[str, t.Any]]]) -> datetime:
    return max(utc(r["_sdc_batched_at"]) for r in tables["ideas"])


# --------------------------------------------------------------------------- `make run`'s script


def run_local(meltano: Meltano, env: dict[str, str]) -> str:
    """scripts/run_local.py with Meltano's Python, as `make run` runs it."""
    proc = subprocess.run(
        [str(MELTANO.with_name("python")), str(REPO / "scripts" / "run_local.py")],
        cwd=REPO, env={**meltano.env, **env}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return proc.stdout


def counts(output: str) -> dict[str, tuple[int, int]]:
    found = re.findall(r"tap_aha\.(\w+)\s+(\d+) rows,\s+(\d+) new or updated this run", output)
    return {table: (int(rows), int(new)) for table, rows, new in found}


def deleted(output: str) -> dict[str, int]:
    return {table: int(n) for table, n in re.findall(r"tap_aha\.(\w+)\s+\d+ rows,.* (\d+) deleted", output)}


def run_ask_line(output: str, env: dict[str, str]) -> str:
    """Run the `make ask` command the script printed last, as a user would paste it (from the repository)."""
    line = output.rstrip().splitlines()[-1].strip()
    argv = shlex.split(line)
    assert argv[:2] == ["make", "ask"], line
    proc = subprocess.run(
        argv,
        cwd=REPO,
        env={**env, "MAKEFLAGS": "--no-print-directory"},
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def test_make_run_uses_the_simulator_without_credentials(meltano: Meltano, run_env: dict[str, str]) -> None:
    database = run_env["TARGET_DUCKDB_FILEPATH"]
    first = run_local(meltano, run_env)
    assert "Source: the offline Aha! simulator, 300 fake ideas" in first
    assert f"Loaded into: {database}" in first
    assert "Meltano environment 'simulator'" in first
    assert counts(first)["ideas"] == (299, 299)  # one of the 300 deleted before the first run
    assert set(counts(first)) == set(STREAM_NAMES)
    assert all(rows == new > 0 for rows, new in counts(first).values())
    assert "Deletes applied this run: 0 rows removed" in first
    shipped = first.split("Which customer asks shipped", 1)[1].splitlines()
    assert shipped[1].split() == [
        "idea",
        "|",
        "votes",
        "|",
        "feature_status",
        "|",
        "release",
        "|",
        "release_date",
    ]
    assert shipped[8].strip() == "(5 rows)"  # header, rule, the five most-voted ideas with a feature
    ranking = first.split("voted for them:", 1)[1].splitlines()
    assert re.fullmatch(r"\s+reference_num \| name\s+\| organizations \|\s+revenue", ranking[1])
    assert ranking[8].strip() == "(5 rows)"  # header, rule, the five ideas
    for row in ranking[3:8]:  # reference, name, organizations (at least one), revenue
        assert re.fullmatch(r"\s+[A-Z0-9]+-I-\d+ +\| .+ \|\s+[1-9]\d* \|\s+[\d,.]+", row), row
    answer = run_ask_line(first, meltano.env)
    assert answer.splitlines()[0].split() == ["name", "|", "votes"]
    assert answer.rstrip().endswith("(3 rows)")

    second = run_local(meltano, run_env)
    ideas, changed = counts(second)["ideas"]
    gone = deleted(second)
    assert gone["ideas"] == 1  # the simulator deleted an idea the first run loaded, and so did DuckDB
    assert all(gone[table] >= 1 for table in ("ideas", *CHILDREN, "features"))
    assert counts(second)["features"][1] >= 1  # the feature shipped
    assert f"Deletes applied this run: {sum(gone.values())} rows removed" in second
    assert ideas >= 298
    assert 1 <= changed <= 10  # the simulator's handful of changes (and ideas tied with the bookmark)
    for table in ("idea_proxy_votes", "idea_comments"):
        assert counts(second)[table][0] >= counts(first)[table][0] + 2 - gone[table], table
    assert counts(second)["idea_votes"][0] >= counts(first)["idea_votes"][0] + 2 - gone.get("idea_votes", 0)
    organizations, changed_organizations = counts(second)["idea_organizations"]
    assert organizations == counts(first)["idea_organizations"][0]
    assert 1 <= changed_organizations <= 2  # the changed one (and the one at the bookmark: inclusive filter)
    url = re.search(r"fake ideas at (http://\S+)", second)
    assert url is not None
    address = urlsplit(url.group(1))
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((address.hostname, address.port or 80), timeout=2),
    ):
        pass  # the simulator is gone


def test_make_run_reads_aha_when_credentials_are_set(meltano: Meltano, run_env: dict[str, str]) -> None:
    with FakeAha() as aha:  # stands in for the real Aha!: api_url overrides the subdomain's address
        aha.seed(30)
        env = {
            **run_env, **FAST, "TAP_AHA_API_KEY": aha.api_key, "TAP_AHA_SUBDOMAIN": "fakeco",
            "TAP_AHA_API_URL": aha.url,
        }  # fmt: skip
        output = run_local(meltano, env)
        assert any(r.path == "/api/v1/ideas" for r in aha.requests)
    assert "Source: Aha! account 'fakeco'" in output
    assert "simulator" not in output
    assert "Meltano environment 'dev'" in output
    assert counts(output)["ideas"] == (30, 30)


def test_meltano_invoke_doctor_checks_the_account(meltano: Meltano, run_env: dict[str, str]) -> None:
    with FakeAha(comments_count="both") as fake:
        fake.seed(40)
        fake.roadmap.lists_honour_fields = True  # else the roadmap's stub lists warn of a GET per record
        env = {**run_env, **FAST, "TAP_AHA_API_URL": fake.url, "TAP_AHA_API_KEY": fake.api_key}
        table = meltano("invoke", "tap-aha", "--doctor", env=env)
        report = json.loads(meltano("invoke", "tap-aha", "--doctor", "--format", "json", env=env))
        assert {r.method for r in fake.requests} == {"GET"}
    assert table.splitlines()[-1].startswith("A sync can run (0 warnings")  # "; N not checked ..." may follow
    assert report["facts"]["comments_count_counts"] == "both"
    assert report["facts"]["listings"]["ideas"] == {"fields_honoured": True, "updated_since_honoured": True}
    assert fake.api_key not in table
