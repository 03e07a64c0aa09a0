"""One project file's connection: opening (with migrations), a cursor per thread, transactions, bulk inserts.

One connection per process and a cursor per thread (DuckDB refuses a second process and a shared
connection across threads). Every multi-row write is one transaction, so a crash or SIGKILL leaves either
all of a batch or none of it. The concern mixins of `Store` build on this class.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, TypeVar

import duckdb
import pandas as pd

from datagen_core.errors import DatagenError, ProjectLockedError
from datagen_core.store import schema

T = TypeVar("T")


def retry_on_conflict(write: Callable[[], T], attempts: int = 8) -> T:
    """Run a write transaction again when another thread's open transaction touched the same rows."""
    for attempt in range(attempts):
        try:
            return write()
        except duckdb.TransactionException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


def insert_rows(
    cur: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]], skip_existing: bool = False
) -> None:
    """Bulk insert into one of the store's own tables through one registered frame: far faster than executemany
    for batches."""
    if not rows:
        return
    cur.register("incoming_rows", pd.DataFrame(rows))
    try:
        conflict = " ON CONFLICT DO NOTHING" if skip_existing else ""
        cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_rows{conflict}")
    finally:
        cur.unregister("incoming_rows")


class ProjectInUseError(ProjectLockedError):
    """The file's lock is held by process `pid` (None when DuckDB does not say): an interface can word its own
    advice (the studio names the project and the likely holder) while the message stays the CLI's."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f" (process {pid})" if pid is not None else ""
        super().__init__(f"project file {path} is in use by another process{holder}: "
                         "stop the other run or close the studio, then try again")
        self.path = path
        self.pid = pid


def _lock_holder(message: str) -> int | None:
    match = re.search(r"PID (\d+)", message)
    return int(match.group(1)) if match else None


class Connection:
    """A project's DuckDB file, opened and brought up to this version's schema."""

    def __init__(self, path: Path, connection: duckdb.DuckDBPyConnection) -> None:
        self.path = path
        self._connection = connection
        self._local = threading.local()

    @classmethod
    def _connect(cls, path: Path) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise ProjectInUseError(path, _lock_holder(str(exc))) from None
            raise DatagenError(f"cannot open project file {path}: {exc}") from None

    @classmethod
    def open(cls, path: Path) -> Self:
        """Open an existing project, applying the migrations it has not had yet."""
        if not path.exists():
            raise DatagenError(f"unknown project: no file {path} (create it with `datagen init`)")
        store = cls(path, cls._connect(path))
        try:
            store._upgrade()
        except BaseException:
            store.close()
            raise
        return store

    def _upgrade(self) -> None:
        for migration in schema.missing(schema.recorded_version(self.cursor(), self.path)):

            def apply(migration: schema.Migration = migration) -> None:
                with self.transaction() as cur:  # another connection in this process may have applied it
                    if schema.recorded_version(cur, self.path) < migration.version:
                        schema.apply(cur, migration)

            retry_on_conflict(apply)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor: DuckDB connections must not be shared across threads."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._connection.cursor()
            self._local.cursor = cur
        return cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = self.cursor()
        cur.begin()
        try:
            yield cur
        except BaseException:
            cur.rollback()
            raise
        cur.commit()

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        # fetchall, not fetchone: DuckDB 2 keeps a half-read result open and then refuses `register` on the cursor
        rows = self.cursor().execute(sql, list(params)).fetchall()
        return rows[0][0] if rows else None
