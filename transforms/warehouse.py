"""The warehouse the hub writes to: an embedded DuckDB file by default.

A thin wrapper so transforms depend on a small interface (run SQL, read Arrow, check that a
table exists) rather than on a driver, which keeps the PostgreSQL option a second class here
instead of a fork of every transform.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa


class Warehouse(Protocol):
    """What transforms need from a warehouse."""

    dialect: str

    def connect(self) -> Any:
        """A context manager yielding a connection wrapper (see DuckDBSession)."""
        ...


class DuckDBSession:
    """One open DuckDB connection; statements run in the caller's transaction."""

    def __init__(self, con: Any) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement."""
        self.con.execute(sql, params or [])

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""
        return self.con.execute(sql, params or []).fetchall()

    def arrow(self, sql: str) -> pa.Table:
        """Run a query and return an Arrow table."""
        return self.con.sql(sql).to_arrow_table()

    def replace_table(self, schema: str, table: str, data: pa.Table) -> None:
        """Replace ``schema.table`` with the rows (and types) of an Arrow table."""
        self.con.register("_hub_incoming", data)
        try:
            self.con.execute(f"DROP TABLE IF EXISTS {schema}.{table}")
            self.con.execute(f"CREATE TABLE {schema}.{table} AS SELECT * FROM _hub_incoming")
        finally:
            self.con.unregister("_hub_incoming")

    def table_exists(self, schema: str, table: str) -> bool:
        """Whether ``schema.table`` exists (dlt creates raw tables only once rows arrive)."""
        rows = self.fetchall(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        )
        return bool(rows)

    def columns(self, schema: str, table: str) -> list[str]:
        """Column names of ``schema.table`` in order."""
        rows = self.fetchall(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, table],
        )
        return [r[0] for r in rows]


class DuckDBWarehouse:
    """An embedded DuckDB file: the hub's default warehouse."""

    dialect = "duckdb"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @contextmanager
    def connect(self) -> Iterator[DuckDBSession]:
        """Open the file for one unit of work, inside a transaction, and close it after.

        Connections are short-lived on purpose: DuckDB lets one process write a file at a
        time, and dlt opens its own connection while loading.
        """
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.path))
        try:
            con.execute("BEGIN TRANSACTION")
            yield DuckDBSession(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def dlt_destination(self) -> Any:
        """The dlt destination that loads raw data into this same file."""
        import dlt

        return dlt.destinations.duckdb(str(self.path))
