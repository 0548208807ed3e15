"""The warehouse the hub writes to: an embedded DuckDB file by default, or PostgreSQL.

A thin wrapper so transforms depend on a small interface (run SQL, read Arrow, check that a
table exists) rather than on a driver: the PostgreSQL option is a second class here instead of
a fork of every transform. SQL models are transpiled to ``Warehouse.dialect`` by sqlglot.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa


class Session(Protocol):
    """One connection inside one transaction. Parameters are written ``?`` everywhere."""

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement."""
        ...

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""
        ...

    def arrow(self, sql: str) -> pa.Table:
        """Run a query and return an Arrow table."""
        ...

    def replace_table(self, schema: str, table: str, data: pa.Table) -> None:
        """Replace ``schema.table`` with the rows (and types) of an Arrow table."""
        ...

    def table_exists(self, schema: str, table: str) -> bool:
        """Whether ``schema.table`` exists."""
        ...

    def columns(self, schema: str, table: str) -> list[str]:
        """Column names of ``schema.table`` in order."""
        ...


class Warehouse(Protocol):
    """What transforms need from a warehouse."""

    dialect: str

    def connect(self) -> AbstractContextManager[Session]:
        """Open a session for one unit of work, committed at the end or rolled back."""
        ...


class _InformationSchema:
    """Catalogue look-ups shared by both engines (both have information_schema)."""

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

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


class DuckDBSession(_InformationSchema):
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


class WarehouseBusyError(RuntimeError):
    """Another process kept the DuckDB warehouse for longer than the wait allows."""


def lock_wait_seconds() -> float:
    """How long to wait for the warehouse (``HUB_WAREHOUSE_LOCK_SECONDS``, default 15 min)."""
    value = os.environ.get("HUB_WAREHOUSE_LOCK_SECONDS", "900")
    try:
        return max(0.0, float(value))
    except ValueError as err:
        raise ValueError(
            f"HUB_WAREHOUSE_LOCK_SECONDS={value!r} must be a number of seconds"
        ) from err


_LOCKS: dict[str, Any] = {}
_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> Any:
    """One lock object per warehouse file and process, so holding it is re-entrant (a raw
    load holds it around dlt's own connection and may open a session inside)."""
    from filelock import FileLock

    key = str(path.resolve())
    with _LOCKS_GUARD:
        if key not in _LOCKS:
            _LOCKS[key] = FileLock(f"{key}.lock", preserve_lock_file=True)
        return _LOCKS[key]


class DuckDBWarehouse:
    """An embedded DuckDB file: the hub's default warehouse."""

    dialect = "duckdb"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @contextmanager
    def exclusive(self, wait: float | None = None) -> Iterator[None]:
        """Hold the warehouse against every other process until the block ends.

        DuckDB lets one process open a file for writing at a time and fails the others at
        once ("Could not set lock on file"); this waits instead, with a clear error after
        ``HUB_WAREHOUSE_LOCK_SECONDS``. Dagster's ``warehouse`` pool already runs one step at
        a time within an instance; the lock also covers asset checks, ``hub review``, the run
        summary and processes on another Dagster instance. The kernel frees it when its
        process dies, so a crash never leaves it held.
        """
        from filelock import Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = _file_lock(self.path)
        wait = lock_wait_seconds() if wait is None else wait
        try:
            lock.acquire(timeout=wait)
        except Timeout as err:
            raise WarehouseBusyError(
                f"the warehouse {self.path} was in use by another hub process for over "
                f"{wait:g} s (a run, a daemon step or `hub review`); try again when it "
                "finishes, or raise HUB_WAREHOUSE_LOCK_SECONDS"
            ) from err
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def connect(
        self, *, read_only: bool = False, wait: float | None = None
    ) -> Iterator[DuckDBSession]:
        """Open the file for one unit of work, inside a transaction, and close it after.

        Connections are short-lived on purpose: DuckDB lets one process open a file at a
        time (readers included), and dlt opens its own connection while loading.
        """
        import duckdb

        with self.exclusive(wait):
            con = duckdb.connect(str(self.path), read_only=read_only)
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


_PG_TYPES: dict[str, str] = {
    "int8": "SMALLINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "uint8": "SMALLINT",
    "uint16": "INTEGER",
    "uint32": "BIGINT",
    "uint64": "NUMERIC",
    "float": "REAL",
    "double": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "string": "TEXT",
    "large_string": "TEXT",
    "date32[day]": "DATE",
}


def _pg_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_decimal(arrow_type):
        return f"NUMERIC({arrow_type.precision}, {arrow_type.scale})"
    try:
        return _PG_TYPES[str(arrow_type)]
    except KeyError as err:
        raise TypeError(f"no PostgreSQL type for Arrow type {arrow_type}") from err


class PostgresSession(_InformationSchema):
    """One psycopg connection inside one transaction."""

    def __init__(self, con: Any) -> None:
        self.con = con

    @staticmethod
    def _sql(sql: str, params: Sequence[Any] | None) -> str:
        # Callers write DuckDB-style ``?`` markers; psycopg wants ``%s`` (only when params
        # are passed, so a literal % in parameterless SQL is left alone).
        return sql.replace("?", "%s") if params else sql

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement."""
        self.con.execute(self._sql(sql, params), params or None)

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return its rows."""
        return self.con.execute(self._sql(sql, params), params or None).fetchall()

    def arrow(self, sql: str) -> pa.Table:
        """Run a query and return an Arrow table (types inferred from the values)."""
        cur = self.con.execute(sql)
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
        return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})

    def replace_table(self, schema: str, table: str, data: pa.Table) -> None:
        """Replace ``schema.table`` with an Arrow table's rows, via COPY."""
        columns = ", ".join(f'"{f.name}" {_pg_type(f.type)}' for f in data.schema)
        self.con.execute(f"DROP TABLE IF EXISTS {schema}.{table}")
        self.con.execute(f"CREATE TABLE {schema}.{table} ({columns})")
        names = ", ".join(f'"{n}"' for n in data.column_names)
        with self.con.cursor().copy(f"COPY {schema}.{table} ({names}) FROM STDIN") as copy:
            for row in data.to_pylist():
                copy.write_row(list(row.values()))


class PostgresWarehouse:
    """A PostgreSQL database: the production option for networks that outgrow one file."""

    dialect = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    @contextmanager
    def connect(self) -> Iterator[PostgresSession]:
        """One transaction on a fresh connection; committed on success, else rolled back."""
        import psycopg

        with psycopg.connect(self.dsn) as con:  # commits on clean exit, rolls back on error
            yield PostgresSession(con)
