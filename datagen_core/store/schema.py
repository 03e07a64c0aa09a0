"""The project file's schema as numbered migrations, each applied once and recorded in the file.

`meta.schema_version` is the number of the last migration a file has had; a new file gets them all, an
older one the missing ones on open, each in one transaction with its version. Version 1 is the schema the
first studio wrote, then given later tables and a column on every open (`IF NOT EXISTS`) without a new
version number: a version-1 file may already hold what migrations 2 and 3 add, so every migration after 1
tolerates finding its change already made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from datagen_core.errors import DatagenError


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    sql: str


_ORIGINAL = """
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
-- Topics per label / values per attribute that the baseline methods sample (versioned like gene sets).
CREATE TABLE value_sets (
    kind VARCHAR NOT NULL, version INTEGER NOT NULL, items VARCHAR NOT NULL, source VARCHAR NOT NULL,
    note VARCHAR NOT NULL, gene_set_version INTEGER, created_at TIMESTAMP NOT NULL, PRIMARY KEY (kind, version)
);
-- A knowledge base the user loads for fact checks (SPEC §3): passages and a term index for BM25 in SQL
-- (DuckDB's fts extension cannot be installed offline for this DuckDB version).
CREATE TABLE kb_documents (
    id BIGINT PRIMARY KEY, source VARCHAR NOT NULL, title VARCHAR, text VARCHAR NOT NULL,
    text_hash VARCHAR NOT NULL UNIQUE, length INTEGER NOT NULL, created_at TIMESTAMP NOT NULL
);
CREATE TABLE kb_terms (doc_id BIGINT NOT NULL, term VARCHAR NOT NULL, tf INTEGER NOT NULL);
"""

# Held-out real examples are never seeds, so the generator never sees what downstream F1 is measured on;
# evaluation results are cached under a key hashing everything that produced them (data, trainer, settings).
_HELDOUT_AND_EVALUATIONS = """
CREATE TABLE IF NOT EXISTS heldout (
    text VARCHAR NOT NULL, label VARCHAR NOT NULL, text_hash VARCHAR NOT NULL, source VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    key VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, subject VARCHAR NOT NULL, params VARCHAR NOT NULL,
    result VARCHAR NOT NULL, seconds DOUBLE NOT NULL, created_at TIMESTAMP NOT NULL
);
"""

# NULL in the projects that predate it, which read it as the setting's default.
_MIN_WORDS = "ALTER TABLE project ADD COLUMN IF NOT EXISTS min_words INTEGER;"

# A pickled model in a shared project file could run code on the machine that opens it: the maps keep only
# coordinates, and new texts are placed from their fitted neighbours (datagen_core.projection).
_NO_PICKLED_PROJECTION = "ALTER TABLE projections DROP COLUMN IF EXISTS model;"

# What a run asked each call for (the label, parents and gene split its answer becomes a sample with), so an
# answer that landed before a crash is made into its sample on resume instead of being paid for again; and the
# transient faults each call went through (kind -> count) with the time they cost.
_CALL_REQUESTS_AND_FAULTS = """
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS request VARCHAR;
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS faults VARCHAR;
ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS lost_ms DOUBLE;
"""

MIGRATIONS = (
    Migration(1, "the original schema", _ORIGINAL),
    Migration(2, "held-out examples and cached evaluations", _HELDOUT_AND_EVALUATIONS),
    Migration(3, "the project's minimum sample length", _MIN_WORDS),
    Migration(4, "maps without a pickled model", _NO_PICKLED_PROJECTION),
    Migration(5, "call requests and faults", _CALL_REQUESTS_AND_FAULTS),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def recorded_version(cur: duckdb.DuckDBPyConnection, path: Path) -> int:
    """The file's schema version; one clear error for a file that is not a project."""
    try:
        rows = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    except duckdb.CatalogException:
        rows = []
    if not rows or not str(rows[0][0]).isdigit():
        raise DatagenError(f"{path} is not a project file (it records no schema version)")
    version = int(rows[0][0])
    if version > SCHEMA_VERSION:
        raise DatagenError(f"{path} was written by a newer version of the studio (schema {version}, this one "
                           f"reads up to {SCHEMA_VERSION}): upgrade the studio to open it")
    return version


def missing(version: int) -> list[Migration]:
    """The migrations a file at `version` has not had, in order."""
    return [migration for migration in MIGRATIONS if migration.version > version]


def apply(cur: duckdb.DuckDBPyConnection, migration: Migration) -> None:
    """Run one migration and record it, inside the caller's transaction."""
    cur.execute(migration.sql)
    cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(migration.version)])
