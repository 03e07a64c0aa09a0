"""The project store: the only package that knows the DuckDB schema and writes SQL.

One DuckDB file per project; `Store` is one connection to it, made of one mixin per concern (project,
genes, samples, runs, LLM calls, embeddings, evaluations, maps, knowledge base) over `Connection`, which
opens the file, applies its missing migrations (`schema`) and hands out a cursor per thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from datagen_core.store.connection import Connection
from datagen_core.store.embeddings import EmbeddingTables
from datagen_core.store.evaluations import EvaluationTables
from datagen_core.store.genes import GeneTables
from datagen_core.store.knowledge import KnowledgeTables
from datagen_core.store.llm_calls import LLMCallTables
from datagen_core.store.project import ProjectTables
from datagen_core.store.projections import ProjectionTables
from datagen_core.store.protocols import EmbeddingCache, ResponseCache
from datagen_core.store.rows import (
    EXPORT_STATUSES,
    RESUMABLE_STATUSES,
    RUN_STATUSES,
    SAMPLE_STATUSES,
    CheckRecord,
    PopulationMember,
    ProjectInfo,
    RunInfo,
    SampleFilter,
    SampleOrder,
)
from datagen_core.store.runs import RunTables
from datagen_core.store.samples import SampleTables
from datagen_core.store.schema import SCHEMA_VERSION


class Store(
    SampleTables, ProjectTables, GeneTables, RunTables, LLMCallTables, EmbeddingTables, EvaluationTables,
    ProjectionTables, KnowledgeTables, Connection,
):
    """A project's DuckDB file. Use `Store.create` for a new project and `Store.open` otherwise."""


DEFAULT_HOME = Path("datagen-projects")


def project_path(home: Path, name: str) -> Path:
    return home / f"{name}.duckdb"


def default_home() -> Path:
    """Where project files live: $DATAGEN_HOME, else ./datagen-projects."""
    return Path(os.environ.get("DATAGEN_HOME", str(DEFAULT_HOME)))


__all__ = [
    "DEFAULT_HOME", "EXPORT_STATUSES", "RESUMABLE_STATUSES", "RUN_STATUSES", "SAMPLE_STATUSES", "SCHEMA_VERSION",
    "CheckRecord", "EmbeddingCache",
    "PopulationMember", "ProjectInfo", "ResponseCache", "RunInfo", "SampleFilter", "SampleOrder", "Store",
    "default_home", "project_path",
]
