"""`make run`: install the plugins and run `meltano run tap-aha target-duckdb`, then say what was loaded.

With TAP_AHA_API_KEY and TAP_AHA_SUBDOMAIN set (in the environment or in `.env`), the tap reads your Aha!
account (Meltano environment `dev`, file `output/aha.duckdb`). Without them it reads the offline Aha!
simulator: the tests' fake server (tests/fake_aha.py) seeded with 300 realistic ideas plus a few changes and
deletes made just now, served from a thread of this process while the run lasts (environment `simulator`, file
`output/aha_simulator.duckdb`, a state of its own). Either way Meltano keeps the state, so the next run loads
only what changed. Runs with Meltano's own Python (the Makefile's `.venv/meltano`) and needs only the standard
library and the `meltano` beside it; the tables are read with the loader's own duckdb.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shlex
import subprocess
import sys
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.fake_aha import FakeAha

ROOT = Path(__file__).resolve().parents[1]
MELTANO = str(Path(sys.executable).with_name("meltano"))
PLUGINS = ("tap-aha", "target-duckdb")
TABLES = (
    "ideas", "idea_proxy_votes", "idea_comments", "idea_portal_comments",
    "idea_votes", "idea_organizations", "idea_users", "idea_portals", "products", "idea_categories",
    "features", "requirements", "epics", "releases", "release_phases", "initiatives", "goals", "key_results",
    "to_dos", "users", "idea_themes",
)  # fmt: skip
# Which customer asks shipped: the most-voted ideas promoted to a feature, with the feature's status and its
# release's name and date (docs/roadmap.md).
SHIPPED_ASKS = (
    "select i.reference_num as idea, i.votes,"
    " json_extract_string(f.workflow_status, '$.name') as feature_status,"
    " r.name as release, r.release_date"
    " from {schema}.ideas i"
    " join {schema}.features f on f.id = json_extract_string(i.feature, '$.id')"
    " left join {schema}.releases r on r.id = json_extract_string(f.release, '$.id')"
    " order by i.votes desc nulls last, i.reference_num limit 5"
)
# The ideas whose voting customer organizations bring the most revenue (each organization once per idea).
TOP_BY_REVENUE = (
    "with voters as (select distinct idea_id, json_extract_string(idea_organization, '$.id') as org_id"
    " from {schema}.idea_votes where idea_organization is not null)"
    " select i.reference_num, i.name, count(*) as organizations,"
    " sum(try_cast(o.revenue as double)) as revenue"
    " from voters join {schema}.ideas i on i.id = voters.idea_id"
    " join {schema}.idea_organizations o on o.id = voters.org_id"
    " group by all order by revenue desc nulls last limit 5"
)
# The question `make run` suggests a user ask next (no double quotes: it is shown inside Q="...").
EXAMPLE_QUESTION = "select name, endorsements_count as votes from {schema}.ideas order by votes desc limit 3"
SIMULATED_IDEAS = 300
CREDENTIALS = ("TAP_AHA_API_KEY", "TAP_AHA_SUBDOMAIN")

# Run by the loader's python: rows of each table, the latest _sdc_batched_at, the rows batched after a given
# moment (those this run inserted or updated: target-duckdb sets _sdc_batched_at on both), and the ids (a run
# that applied deletes removed some).
COUNT_ROWS = """
import json, sys
import duckdb
path, schema, since = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
con = duckdb.connect(path, read_only=True)
out = {}
for table, after in since.items():
    name = f'"{schema}"."{table}"'
    try:
        total, last = con.execute(f"select count(*), max(_sdc_batched_at) from {name}").fetchall()[0]
    except duckdb.CatalogException:
        out[table] = [0, None, 0, []]
        continue
    query, args = (f"select count(*) from {name}", []) if after is None else (
        f"select count(*) from {name} where _sdc_batched_at > ?", [after])
    new = con.execute(query, args).fetchall()[0][0]
    ids = [row[0] for row in con.execute(f"select id from {name}").fetchall()]
    out[table] = [total, None if last is None else str(last), new, ids]
print(json.dumps(out))
"""


@dataclass
class Loaded:
    """One table after the run."""

    rows: int
    last_batch: str | None
    this_run: int
    ids: list[str]


@dataclass
class Target:
    """Where target-duckdb loads, and how to read it."""

    database: Path
    schema: str
    python: Path  # the loader venv's python, which has duckdb

    def tables(self, since: dict[str, str | None] | None = None) -> dict[str, Loaded]:
        """Each table's rows, latest batch and rows batched after `since` (all rows without it)."""
        if not self.database.exists():
            return {table: Loaded(0, None, 0, []) for table in TABLES}
        after = json.dumps(since or dict.fromkeys(TABLES))
        proc = subprocess.run(  # noqa: S603 - our own interpreter and script
            [str(self.python), "-c", COUNT_ROWS, str(self.database), self.schema, after],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return {table: Loaded(*values) for table, values in json.loads(proc.stdout).items()}


def main() -> int:
    """Install, run, report; the exit status is Meltano's."""
    env = {**os.environ, "MELTANO_CLI_DISABLE_VERSION_CHECK": "1"}
    real = has_credentials(env)
    environment = "dev" if real else "simulator"
    install_plugins(env)
    config = json.loads(
        meltano(["--environment", environment, "invoke", "--dump=config", "target-duckdb"], env)
    )
    target = Target(
        Path(config["filepath"]),
        config["default_target_schema"],
        sys_dir(env) / "loaders" / "target-duckdb" / "venv" / "bin" / "python",
    )
    target.database.parent.mkdir(parents=True, exist_ok=True)
    before = target.tables()
    started = time.monotonic()
    if real:
        source = f"Aha! account '{env['TAP_AHA_SUBDOMAIN']}' (TAP_AHA_API_KEY and TAP_AHA_SUBDOMAIN are set)"
        say(f"Source: {source}")
        status = run_pipeline(environment, env)
    else:
        with simulator(before) as (fake, changes):
            source = (
                f"the offline Aha! simulator, {SIMULATED_IDEAS} fake ideas at {fake.url} "
                "(TAP_AHA_API_KEY and TAP_AHA_SUBDOMAIN are not both set)"
            )
            say(f"Source: {source}; {changes}")
            status = run_pipeline(environment, simulator_env(env, fake))
    elapsed = time.monotonic() - started
    if status != 0:
        say(f"meltano run failed (exit status {status}); its log is above. Source: {source}.")
        return status
    after = target.tables({table: loaded.last_batch for table, loaded in before.items()})
    print(flush=True)
    say(f"Done in {elapsed:.1f} s. Source: {source}.")
    report(target, environment, after, before)
    return 0


def say(message: str) -> None:
    """A line of our own, set apart from Meltano's log."""
    print(f"==> {message}", flush=True)


def has_credentials(env: dict[str, str]) -> bool:
    """Both Aha! credentials, from the environment or the project's `.env` (which Meltano reads too)."""
    found = {name: env.get(name, "").strip() for name in CREDENTIALS}
    dotenv = ROOT / ".env"
    if dotenv.is_file():
        for line in dotenv.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.strip().removeprefix("export ").partition("=")
            if sep and name.strip() in found and not found[name.strip()]:
                found[name.strip()] = value.strip().strip("'\"")
    env.update({name: value for name, value in found.items() if value})
    if all(found.values()):
        return True
    if any(found.values()):
        missing = " and ".join(name for name, value in found.items() if not value)
        say(f"WARNING: {missing} is not set, so this run reads the offline simulator, not Aha!.")
    return False


def install_plugins(env: dict[str, str]) -> None:
    """`meltano install tap-aha target-duckdb`, skipped while what it installed is still current.

    Current means installed from this very meltano.yml and pyproject.toml: a later run then needs no network
    but Aha!'s (none at all with the simulator). target-databricks is never installed here.
    """
    plugins = sys_dir(env)
    stamp = plugins / "make-run-installed.txt"
    inputs = hashlib.sha256()
    for name in ("meltano.yml", "pyproject.toml"):
        inputs.update((ROOT / name).read_bytes())
    executables = (
        plugins / "extractors" / "tap-aha" / "venv" / "bin" / "tap-aha",
        plugins / "loaders" / "target-duckdb" / "venv" / "bin" / "target-duckdb",
    )
    if stamp.is_file() and stamp.read_text() == inputs.hexdigest() and all(p.exists() for p in executables):
        say("Plugins already installed from this meltano.yml and pyproject.toml: meltano install skipped.")
        return
    say(f"Installing the plugins: meltano install {' '.join(PLUGINS)}")
    meltano(["install", *PLUGINS], env)
    stamp.write_text(inputs.hexdigest())


def meltano(args: list[str], env: dict[str, str]) -> str:
    """A Meltano command's output; on failure show all it said and exit with its status."""
    proc = subprocess.run(  # noqa: S603 - our own meltano, fixed arguments
        [MELTANO, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        say(f"meltano {' '.join(args)} failed (exit status {proc.returncode}).")
        raise SystemExit(proc.returncode)
    return proc.stdout


def run_pipeline(environment: str, env: dict[str, str]) -> int:
    """`meltano run tap-aha target-duckdb`, its log shown as it goes."""
    args = [MELTANO, "--environment", environment, "run", *PLUGINS]
    say(" ".join(["meltano", *args[1:]]))
    return subprocess.call(args, cwd=ROOT, env=env)  # noqa: S603


def sys_dir(env: dict[str, str]) -> Path:
    """Meltano's `.meltano` folder (MELTANO_SYS_DIR_ROOT moves it, as the tests do)."""
    custom = env.get("MELTANO_SYS_DIR_ROOT")
    return Path(custom) if custom else ROOT / ".meltano"


@contextlib.contextmanager
def simulator(loaded: dict[str, Loaded]) -> Iterator[tuple[FakeAha, str]]:
    """The fake Aha! server, seeded, with a few changes made now; stopped whatever happens."""
    sys.path.insert(0, str(ROOT))
    from tests.fake_aha import FakeAha  # noqa: PLC0415 - the tests' package, found from the repo root

    fake = FakeAha()
    fake.seed(SIMULATED_IDEAS)
    changes = simulate_activity(fake, random.Random(), loaded)  # noqa: S311 - fake data
    fake.start()
    try:
        yield fake, changes
    finally:
        fake.stop()


def simulate_activity(fake: FakeAha, rng: random.Random, loaded: dict[str, Loaded]) -> str:
    """What happened in Aha! since the last run, made now: status changes, votes, comments, revenue, deletes.

    The simulator is seeded afresh on every run, so it deletes records the last run loaded (any, on a first).
    """
    ideas = fake.ideas()
    statuses = sorted({idea["workflow_status"]["name"] for idea in ideas if idea.get("workflow_status")})
    moved = rng.sample(ideas, 3)
    for idea in moved:
        current = (idea.get("workflow_status") or {}).get("name")
        fake.update_idea(idea["id"], workflow_status=rng.choice([s for s in statuses if s != current]))
    fresh = 7 * 10**18 + time.time_ns() // 1000  # new ids on every run, as Aha! would give
    voted, commented = rng.sample(ideas, 2), rng.sample(ideas, 2)
    for n, idea in enumerate(voted):
        fake.add_vote(idea["id"], id=str(fresh + n))
    for n, idea in enumerate(commented):
        fake.add_comment(idea["id"], id=str(fresh + 10 + n))
    customer = rng.choice(fake.companions.organizations())
    fake.companions.update_organization(customer["id"], revenue=f"{rng.randrange(10, 5_000) * 1000}.0")
    # Deletes touch none of the ideas changed above: a changed idea's children are re-sent, and a new vote or
    # comment deleted with its idea would never be loaded.
    touched = {idea["id"] for idea in (*moved, *voted, *commented)}
    untouched = [idea["id"] for idea in ideas if idea["id"] not in touched]

    def pick(table: str, ids: list[str]) -> str:
        present = set(loaded[table].ids)
        return rng.choice([i for i in ids if i in present] or ids)

    fake.delete_vote(pick("idea_proxy_votes", [v["id"] for i in untouched for v in fake.votes(i)]))
    fake.delete_comment(pick("idea_comments", [c["id"] for i in untouched for c in fake.comments(i)]))
    portal = [c["id"] for i in untouched for c in fake.portal_comments(i, include_spam=False)]
    fake.delete_portal_comment(pick("idea_portal_comments", portal))
    gone = fake.idea(pick("ideas", untouched))
    fake.delete_idea(gone["id"])
    names = ", ".join(idea["reference_num"] for idea in moved)
    roadmap = simulate_roadmap(fake, rng, loaded)
    return (
        f"simulated since the last run: {names} changed status, 2 proxy votes and 2 comments added, "
        f"{customer['name']}'s revenue changed; idea {gone['reference_num']}, a proxy vote, a comment and a "
        f"portal comment deleted; {roadmap}"
    )


def simulate_roadmap(fake: FakeAha, rng: random.Random, loaded: dict[str, Loaded]) -> str:
    """Roadmap edits since the last run: a feature shipped, a release moved, a requirement and a to-do added.

    A feature is deleted too: one the last run loaded (any, on a first run), not one an idea points at.
    """
    roadmap = fake.roadmap
    features = roadmap.records("features")
    promoted = {(idea.get("feature") or {}).get("id") for idea in fake.ideas()}
    shipped = rng.choice([f for f in features if f["id"] in promoted])
    release = roadmap.records("releases")[0]
    roadmap.update(
        "features", shipped["id"], workflow_status={**shipped["workflow_status"], "name": "Shipped"}
    )
    roadmap.update("releases", release["id"], release_date="2024-06-30")
    roadmap.add_requirement(shipped["id"], k=len(shipped.get("requirements") or []) + 1)
    roadmap.add_task(shipped)
    spare = [f["id"] for f in features if f["id"] not in promoted and f["id"] != shipped["id"]]
    present = set(loaded["features"].ids)
    gone = rng.choice([i for i in spare if i in present] or spare)
    roadmap.delete("features", gone)
    return (
        f"feature {shipped['reference_num']} shipped, release {release['name']} moved, a requirement and a "
        f"to-do added, a feature deleted"
    )


def simulator_env(env: dict[str, str], fake: FakeAha) -> dict[str, str]:
    """Point the tap at the simulator for this run only; none of the user's TAP_AHA_* settings apply."""
    clean = {name: value for name, value in env.items() if not name.startswith("TAP_AHA_")}
    return {**clean, "TAP_AHA_API_URL": fake.url, "TAP_AHA_API_KEY": fake.api_key}


def report(target: Target, environment: str, tables: dict[str, Loaded], before: dict[str, Loaded]) -> None:
    """Where the data is, what this run loaded and deleted, what shipped, the state, a ranking, how to ask."""
    schema = target.schema
    say(f"Loaded into: {target.database}  (DuckDB, schema {schema}; Meltano environment '{environment}')")
    deleted = {table: len(set(before[table].ids) - set(loaded.ids)) for table, loaded in tables.items()}
    for table, loaded in tables.items():
        say(
            f"  {schema}.{table:<21} {loaded.rows:>6} rows, {loaded.this_run:>5} new or updated this run, "
            f"{deleted[table]:>3} deleted"
        )
    say(f"Deletes applied this run: {sum(deleted.values())} rows removed (records deleted in Aha!).")
    say("Which customer asks shipped: the most-voted ideas with their feature's status and release:")
    show(target, SHIPPED_ASKS.format(schema=schema))
    state_id = f"{environment}:tap-aha-to-target-duckdb"
    say(f"State: Meltano's system database, id {state_id} (meltano state get {state_id}).")
    say("The top ideas by the revenue of the customer organizations that voted for them:")
    show(target, TOP_BY_REVENUE.format(schema=schema))
    say("Ask the loaded file your own question (any DuckDB SQL), from this folder:")
    print(f"    {ask_command(target, EXAMPLE_QUESTION.format(schema=schema))}", flush=True)


def show(target: Target, sql: str) -> None:
    """A query's result as a small table, indented under our lines (scripts/ask.py, the loader's duckdb)."""
    proc = subprocess.run(  # noqa: S603 - our own interpreter and script
        [str(target.python), str(ROOT / "scripts" / "ask.py"), "--db", str(target.database), sql],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        say(f"WARNING: the query failed: {proc.stderr.strip()}")
        return
    for line in proc.stdout.splitlines():
        print(f"    {line}", flush=True)


def ask_command(target: Target, sql: str) -> str:
    """`make ask Q="..."`, naming the file only when it is not the one `make ask` reads by default."""
    database = Path(os.path.abspath(target.database))
    loaded = sorted((ROOT / "output").glob("*.duckdb"), key=lambda path: path.stat().st_mtime)
    named = "" if loaded and loaded[-1] == database else f" DB={shlex.quote(shown(database))}"
    return f'make ask{named} Q="{sql}"'


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it, for lines a user copies."""
    absolute = Path(os.path.abspath(path))  # not resolve(): a venv's python links out of the venv
    with contextlib.suppress(ValueError):
        return str(absolute.relative_to(ROOT))
    return str(absolute)


if __name__ == "__main__":
    raise SystemExit(main())
