"""The project itself: creating its file, its task and labels, its real seeds and its held-out real examples."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import duckdb
import pandas as pd

from datagen_core.config import DEFAULT_MIN_WORDS, Label, ProjectSpec
from datagen_core.errors import DatagenError
from datagen_core.records import text_hash, utcnow
from datagen_core.store import schema
from datagen_core.store.connection import Connection
from datagen_core.store.rows import ProjectInfo


def allocate_ids(cur: duckdb.DuckDBPyConnection, n: int) -> list[int]:
    return [r[0] for r in cur.execute("SELECT nextval('sample_ids') FROM range(?)", [n]).fetchall()]


#: Rows written per transaction when a project is created: DuckDB holds a transaction's rows in memory, and the
#: hidden partial file (not one transaction) is what makes a creation all or nothing.
INSERT_BATCH = 100_000


def insert_real(cur: duckdb.DuckDBPyConnection, examples: pd.DataFrame) -> None:
    """Import (text, label) rows as accepted real samples, inside the caller's transaction."""
    now = utcnow()
    frame = pd.DataFrame(
        {
            "id": allocate_ids(cur, len(examples)),
            "label": examples["label"].astype(str).to_numpy(),
            "text": examples["text"].astype(str).to_numpy(),
        }
    )
    frame["text_hash"] = [text_hash(t) for t in frame["text"]]
    frame["created_at"] = now
    cur.register("incoming_real", frame)
    cur.execute(
        "INSERT INTO samples (id, label, text, text_hash, origin, status, created_at) "
        "SELECT id, label, text, text_hash, 'real', 'accepted', created_at FROM incoming_real"
    )
    cur.unregister("incoming_real")


def insert_heldout(cur: duckdb.DuckDBPyConnection, examples: pd.DataFrame, source: str) -> int:
    """Add (text, label) rows to the held-out set inside the caller's transaction; returns how many were new."""
    frame = pd.DataFrame({"text": examples["text"].astype(str).to_numpy(),
                          "label": examples["label"].astype(str).to_numpy()})
    frame["text_hash"] = [text_hash(t) for t in frame["text"]]
    frame["source"] = source
    frame["created_at"] = utcnow()
    cur.register("incoming_heldout", frame)
    # A text that is a seed or already held out is skipped: a test text the generator saw would flatter F1.
    added = cur.execute(
        "INSERT INTO heldout SELECT * FROM (SELECT DISTINCT ON (text_hash) * FROM incoming_heldout) fresh "
        "WHERE text_hash NOT IN (SELECT text_hash FROM samples WHERE origin = 'real') "
        "AND text_hash NOT IN (SELECT text_hash FROM heldout)"
    ).fetchall()[0][0]
    cur.unregister("incoming_heldout")
    return int(added)


def _batches(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    return (frame.iloc[start:start + INSERT_BATCH] for start in range(0, len(frame), INSERT_BATCH))


#: Between a project file's name and the id of the process building it: `.NAME.duckdb.partial-PID`.
PARTIAL_MARK = ".partial-"


def partial_path(path: Path) -> Path:
    """Where this process builds project file `path` before giving it its name (hidden, never `*.duckdb`)."""
    return path.with_name(f".{path.name}{PARTIAL_MARK}{os.getpid()}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_partials(path: Path) -> None:
    """Delete what killed creations of `path` left behind (their process is gone), so they never take space."""
    for partial in path.parent.glob(f".{glob.escape(path.name)}{PARTIAL_MARK}*"):
        pid = partial.name.rsplit(PARTIAL_MARK, 1)[1].removesuffix(".wal")
        if pid.isdigit() and not _process_alive(int(pid)):
            partial.unlink(missing_ok=True)


def _publish(partial: Path, path: Path, name: str) -> None:
    """Give the complete file its name in one step; a project created meanwhile under that name is not replaced."""
    try:
        os.link(partial, path)
    except FileExistsError:
        raise DatagenError(f"project {name!r} already exists at {path}") from None
    except OSError:  # a file system without hard links: a rename is as atomic, only not exclusive
        os.replace(partial, path)
        return
    partial.unlink()


class ProjectTables(Connection):
    @classmethod
    def create(
        cls,
        path: Path,
        spec: ProjectSpec,
        labels: Sequence[Label],
        examples: pd.DataFrame,
        source_file: str | None,
        heldout: pd.DataFrame | None = None,
    ) -> Self:
        """Create the file and import everything; on any failure no file is left.

        The file is built under a hidden temporary name in the same folder and renamed when complete, so a
        creation killed half-way (SIGKILL, power loss) leaves no half project that blocks or breaks the name.
        `heldout` rows (text, label) are kept apart from the seeds for downstream evaluation.
        """
        if path.exists():
            raise DatagenError(f"project {spec.name!r} already exists at {path}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatagenError(f"cannot create the project folder {path.parent}: {exc.strerror or exc}") from None
        remove_stale_partials(path)
        partial = partial_path(path)
        store = cls(partial, cls._connect(partial))
        try:
            with store.transaction() as cur:
                for migration in schema.MIGRATIONS:
                    schema.apply(cur, migration)
                cur.execute(
                    "INSERT INTO project (name, task, text_kind, source_file, created_at, min_words) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [spec.name, spec.task, spec.text_kind, source_file, utcnow(), spec.min_words],
                )
                cur.executemany(
                    "INSERT INTO labels VALUES (?, ?, ?)",
                    [[label.name, label.description, i] for i, label in enumerate(labels)],
                )
            for batch in _batches(examples):
                with store.transaction() as cur:
                    insert_real(cur, batch)
            for batch in _batches(heldout) if heldout is not None else ():
                with store.transaction() as cur:
                    insert_heldout(cur, batch, source_file or "init")
            store.cursor().execute("CHECKPOINT")  # everything in the file itself: the WAL is not renamed with it
            store.close()
            _publish(partial, path, spec.name)
        except BaseException:
            store.close()
            for leftover in (partial, Path(f"{partial}.wal")):
                leftover.unlink(missing_ok=True)
            raise
        return cls.open(path)

    def project(self) -> ProjectInfo:
        rows = self.cursor().execute(
            "SELECT name, task, text_kind, source_file, created_at, coalesce(min_words, ?) FROM project",
            [DEFAULT_MIN_WORDS],
        ).fetchall()
        assert rows, "project row missing"
        return ProjectInfo(*rows[0])

    def labels(self) -> list[Label]:
        rows = self.cursor().execute("SELECT name, description FROM labels ORDER BY position").fetchall()
        return [Label(name=n, description=d) for n, d in rows]

    def set_project_details(self, task: str, text_kind: str, min_words: int | None = None) -> None:
        """Change what the prompts say the task is and what one sample is, and (unless None) the minimum length
        of a sample; runs read these when they start or resume."""
        project = self.project()
        spec = ProjectSpec(name=project.name, task=task, text_kind=text_kind,
                           min_words=project.min_words if min_words is None else min_words)
        with self.transaction() as cur:
            cur.execute("UPDATE project SET task = ?, text_kind = ?, min_words = ?",
                        [spec.task, spec.text_kind, spec.min_words])

    def set_label_description(self, name: str, description: str) -> None:
        with self.transaction() as cur:
            if cur.execute("SELECT count(*) FROM labels WHERE name = ?", [name]).fetchone()[0] == 0:
                raise DatagenError(f"unknown label {name!r}; labels are {[lb.name for lb in self.labels()]}")
            cur.execute("UPDATE labels SET description = ? WHERE name = ?", [description, name])

    def real_counts(self) -> dict[str, int]:
        rows = self.cursor().execute(
            "SELECT label, count(*) FROM samples WHERE origin = 'real' GROUP BY label"
        ).fetchall()
        return dict(rows)

    def real_examples(self, label: str | None = None, limit: int | None = None) -> pd.DataFrame:
        sql = "SELECT id, label, text FROM samples WHERE origin = 'real'"
        params: list[Any] = []
        if label is not None:
            sql += " AND label = ?"
            params.append(label)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self.cursor().execute(sql, params).df()

    # Held-out real examples are never seeds, so the generator never sees what downstream F1 is measured on.
    def add_heldout(self, examples: pd.DataFrame, source: str) -> int:
        """Add real labelled test examples (labels must be the project's); returns how many were new."""
        known = {lb.name for lb in self.labels()}
        unknown = sorted(set(examples["label"].astype(str)) - known)
        if unknown:
            raise DatagenError(f"held-out data has unknown label(s) {unknown}; the project's labels are "
                               f"{sorted(known)}")
        with self.transaction() as cur:
            return insert_heldout(cur, examples, source)

    def heldout(self) -> pd.DataFrame:
        return self.cursor().execute("SELECT text, label, source FROM heldout ORDER BY rowid").df()

    def heldout_counts(self) -> dict[str, int]:
        return dict(self.cursor().execute("SELECT label, count(*) FROM heldout GROUP BY label").fetchall())
