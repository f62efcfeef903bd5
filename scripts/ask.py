"""`make ask Q="select ..."`: one SQL query on the DuckDB file `make run` loaded, printed as a small table.

Runs with the DuckDB loader's own Python, which has duckdb (`make ask` picks it). Without --db it reads the
file in output/ that was loaded last. `make run` prints its ranking query with the same table.
"""

from __future__ import annotations

import argparse
import sys
import typing as t
from pathlib import Path

import duckdb  # type: ignore[import-not-found, unused-ignore]  # the loader's venv has it, the tap's does not

ROOT = Path(__file__).resolve().parents[1]
WIDEST = 48  # characters of a cell; longer text is cut with an ellipsis


def newest_database(folder: Path) -> Path | None:
    """The DuckDB file in `folder` written last (make run's dev or simulator file), if any."""
    files = [path for path in folder.glob("*.duckdb") if path.is_file()]
    return max(files, key=lambda path: path.stat().st_mtime) if files else None


def cell(value: object) -> str:
    """A value as a table shows it: numbers readable, long text cut."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    text = " ".join(str(value).split())
    return text if len(text) <= WIDEST else text[: WIDEST - 1] + "…"


def table(columns: list[str], rows: list[tuple[t.Any, ...]], total: int) -> str:
    """Columns and rows as a plain text table; numbers right-aligned; says how many rows were left out."""
    shown = [[cell(value) for value in row] for row in rows]
    numeric = [all(isinstance(row[i], int | float | None) for row in rows) for i in range(len(columns))]
    widths = [max([len(name)] + [len(row[i]) for row in shown]) for i, name in enumerate(columns)]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return " | ".join(parts).rstrip()

    lines = [line(columns), "-+-".join("-" * width for width in widths), *(line(row) for row in shown)]
    if total > len(rows):
        lines.append(f"({total - len(rows)} more rows not shown)")
    lines.append(f"({total} row{'' if total == 1 else 's'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the query read-only; a bad query or a missing file is one line and exit status 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sql", nargs="?", default="", help="the query (DuckDB SQL)")
    parser.add_argument("--db", type=Path, help="the DuckDB file (default: the one in output/ loaded last)")
    parser.add_argument("--max-rows", type=int, default=20, help="rows to show (default 20)")
    args = parser.parse_args(argv)
    if not args.sql.strip():
        print('Give a query: make ask Q="select count(*) from tap_aha.ideas"', file=sys.stderr)
        return 1
    database = args.db or newest_database(ROOT / "output")
    if database is None or not database.is_file():
        print(f"No DuckDB file at {database or 'output/*.duckdb'}: run `make run` first.", file=sys.stderr)
        return 1
    try:
        with duckdb.connect(str(database), read_only=True) as con:
            cursor = con.execute(args.sql)
            columns = [column[0] for column in cursor.description or []]
            rows = cursor.fetchall() if columns else []
    except duckdb.Error as error:
        print(f"DuckDB refused the query: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    if not columns:
        print("(the statement returned no rows)")
        return 0
    print(table(columns, rows[: args.max_rows], len(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
