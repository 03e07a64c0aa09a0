"""The project store: the only module that knows the DuckDB schema and writes SQL.

One DuckDB file per project, one connection per process and a cursor per thread (DuckDB refuses a
second process and a shared connection across threads). Every multi-row write is one transaction,
so a crash or SIGKILL leaves either all of a batch or none of it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pandas as pd

from .config import DEFAULT_MIN_WORDS, Gene, GeneSet, Label, LLMConfig, ProjectSpec, RunConfig, ValueSet
from .errors import DatagenError, ProjectLockedError
from .records import LLMCallRecord, NewSample, text_hash, utcnow

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE project (
    name VARCHAR NOT NULL, task VARCHAR NOT NULL, text_kind VARCHAR NOT NULL,
    source_file VARCHAR, created_at TIMESTAMP NOT NULL
);
CREATE TABLE labels (name VARCHAR PRIMARY KEY, description VARCHAR NOT NULL, position INTEGER NOT NULL);
CREATE TABLE gene_sets (
    version INTEGER PRIMARY KEY, genes VARCHAR NOT NULL, source VARCHAR NOT NULL,
    note VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, constraints VARCHAR NOT NULL DEFAULT '[]'
);
CREATE SEQUENCE sample_ids START 1;
CREATE TABLE samples (
    id BIGINT PRIMARY KEY,
    label VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    text_hash VARCHAR NOT NULL,
    origin VARCHAR NOT NULL CHECK (origin IN ('real', 'synthetic')),
    status VARCHAR NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    filter_reason VARCHAR,
    run_id VARCHAR,
    method VARCHAR,
    parent_ids BIGINT[],
    gene_split VARCHAR,
    prompt VARCHAR,
    model VARCHAR,
    sampling VARCHAR,
    raw_response VARCHAR,
    llm_call_id VARCHAR,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    details VARCHAR,
    requested_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE sample_edits (
    sample_id BIGINT NOT NULL, field VARCHAR NOT NULL, old_value VARCHAR, new_value VARCHAR,
    actor VARCHAR NOT NULL, edited_at TIMESTAMP NOT NULL
);
CREATE TABLE embeddings (
    model VARCHAR NOT NULL, text_hash VARCHAR NOT NULL, vector FLOAT[] NOT NULL,
    PRIMARY KEY (model, text_hash)
);
CREATE TABLE runs (
    id VARCHAR PRIMARY KEY, method VARCHAR NOT NULL, config VARCHAR NOT NULL,
    gene_set_version INTEGER, llm VARCHAR NOT NULL, status VARCHAR NOT NULL,
    error VARCHAR, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL
);
CREATE TABLE llm_calls (
    id VARCHAR PRIMARY KEY, run_id VARCHAR, purpose VARCHAR NOT NULL, backend VARCHAR NOT NULL,
    model VARCHAR NOT NULL, cache_key VARCHAR NOT NULL, messages VARCHAR NOT NULL, params VARCHAR NOT NULL,
    response VARCHAR, finish_reason VARCHAR, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    latency_ms DOUBLE NOT NULL, attempts INTEGER NOT NULL, cached BOOLEAN NOT NULL, error VARCHAR,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX llm_calls_cache ON llm_calls (cache_key);
CREATE TABLE events (
    run_id VARCHAR, created_at TIMESTAMP NOT NULL, level VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    message VARCHAR NOT NULL, data VARCHAR
);
-- What a quality module said of a sample (DataGen §3), with the settings that produced it.
CREATE TABLE sample_checks (
    sample_id BIGINT NOT NULL, "check" VARCHAR NOT NULL, keep BOOLEAN NOT NULL, reason VARCHAR,
    details VARCHAR NOT NULL, options VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL
);
-- 2-D maps of the embeddings: a fitted projection (pickled) and every text's coordinates in it.
CREATE TABLE projections (
    id VARCHAR PRIMARY KEY, embed_model VARCHAR NOT NULL, params VARCHAR NOT NULL, model BLOB,
    fitted_on INTEGER NOT NULL, created_at TIMESTAMP NOT NULL
);
CREATE TABLE projection_points (
    projection_id VARCHAR NOT NULL, text_hash VARCHAR NOT NULL, x DOUBLE NOT NULL, y DOUBLE NOT NULL,
    fitted BOOLEAN NOT NULL, PRIMARY KEY (projection_id, text_hash)
);
"""

# Topics per label / values per attribute that the baseline methods sample (versioned like gene sets),
# and a knowledge base the user loads for fact checks (SPEC §3): passages and a term index for BM25 in SQL
# (DuckDB's fts extension cannot be installed offline for this DuckDB version).
_SCHEMA += """
CREATE TABLE value_sets (
    kind VARCHAR NOT NULL, version INTEGER NOT NULL, items VARCHAR NOT NULL, source VARCHAR NOT NULL,
    note VARCHAR NOT NULL, gene_set_version INTEGER, created_at TIMESTAMP NOT NULL, PRIMARY KEY (kind, version)
);
CREATE TABLE kb_documents (
    id BIGINT PRIMARY KEY, source VARCHAR NOT NULL, title VARCHAR, text VARCHAR NOT NULL,
    text_hash VARCHAR NOT NULL UNIQUE, length INTEGER NOT NULL, created_at TIMESTAMP NOT NULL
);
CREATE TABLE kb_terms (doc_id BIGINT NOT NULL, term VARCHAR NOT NULL, tf INTEGER NOT NULL);
"""

# Added tables and columns are created on open too (IF NOT EXISTS), so projects made by an earlier version gain
# them; a project setting added this way is NULL in such a project, which reads it as the setting's default.
# Held-out real examples are never seeds, so the generator never sees what downstream F1 is measured on;
# evaluation results are cached under a key hashing everything that produced them (data, trainer, settings).
_ADDED_SCHEMA = """
CREATE TABLE IF NOT EXISTS heldout (
    text VARCHAR NOT NULL, label VARCHAR NOT NULL, text_hash VARCHAR NOT NULL, source VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    key VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, subject VARCHAR NOT NULL, params VARCHAR NOT NULL,
    result VARCHAR NOT NULL, seconds DOUBLE NOT NULL, created_at TIMESTAMP NOT NULL
);
ALTER TABLE project ADD COLUMN IF NOT EXISTS min_words INTEGER;
"""

RUN_STATUSES = ("running", "completed", "interrupted", "stopped", "failed")
SAMPLE_STATUSES = ("pending", "accepted", "rejected")


@dataclass(frozen=True)
class ProjectInfo:
    name: str
    task: str
    text_kind: str
    source_file: str | None
    created_at: datetime
    min_words: int


@dataclass(frozen=True)
class RunInfo:
    id: str
    method: str
    config: RunConfig
    gene_set_version: int | None
    llm: dict[str, Any]
    status: str
    error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CheckRecord:
    """What one quality module said of one stored sample, with the settings that produced it."""

    sample_id: int
    check: str
    keep: bool
    reason: str | None
    details: dict[str, Any]
    options: dict[str, Any]


@dataclass(frozen=True)
class PopulationMember:
    id: int
    text: str
    text_hash: str
    origin: str


@dataclass(frozen=True)
class SampleFilter:
    """Which samples a listing, count, map or bulk action sees; empty fields do not filter."""

    run_ids: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    origin: str | None = None
    search: str = ""
    include_filtered: bool = False

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = ["TRUE"], []
        for column, values in (("run_id", self.run_ids), ("label", self.labels), ("status", self.statuses)):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if self.origin is not None:
            clauses.append("origin = ?")
            params.append(self.origin)
        if self.search.strip():
            clauses.append("contains(lower(text), lower(?))")
            params.append(self.search.strip())
        if not self.include_filtered:
            clauses.append("filter_reason IS NULL")
        return " AND ".join(clauses), params


T = TypeVar("T")


def _retry_on_conflict(write: Callable[[], T], attempts: int = 8) -> T:
    """Run a write transaction again when another thread's open transaction touched the same rows."""
    for attempt in range(attempts):
        try:
            return write()
        except duckdb.TransactionException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


def project_path(home: Path, name: str) -> Path:
    return home / f"{name}.duckdb"


def _insert_rows(
    cur: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]], skip_existing: bool = False
) -> None:
    """Bulk insert through one registered frame: far faster than executemany for batches."""
    if not rows:
        return
    cur.register("incoming_rows", pd.DataFrame(rows))
    try:
        conflict = " ON CONFLICT DO NOTHING" if skip_existing else ""
        cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_rows{conflict}")
    finally:
        cur.unregister("incoming_rows")


def _lock_holder(message: str) -> str:
    match = re.search(r"PID (\d+)", message)
    return f" (process {match.group(1)})" if match else ""


class Store:
    """A project's DuckDB file. Use `Store.create` for a new project and `Store.open` otherwise."""

    def __init__(self, path: Path, connection: duckdb.DuckDBPyConnection) -> None:
        self.path = path
        self._connection = connection
        self._local = threading.local()

    # ----------------------------------------------------------------- opening
    @classmethod
    def _connect(cls, path: Path) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise ProjectLockedError(
                    f"project file {path} is in use by another process{_lock_holder(str(exc))}: "
                    "stop the other run or close the studio, then try again"
                ) from None
            raise DatagenError(f"cannot open project file {path}: {exc}") from None

    @classmethod
    def open(cls, path: Path) -> Store:
        if not path.exists():
            raise DatagenError(f"unknown project: no file {path} (create it with `datagen init`)")
        store = cls(path, cls._connect(path))
        version = store._scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        if version is None or int(version) != SCHEMA_VERSION:
            store.close()
            raise DatagenError(f"{path} is not a project of this version of the studio (schema {version})")
        store.cursor().execute(_ADDED_SCHEMA)
        return store

    @classmethod
    def create(
        cls,
        path: Path,
        spec: ProjectSpec,
        labels: Sequence[Label],
        examples: pd.DataFrame,
        source_file: str | None,
        heldout: pd.DataFrame | None = None,
    ) -> Store:
        """Create the file and import everything in one transaction; on any failure no file is left.

        `heldout` rows (text, label) are kept apart from the seeds for downstream evaluation.
        """
        if path.exists():
            raise DatagenError(f"project {spec.name!r} already exists at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path, cls._connect(path))
        try:
            with store.transaction() as cur:
                cur.execute(_SCHEMA)
                cur.execute(_ADDED_SCHEMA)
                cur.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
                cur.execute(
                    "INSERT INTO project (name, task, text_kind, source_file, created_at, min_words) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [spec.name, spec.task, spec.text_kind, source_file, utcnow(), spec.min_words],
                )
                cur.executemany(
                    "INSERT INTO labels VALUES (?, ?, ?)",
                    [[label.name, label.description, i] for i, label in enumerate(labels)],
                )
                store._insert_real(cur, examples)
                if heldout is not None and len(heldout):
                    store._insert_heldout(cur, heldout, source_file or "init")
        except BaseException:
            store.close()
            for leftover in (path, Path(f"{path}.wal")):
                leftover.unlink(missing_ok=True)
            raise
        return store

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ primitives
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

    def _allocate_ids(self, cur: duckdb.DuckDBPyConnection, n: int) -> list[int]:
        return [r[0] for r in cur.execute("SELECT nextval('sample_ids') FROM range(?)", [n]).fetchall()]

    def _insert_real(self, cur: duckdb.DuckDBPyConnection, examples: pd.DataFrame) -> None:
        now = utcnow()
        frame = pd.DataFrame(
            {
                "id": self._allocate_ids(cur, len(examples)),
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

    # --------------------------------------------------------------- project
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

    # ------------------------------------------------------------- held-out data
    def _insert_heldout(self, cur: duckdb.DuckDBPyConnection, examples: pd.DataFrame, source: str) -> int:
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

    def add_heldout(self, examples: pd.DataFrame, source: str) -> int:
        """Add real labelled test examples (labels must be the project's); returns how many were new."""
        known = {lb.name for lb in self.labels()}
        unknown = sorted(set(examples["label"].astype(str)) - known)
        if unknown:
            raise DatagenError(f"held-out data has unknown label(s) {unknown}; the project's labels are "
                               f"{sorted(known)}")
        with self.transaction() as cur:
            return self._insert_heldout(cur, examples, source)

    def heldout(self) -> pd.DataFrame:
        return self.cursor().execute("SELECT text, label, source FROM heldout ORDER BY rowid").df()

    def heldout_counts(self) -> dict[str, int]:
        return dict(self.cursor().execute("SELECT label, count(*) FROM heldout GROUP BY label").fetchall())

    # ------------------------------------------------------------- evaluations
    def evaluation(self, key: str) -> dict[str, Any] | None:
        rows = self.cursor().execute(
            "SELECT kind, subject, params, result, seconds, created_at FROM evaluations WHERE key = ?", [key]
        ).fetchall()
        if not rows:
            return None
        kind, subject, params, result, seconds, created_at = rows[0]
        return {"key": key, "kind": kind, "subject": subject, "params": json.loads(params),
                "result": json.loads(result), "seconds": seconds, "created_at": created_at}

    def save_evaluation(
        self, key: str, kind: str, subject: str, params: dict[str, Any], result: dict[str, Any], seconds: float
    ) -> None:
        def apply() -> None:
            with self.transaction() as cur:
                cur.execute(
                    "INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [key, kind, subject, json.dumps(params, sort_keys=True), json.dumps(result), seconds, utcnow()],
                )

        _retry_on_conflict(apply)

    def evaluations(self, subject: str | None = None) -> pd.DataFrame:
        """Every cached result with the settings that produced it, newest first."""
        sql = "SELECT key, kind, subject, params, seconds, created_at FROM evaluations"
        params = [subject] if subject is not None else []
        if subject is not None:
            sql += " WHERE subject = ?"
        return self.cursor().execute(sql + " ORDER BY created_at DESC", params).df()

    def kept_synthetic(self, run_id: str) -> pd.DataFrame:
        """A run's dataset as a user would export it: kept offspring not rejected, oldest first."""
        return self.cursor().execute(
            "SELECT id, label, text, text_hash FROM samples WHERE run_id = ? AND filter_reason IS NULL "
            "AND status <> 'rejected' ORDER BY id",
            [run_id],
        ).df()

    # ------------------------------------------------------------- gene sets
    def add_gene_set(
        self, genes: Sequence[Gene], source: str, note: str = "", constraints: Sequence[str] = ()
    ) -> GeneSet:
        with self.transaction() as cur:
            version = cur.execute("SELECT coalesce(max(version), 0) + 1 FROM gene_sets").fetchone()[0]
            gene_set = GeneSet(version=version, genes=tuple(genes), source=source, note=note,  # type: ignore[arg-type]
                               constraints=tuple(constraints))
            cur.execute(
                "INSERT INTO gene_sets VALUES (?, ?, ?, ?, ?, ?)",
                [version, json.dumps([g.model_dump() for g in gene_set.genes]), source, note, utcnow(),
                 json.dumps(list(gene_set.constraints))],
            )
        return gene_set

    def gene_sets(self) -> list[GeneSet]:
        rows = self.cursor().execute(
            "SELECT version, genes, source, note, constraints FROM gene_sets ORDER BY version"
        ).fetchall()
        return [
            GeneSet(version=v, genes=tuple(Gene(**g) for g in json.loads(genes)), source=s, note=n,
                    constraints=tuple(json.loads(c)))
            for v, genes, s, n, c in rows
        ]

    def gene_set(self, version: int | None = None) -> GeneSet | None:
        """A given version, or the latest when version is None; None when the project has no genes yet."""
        sets = self.gene_sets()
        if version is None:
            return sets[-1] if sets else None
        for gene_set in sets:
            if gene_set.version == version:
                return gene_set
        raise DatagenError(f"no gene set version {version}")

    # ------------------------------------------------------------ value sets
    def add_value_set(
        self, kind: str, items: dict[str, Sequence[str]], source: str, note: str = "",
        gene_set_version: int | None = None,
    ) -> ValueSet:
        """Save topics per label or values per attribute as the next version of that kind."""
        with self.transaction() as cur:
            version = cur.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM value_sets WHERE kind = ?", [kind]
            ).fetchone()[0]
            value_set = ValueSet(kind=kind, version=version, items={k: tuple(v) for k, v in items.items()},  # type: ignore[arg-type]
                                 source=source, note=note, gene_set_version=gene_set_version)  # type: ignore[arg-type]
            cur.execute(
                "INSERT INTO value_sets VALUES (?, ?, ?, ?, ?, ?, ?)",
                [kind, version, json.dumps({k: list(v) for k, v in value_set.items.items()}), source, note,
                 gene_set_version, utcnow()],
            )
        return value_set

    def value_sets(self, kind: str) -> list[ValueSet]:
        """Every version of one kind, oldest first."""
        rows = self.cursor().execute(
            "SELECT version, items, source, note, gene_set_version FROM value_sets WHERE kind = ? ORDER BY version",
            [kind],
        ).fetchall()
        return [ValueSet(kind=kind, version=v, items=json.loads(items), source=s, note=n,  # type: ignore[arg-type]
                         gene_set_version=g) for v, items, s, n, g in rows]

    def value_set(self, kind: str, version: int | None = None) -> ValueSet | None:
        """A given version, or the latest when version is None; None when there is none yet."""
        sets = self.value_sets(kind)
        if version is None:
            return sets[-1] if sets else None
        for value_set in sets:
            if value_set.version == version:
                return value_set
        raise DatagenError(f"no {kind} version {version}")

    # ------------------------------------------------------------------ runs
    def create_run(self, run_id: str, config: RunConfig, gene_set_version: int | None, llm: LLMConfig) -> None:
        now = utcnow()
        llm_public = llm.model_dump(include={"backend", "base_url", "model", "max_in_flight"})
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, 'running', NULL, ?, ?)",
                [run_id, config.method, config.model_dump_json(), gene_set_version, json.dumps(llm_public), now, now],
            )
            self._event(cur, run_id, "info", "run_started", f"run {run_id} started", {"config": config.model_dump()})

    def set_run_status(self, run_id: str, status: str, error: str | None = None) -> None:
        assert status in RUN_STATUSES

        def apply() -> None:
            with self.transaction() as cur:
                cur.execute("UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                            [status, error, utcnow(), run_id])
                self._event(cur, run_id, "error" if error else "info", f"run_{status}", error or f"run {status}", None)

        _retry_on_conflict(apply)

    def runs(self) -> list[RunInfo]:
        rows = self.cursor().execute(
            "SELECT id, method, config, gene_set_version, llm, status, error, created_at, updated_at "
            "FROM runs ORDER BY created_at"
        ).fetchall()
        return [
            RunInfo(r[0], r[1], RunConfig.model_validate_json(r[2]), r[3], json.loads(r[4]), r[5], r[6], r[7], r[8])
            for r in rows
        ]

    def run(self, run_id: str) -> RunInfo:
        for info in self.runs():
            if info.id == run_id:
                return info
        raise DatagenError(f"unknown run {run_id!r}")

    def latest_unfinished_run(self) -> RunInfo | None:
        unfinished = [r for r in self.runs() if r.status in ("running", "interrupted", "failed")]
        return unfinished[-1] if unfinished else None

    def kept_counts(self, run_id: str) -> dict[str, int]:
        """Offspring per label that passed the engine's filters: what counts toward a run's target."""
        rows = self.cursor().execute(
            "SELECT label, count(*) FROM samples WHERE run_id = ? AND filter_reason IS NULL GROUP BY label", [run_id]
        ).fetchall()
        return dict(rows)

    def filtered_counts(self, run_id: str) -> dict[str, int]:
        rows = self.cursor().execute(
            "SELECT filter_reason, count(*) FROM samples WHERE run_id = ? AND filter_reason IS NOT NULL "
            "GROUP BY filter_reason",
            [run_id],
        ).fetchall()
        return dict(rows)

    def label_counts(self, run_id: str) -> dict[str, tuple[int, int]]:
        """(kept, filtered) offspring per label of a run: progress from the store when no job is live."""
        rows = self.cursor().execute(
            "SELECT label, count(*) FILTER (WHERE filter_reason IS NULL), count(*) FILTER (WHERE filter_reason "
            "IS NOT NULL) FROM samples WHERE run_id = ? GROUP BY label",
            [run_id],
        ).fetchall()
        return {label: (int(kept), int(filtered)) for label, kept, filtered in rows}

    def used_pairs(self, run_id: str, label: str) -> list[tuple[int, int]]:
        rows = self.cursor().execute(
            "SELECT parent_ids FROM samples WHERE run_id = ? AND label = ? AND len(parent_ids) = 2",
            [run_id, label],
        ).fetchall()
        return [(int(p[0]), int(p[1])) for (p,) in rows]

    def population(self, label: str, run_id: str | None) -> list[PopulationMember]:
        """Real examples of a label plus the kept offspring of one run, oldest first."""
        rows = self.cursor().execute(
            "SELECT id, text, text_hash, origin FROM samples WHERE label = ? AND "
            "(origin = 'real' OR (run_id = ? AND filter_reason IS NULL)) ORDER BY id",
            [label, run_id],
        ).fetchall()
        return [PopulationMember(*r) for r in rows]

    def run_usage(self, run_id: str) -> dict[str, float]:
        row = self.cursor().execute(
            "SELECT count(*), count(*) FILTER (WHERE cached), count(*) FILTER (WHERE error IS NOT NULL), "
            "coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), coalesce(sum(attempts), 0) "
            "FROM llm_calls WHERE run_id = ?",
            [run_id],
        ).fetchall()[0]
        keys = ("calls", "cached_calls", "failed_calls", "prompt_tokens", "completion_tokens", "attempts")
        return dict(zip(keys, row, strict=True))

    # --------------------------------------------------------------- samples
    def write_offspring(
        self,
        samples: Sequence[NewSample],
        calls: Sequence[LLMCallRecord],
        embeddings: dict[str, np.ndarray],
        embed_model: str,
        verdicts: Sequence[CheckRecord] = (),
    ) -> None:
        """Write offspring with the calls that produced them, their embeddings and what in-run quality modules
        said of them, atomically."""
        with self.transaction() as cur:
            self._insert_calls(cur, calls)
            self._insert_embeddings(cur, embed_model, embeddings)
            self._insert_checks(cur, verdicts)
            rows = [
                {
                    "id": s.id, "label": s.label, "text": s.text, "text_hash": s.text_hash, "origin": "synthetic",
                    "status": "pending", "filter_reason": s.filter_reason, "run_id": s.run_id, "method": s.method,
                    "parent_ids": list(s.parent_ids),
                    "gene_split": json.dumps(s.gene_split.as_dict()) if s.gene_split else None,
                    "prompt": s.prompt, "model": s.model, "sampling": json.dumps(s.sampling),
                    "raw_response": s.raw_response, "llm_call_id": s.llm_call_id, "prompt_tokens": s.prompt_tokens,
                    "completion_tokens": s.completion_tokens, "details": json.dumps(s.details),
                    "requested_at": s.requested_at, "created_at": s.created_at,
                }
                for s in samples
            ]
            _insert_rows(cur, "samples", rows)

    def allocate_sample_ids(self, n: int) -> list[int]:
        return self._allocate_ids(self.cursor(), n) if n else []

    def samples(
        self,
        run_id: str | None = None,
        origin: str | None = None,
        include_filtered: bool = False,
        status: str | None = None,
    ) -> pd.DataFrame:
        """Samples with their lineage, for export and inspection."""
        chosen = SampleFilter(run_ids=(run_id,) if run_id else (), statuses=(status,) if status else (),
                              origin=origin, include_filtered=include_filtered)
        return self.sample_page(chosen, order="id")

    def sample_page(
        self, chosen: SampleFilter, *, offset: int = 0, limit: int | None = None, order: str = "id DESC"
    ) -> pd.DataFrame:
        """One page of samples (server-side, so large projects stay fast), newest first by default."""
        if order not in ("id", "id DESC"):
            raise ValueError(f"unsupported order {order!r}")
        where, params = chosen.where()
        sql = f"SELECT * EXCLUDE (text_hash) FROM samples WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return self.cursor().execute(sql, params).df()

    def count_samples(self, chosen: SampleFilter) -> int:
        where, params = chosen.where()
        return int(self._scalar(f"SELECT count(*) FROM samples WHERE {where}", params))

    def samples_by_ids(self, ids: Sequence[int]) -> pd.DataFrame:
        """Samples by id (parents of an offspring, a selection on the map), in no particular order."""
        if not ids:
            return self.sample_page(SampleFilter(), limit=0)
        placeholders = ", ".join("?" * len(ids))
        return self.cursor().execute(
            f"SELECT * EXCLUDE (text_hash) FROM samples WHERE id IN ({placeholders})", [int(i) for i in ids]
        ).df()

    def map_samples(self, chosen: SampleFilter) -> pd.DataFrame:
        """What the embedding map draws: ids, text hashes and the fields it colours and filters by."""
        where, params = chosen.where()
        return self.cursor().execute(
            "SELECT id, label, text, text_hash, origin, status, run_id, parent_ids FROM samples "
            f"WHERE {where} ORDER BY id",
            params,
        ).df()

    def edit_sample(
        self,
        sample_id: int,
        *,
        text: str | None = None,
        label: str | None = None,
        status: str | None = None,
        actor: str = "user",
    ) -> None:
        """Change a sample and keep the previous value in its history; nothing is overwritten silently."""
        changes = {k: v for k, v in (("text", text), ("label", label), ("status", status)) if v is not None}
        if status is not None and status not in SAMPLE_STATUSES:
            raise DatagenError(f"status must be one of {SAMPLE_STATUSES}")
        if "text" in changes and not changes["text"].strip():
            raise DatagenError("a sample's text cannot be empty")
        if label is not None and label not in {lb.name for lb in self.labels()}:
            raise DatagenError(f"unknown label {label!r}; labels are {[lb.name for lb in self.labels()]}")

        def apply() -> None:
            with self.transaction() as cur:
                row = cur.execute("SELECT text, label, status FROM samples WHERE id = ?", [sample_id]).fetchone()
                if row is None:
                    raise DatagenError(f"unknown sample {sample_id}")
                current = dict(zip(("text", "label", "status"), row, strict=True))
                for field, value in changes.items():
                    if current[field] == value:
                        continue
                    cur.execute(
                        "INSERT INTO sample_edits VALUES (?, ?, ?, ?, ?, ?)",
                        [sample_id, field, current[field], value, actor, utcnow()],
                    )
                    cur.execute(f"UPDATE samples SET {field} = ? WHERE id = ?", [value, sample_id])
                if "text" in changes:
                    cur.execute("UPDATE samples SET text_hash = ? WHERE id = ?",
                                [text_hash(changes["text"]), sample_id])

        _retry_on_conflict(apply)

    def set_status_where(self, chosen: SampleFilter, status: str, actor: str = "user") -> int:
        """Accept or reject every sample a filter selects (bulk review); each change enters the history."""
        if status not in SAMPLE_STATUSES:
            raise DatagenError(f"status must be one of {SAMPLE_STATUSES}")
        where, params = chosen.where()

        def apply() -> int:
            with self.transaction() as cur:
                cur.execute(
                    "CREATE OR REPLACE TEMP TABLE bulk_ids AS "
                    f"SELECT id, status FROM samples WHERE {where} AND status <> ?",
                    [*params, status],
                )
                cur.execute(
                    "INSERT INTO sample_edits SELECT id, 'status', status, ?, ?, ? FROM bulk_ids",
                    [status, actor, utcnow()],
                )
                cur.execute("UPDATE samples SET status = ? WHERE id IN (SELECT id FROM bulk_ids)", [status])
                changed = int(cur.execute("SELECT count(*) FROM bulk_ids").fetchone()[0])
                cur.execute("DROP TABLE bulk_ids")
                return changed

        return _retry_on_conflict(apply)

    def sample_history(self, sample_id: int) -> pd.DataFrame:
        return self.cursor().execute(
            "SELECT * FROM sample_edits WHERE sample_id = ? ORDER BY edited_at", [sample_id]
        ).df()

    # ------------------------------------------------------------ embeddings
    def embeddings(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        if not hashes:
            return {}
        cur = self.cursor()
        cur.register("wanted_hashes", pd.DataFrame({"h": list(hashes)}))
        rows = cur.execute(
            "SELECT e.text_hash, e.vector FROM embeddings e JOIN wanted_hashes w ON e.text_hash = w.h "
            "WHERE e.model = ?",
            [model],
        ).fetchall()
        cur.unregister("wanted_hashes")
        return {h: np.asarray(v, dtype=np.float32) for h, v in rows}

    def put_embeddings(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        with self.transaction() as cur:
            self._insert_embeddings(cur, model, vectors)

    def _insert_embeddings(self, cur: duckdb.DuckDBPyConnection, model: str, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        frame = pd.DataFrame({"h": list(vectors), "v": [v.astype(np.float32).tolist() for v in vectors.values()]})
        cur.register("incoming_vectors", frame)
        cur.execute(
            "INSERT INTO embeddings SELECT ?, h, v FROM incoming_vectors ON CONFLICT DO NOTHING", [model]
        )
        cur.unregister("incoming_vectors")

    # ---------------------------------------------------------------- checks
    def record_checks(self, verdicts: Sequence[CheckRecord]) -> None:
        """Verdicts of quality modules on stored samples."""
        with self.transaction() as cur:
            self._insert_checks(cur, verdicts)

    def _insert_checks(self, cur: duckdb.DuckDBPyConnection, verdicts: Sequence[CheckRecord]) -> None:
        now = utcnow()
        _insert_rows(cur, "sample_checks", [
            {"sample_id": v.sample_id, "check": v.check, "keep": v.keep, "reason": v.reason,
             "details": json.dumps(v.details), "options": json.dumps(v.options), "created_at": now}
            for v in verdicts
        ])

    def sample_checks(self, sample_id: int) -> pd.DataFrame:
        return self.cursor().execute(
            'SELECT * FROM sample_checks WHERE sample_id = ? ORDER BY created_at', [sample_id]
        ).df()

    # -------------------------------------------------------- knowledge base
    def add_kb_documents(self, documents: Sequence[tuple[str, str | None, str, dict[str, int]]]) -> list[int]:
        """Store passages as (source, title, text, term counts); a text already in the base is skipped.

        Returns the new passages' ids. Term counts come from the caller's tokenizer, so the index and the
        queries always tokenize alike.
        """
        now = utcnow()
        with self.transaction() as cur:
            known = {h for (h,) in cur.execute("SELECT text_hash FROM kb_documents").fetchall()}
            next_id = int(cur.execute("SELECT coalesce(max(id), 0) + 1 FROM kb_documents").fetchall()[0][0])
            docs: list[dict[str, Any]] = []
            terms: list[dict[str, Any]] = []
            for source, title, text, counts in documents:
                digest = text_hash(text)
                if digest in known:
                    continue
                known.add(digest)
                docs.append({"id": next_id, "source": source, "title": title or None, "text": text,
                             "text_hash": digest, "length": sum(counts.values()), "created_at": now})
                terms.extend({"doc_id": next_id, "term": term, "tf": tf} for term, tf in counts.items())
                next_id += 1
            _insert_rows(cur, "kb_documents", docs)
            _insert_rows(cur, "kb_terms", terms)
        return [doc["id"] for doc in docs]

    def _has_kb(self) -> bool:
        return bool(self._scalar(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'kb_documents' AND database_name = "
            "current_database()"))

    def kb_count(self) -> int:
        return int(self._scalar("SELECT count(*) FROM kb_documents")) if self._has_kb() else 0

    def kb_documents(self, ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Passages (id, source, title, text, text_hash), all of them or those `ids` name, by id."""
        columns = "id, source, title, text, text_hash"
        if not self._has_kb():
            return pd.DataFrame(columns=columns.split(", "))
        if ids is None:
            return self.cursor().execute(f"SELECT {columns} FROM kb_documents ORDER BY id").df()
        return self.cursor().execute(
            f"SELECT {columns} FROM kb_documents WHERE list_contains(?, id) ORDER BY id", [list(ids)]
        ).df()

    def kb_bm25(self, terms: Sequence[str], k: int, k1: float = 1.2, b: float = 0.75) -> list[tuple[int, float]]:
        """Top-k passages for query terms by Okapi BM25 (idf = ln(1 + (N - n + 0.5) / (n + 0.5))), one query."""
        if not terms or not self._has_kb():
            return []
        rows = self.cursor().execute(
            """
            WITH q AS (SELECT DISTINCT unnest(?::VARCHAR[]) AS term),
            stats AS (SELECT count(*) AS n_docs, avg(length) AS avgdl FROM kb_documents),
            df AS (SELECT t.term, count(*) AS n FROM kb_terms t JOIN q ON t.term = q.term GROUP BY t.term)
            SELECT t.doc_id,
                   sum(ln(1 + (stats.n_docs - df.n + 0.5) / (df.n + 0.5))
                       * t.tf * (? + 1) / (t.tf + ? * (1 - ? + ? * d.length / stats.avgdl))) AS score
            FROM kb_terms t JOIN df ON t.term = df.term JOIN kb_documents d ON d.id = t.doc_id CROSS JOIN stats
            GROUP BY t.doc_id ORDER BY score DESC, t.doc_id LIMIT ?
            """,
            [list(terms), k1, k1, b, b, k],
        ).fetchall()
        return [(int(doc_id), float(score)) for doc_id, score in rows]

    # ----------------------------------------------------------- projections
    def projection(self, projection_id: str) -> tuple[bytes | None, int] | None:
        """A fitted 2-D projection (pickled model, number of texts it was fitted on), or None."""
        rows = self.cursor().execute(
            "SELECT model, fitted_on FROM projections WHERE id = ?", [projection_id]
        ).fetchall()
        return (rows[0][0], int(rows[0][1])) if rows else None

    def projection_info(self, projection_id: str) -> tuple[int, datetime] | None:
        """(texts fitted on, when) of a projection, without reading its pickled model (large for big maps)."""
        rows = self.cursor().execute(
            "SELECT fitted_on, created_at FROM projections WHERE id = ?", [projection_id]
        ).fetchall()
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def save_projection(
        self, projection_id: str, embed_model: str, params: dict[str, Any], model: bytes | None,
        hashes: Sequence[str], xy: np.ndarray,
    ) -> None:
        """Replace a projection and all its points with a fresh fit, atomically."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM projection_points WHERE projection_id = ?", [projection_id])
            cur.execute("DELETE FROM projections WHERE id = ?", [projection_id])
            cur.execute("INSERT INTO projections VALUES (?, ?, ?, ?, ?, ?)",
                        [projection_id, embed_model, json.dumps(params), model, len(hashes), utcnow()])
            self._insert_points(cur, projection_id, hashes, xy, fitted=True)

    def add_projection_points(self, projection_id: str, hashes: Sequence[str], xy: np.ndarray) -> None:
        """Texts placed into an existing projection without refitting it."""
        with self.transaction() as cur:
            self._insert_points(cur, projection_id, hashes, xy, fitted=False)

    def _insert_points(
        self, cur: duckdb.DuckDBPyConnection, projection_id: str, hashes: Sequence[str], xy: np.ndarray, fitted: bool
    ) -> None:
        rows = [{"projection_id": projection_id, "text_hash": h, "x": float(x), "y": float(y), "fitted": fitted}
                for h, (x, y) in zip(hashes, xy, strict=True)]
        _insert_rows(cur, "projection_points", rows, skip_existing=True)

    def projection_points(self, projection_id: str) -> pd.DataFrame:
        return self.cursor().execute(
            "SELECT text_hash, x, y, fitted FROM projection_points WHERE projection_id = ?", [projection_id]
        ).df()

    # ------------------------------------------------------------- LLM calls
    def cached_response(self, cache_key: str) -> tuple[str, str | None, int, int] | None:
        rows = self.cursor().execute(
            "SELECT response, finish_reason, prompt_tokens, completion_tokens FROM llm_calls "
            "WHERE cache_key = ? AND error IS NULL AND NOT cached LIMIT 1",
            [cache_key],
        ).fetchall()
        return (rows[0][0], rows[0][1], int(rows[0][2]), int(rows[0][3])) if rows else None

    def insert_llm_calls(self, calls: Sequence[LLMCallRecord]) -> None:
        with self.transaction() as cur:
            self._insert_calls(cur, calls)

    def _insert_calls(self, cur: duckdb.DuckDBPyConnection, calls: Sequence[LLMCallRecord]) -> None:
        rows = [
            {**asdict(c), "messages": json.dumps(c.messages), "params": json.dumps(c.params)} for c in calls
        ]
        _insert_rows(cur, "llm_calls", rows)

    # ---------------------------------------------------------------- events
    def add_event(
        self, run_id: str | None, level: str, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        with self.transaction() as cur:
            self._event(cur, run_id, level, kind, message, data)

    def _event(
        self,
        cur: duckdb.DuckDBPyConnection,
        run_id: str | None,
        level: str,
        kind: str,
        message: str,
        data: dict[str, Any] | None,
    ) -> None:
        cur.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, utcnow(), level, kind, message, json.dumps(data) if data is not None else None],
        )

    def events(self, run_id: str | None = None, limit: int = 100) -> pd.DataFrame:
        if run_id is None:
            return self.cursor().execute("SELECT * FROM events ORDER BY created_at DESC LIMIT ?", [limit]).df()
        return self.cursor().execute(
            "SELECT * FROM events WHERE run_id = ? ORDER BY created_at DESC LIMIT ?", [run_id, limit]
        ).df()


DEFAULT_HOME = Path("datagen-projects")


def default_home() -> Path:
    """Where project files live: $DATAGEN_HOME, else ./datagen-projects."""
    return Path(os.environ.get("DATAGEN_HOME", str(DEFAULT_HOME)))
