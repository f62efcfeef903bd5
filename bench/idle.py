"""What an idle continuous Lakeflow pipeline of every table costs, in requests a minute of Aha!'s 300.

Each table runs as its own streaming source with its own connector (as the framework builds them). After a
table (and its delete flow) has caught up, a continuous query asks again and again; the connector lists Aha!
again once per interval (`poll_interval_seconds` for cdc tables, `snapshot_interval_seconds` for snapshot
tables). This phase counts the requests one idle pass of each table makes (nothing changed) and scales them
to the default intervals; it also checks that reads between two passes make no request at all.
"""

from __future__ import annotations

import argparse
import time
import typing as t
from dataclasses import dataclass

from tap_aha.lakeflow import TABLES, LakeflowConnect
from tap_aha.lakeflow_options import DEFAULT_POLL_INTERVAL, DEFAULT_SNAPSHOT_INTERVAL
from tests.fake_aha import FakeAha

ACCOUNT_LIMIT = 300  # Aha!'s requests a minute per account
TARGET_SHARE = 0.05  # an idle pipeline of every table spends at most this share of it


@dataclass(frozen=True)
class IdleTable:
    """One table's idle cost: requests of one idle pass (data and delete flow) and per minute."""

    table: str
    ingestion: str
    data_requests: int
    delete_requests: int
    interval: int

    @property
    def per_minute(self) -> float:
        """Requests a minute at the default interval."""
        return (self.data_requests + self.delete_requests) * 60 / self.interval


@dataclass(frozen=True)
class IdlePhase:
    """Every table's idle cost, the full read of 20,000 idea users it replaces, and the gate check."""

    tables: list[IdleTable]
    idea_users: int
    idea_users_full_read: int  # requests of one whole idea_users listing (what a snapshot re-read cost)
    requests_between_passes: int

    @property
    def per_minute(self) -> float:
        """The whole pipeline's idle requests a minute."""
        return sum(table.per_minute for table in self.tables)

    @property
    def met(self) -> bool:
        """At most 5% of the account's limit, and nothing between passes."""
        return self.per_minute <= TARGET_SHARE * ACCOUNT_LIMIT and self.requests_between_passes == 0

    def lines(self) -> list[str]:
        """The report's rows."""
        rows = [
            f"Idle continuous pipeline (each table its own source; cdc every {DEFAULT_POLL_INTERVAL} s, "
            f"snapshots every {DEFAULT_SNAPSHOT_INTERVAL} s; {self.idea_users:,} idea users):",
            f"  {'table':<22}{'ingestion':<18}{'data req':>9}{'delete req':>11}{'req/min':>9}",
        ]
        rows += [
            f"  {t.table:<22}{t.ingestion:<18}{t.data_requests:>9}{t.delete_requests:>11}{t.per_minute:>9.2f}"
            for t in self.tables
        ]
        share = self.per_minute / ACCOUNT_LIMIT
        rows += [
            f"  total {self.per_minute:.2f} requests/min = {share:.1%} of {ACCOUNT_LIMIT}/min "
            f"(target <= {TARGET_SHARE:.0%}): {'met' if self.met else 'NOT MET'}",
            f"  requests while caught-up tables wait for their interval: {self.requests_between_passes}",
            f"  before: idea_users re-read whole every 30 s = {self.idea_users_full_read} requests a pass, "
            f"{self.idea_users_full_read * 2} a minute",
        ]
        return rows


Read = t.Callable[
    [str, dict[str, t.Any] | None, dict[str, t.Any]], tuple[t.Iterator[dict[str, t.Any]], dict[str, t.Any]]
]


def _drain(read: Read, table: str, offset: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """Read as the framework does until the offset comes back unchanged; the last offset."""
    for _ in range(1000):
        records, end = read(table, offset, {})
        list(records)
        if end == (offset or {}):
            return end
        offset = end
    raise RuntimeError(f"{table}: the offset still moved after 1000 reads")


def idle_phase(ideas: int = 2000, idea_users: int = 20_000) -> IdlePhase:
    """Measure one idle pass of every table against a fake account with `idea_users` idea users."""
    with FakeAha() as fake:
        fake.seed(ideas)
        while len(fake.companions.idea_users()) < idea_users:
            for _ in range(idea_users - len(fake.companions.idea_users())):
                fake.companions.add_idea_user()
        users = len(fake.companions.idea_users())
        options = {
            "api_key": fake.api_key,
            "api_url": fake.url,
            "requests_per_minute": "1000000",
            "requests_per_second": "100000",
        }
        time.sleep(0.003)  # the connectors' caps after every change
        measured: list[IdleTable] = []
        full_read = between = 0
        for table in TABLES:
            # interval 0: the next read after catching up starts the next pass at once, so one is measured
            connector = LakeflowConnect(
                {**options, "poll_interval_seconds": "0", "snapshot_interval_seconds": "0"}
            )
            waiting = LakeflowConnect(options)  # the default intervals
            ingestion = connector.read_table_metadata(table, {})["ingestion_type"]
            fake.clear_requests()
            offset = _drain(connector.read_table, table, None)
            if table == "idea_users":
                full_read = fake.count("/idea_users")
            deleted = _drain(connector.read_table_deletes, table, None)
            fake.clear_requests()
            _drain(connector.read_table, table, offset)
            data = fake.count()
            fake.clear_requests()
            _drain(connector.read_table_deletes, table, deleted)
            deletes = fake.count()
            caught_up = _drain(waiting.read_table, table, None)
            deletes_caught_up = _drain(waiting.read_table_deletes, table, None)
            fake.clear_requests()
            for _ in range(20):  # a continuous query asking again within the interval
                waiting.read_table(table, caught_up, {})
                waiting.read_table_deletes(table, deletes_caught_up, {})
            between += fake.count()
            interval = DEFAULT_SNAPSHOT_INTERVAL if ingestion == "snapshot" else DEFAULT_POLL_INTERVAL
            measured.append(IdleTable(table, ingestion, data, deletes, interval))
        return IdlePhase(measured, users, full_read, between)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.idle`: print the idle pipeline's cost; exit 1 when over the target."""
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--ideas", type=int, default=2000)
    parser.add_argument("--idea-users", type=int, default=20_000)
    args = parser.parse_args(argv)
    phase = idle_phase(args.ideas, args.idea_users)
    print("\n".join(phase.lines()))
    return 0 if phase.met else 1


if __name__ == "__main__":
    raise SystemExit(main())
