"""What the store hands back and takes in: plain frozen records, and the typed sample filter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from datagen_core.config import RunConfig

RUN_STATUSES = ("running", "completed", "interrupted", "stopped", "failed")
#: Statuses a run may go on from (`--resume`, the studio's Resume).
RESUMABLE_STATUSES = ("running", "interrupted", "failed")
SAMPLE_STATUSES = ("pending", "accepted", "rejected")
#: What an export holds unless asked otherwise: what review kept or has not judged yet, never what it rejected.
EXPORT_STATUSES = ("accepted", "pending")

# The order of a listing of samples: by id, which is the order they were stored in.
SampleOrder = Literal["oldest", "newest"]


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
        """The filter as a WHERE condition over `samples` and its parameters (for the store's own queries)."""
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
