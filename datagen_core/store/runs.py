"""Runs (their config as stored JSON, status, progress counts, populations) and the event log."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pandas as pd

from datagen_core.config import LLMConfig, RunConfig
from datagen_core.errors import DatagenError
from datagen_core.records import utcnow
from datagen_core.store.connection import Connection, retry_on_conflict
from datagen_core.store.rows import RESUMABLE_STATUSES, RUN_STATUSES, PopulationMember, RunInfo


def insert_event(
    cur: duckdb.DuckDBPyConnection,
    run_id: str | None,
    level: str,
    kind: str,
    message: str,
    data: dict[str, Any] | None,
) -> None:
    """Log an event inside the caller's transaction."""
    cur.execute(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
        [run_id, utcnow(), level, kind, message, json.dumps(data) if data is not None else None],
    )


class RunTables(Connection):
    def create_run(self, run_id: str, config: RunConfig, gene_set_version: int | None, llm: LLMConfig) -> None:
        now = utcnow()
        llm_public = llm.model_dump(include={"backend", "base_url", "model", "max_in_flight"})
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, 'running', NULL, ?, ?)",
                [run_id, config.method, config.model_dump_json(), gene_set_version, json.dumps(llm_public), now, now],
            )
            insert_event(cur, run_id, "info", "run_started", f"run {run_id} started", {"config": config.model_dump()})

    def set_run_status(self, run_id: str, status: str, error: str | None = None) -> None:
        assert status in RUN_STATUSES

        def apply() -> None:
            with self.transaction() as cur:
                cur.execute("UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                            [status, error, utcnow(), run_id])
                insert_event(cur, run_id, "error" if error else "info", f"run_{status}", error or f"run {status}", None)

        retry_on_conflict(apply)

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first; the config is validated from its stored JSON as it was written."""
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
        """The run `--resume` means: the newest unfinished one that stored something (a run that failed its
        connection check before any answer is passed over while one with work exists)."""
        unfinished = [r for r in self.runs() if r.status in RESUMABLE_STATUSES]
        if not unfinished:
            return None
        worked = {row[0] for row in self.cursor().execute(
            "SELECT DISTINCT run_id FROM samples WHERE run_id IS NOT NULL UNION "
            "SELECT DISTINCT run_id FROM llm_calls WHERE run_id IS NOT NULL AND error IS NULL").fetchall()}
        with_work = [r for r in unfinished if r.id in worked]
        return (with_work or unfinished)[-1]

    def counted_offspring(self, run_id: str) -> dict[str, int]:
        """Kept offspring per label that nobody rejected in review: what a run (or its top-up) counts towards
        its target."""
        rows = self.cursor().execute(
            "SELECT label, count(*) FROM samples WHERE run_id = ? AND filter_reason IS NULL AND status <> 'rejected' "
            "GROUP BY label", [run_id]
        ).fetchall()
        return dict(rows)

    def rejected_offspring(self, run_id: str) -> dict[str, int]:
        """Kept offspring per label rejected in review: what a top-up asks for again."""
        rows = self.cursor().execute(
            "SELECT label, count(*) FROM samples WHERE run_id = ? AND filter_reason IS NULL AND status = 'rejected' "
            "GROUP BY label", [run_id]
        ).fetchall()
        return dict(rows)

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

    def kept_synthetic(self, run_id: str) -> pd.DataFrame:
        """A run's dataset as a user would export it: kept offspring not rejected, oldest first."""
        return self.cursor().execute(
            "SELECT id, label, text, text_hash FROM samples WHERE run_id = ? AND filter_reason IS NULL "
            "AND status <> 'rejected' ORDER BY id",
            [run_id],
        ).df()

    def used_pairs(self, run_id: str, label: str) -> list[tuple[int, int]]:
        rows = self.cursor().execute(
            "SELECT parent_ids FROM samples WHERE run_id = ? AND label = ? AND len(parent_ids) = 2",
            [run_id, label],
        ).fetchall()
        return [(int(p[0]), int(p[1])) for (p,) in rows]

    def population(self, label: str, run_id: str | None) -> list[PopulationMember]:
        """Real examples of a label plus the kept offspring of one run, oldest first; what a user rejected in
        review is no parent."""
        rows = self.cursor().execute(
            "SELECT id, text, text_hash, origin FROM samples WHERE label = ? AND status <> 'rejected' AND "
            "(origin = 'real' OR (run_id = ? AND filter_reason IS NULL)) ORDER BY id",
            [label, run_id],
        ).fetchall()
        return [PopulationMember(*r) for r in rows]

    def run_usage(self, run_id: str) -> dict[str, float]:
        row = self.cursor().execute(
            "SELECT count(*), count(*) FILTER (WHERE cached), count(*) FILTER (WHERE error IS NOT NULL), "
            "coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), coalesce(sum(attempts), 0), "
            "coalesce(sum(lost_ms), 0) / 1000 FROM llm_calls WHERE run_id = ?",
            [run_id],
        ).fetchall()[0]
        keys = ("calls", "cached_calls", "failed_calls", "prompt_tokens", "completion_tokens", "attempts", "lost_s")
        usage = dict(zip(keys, row, strict=True))
        usage["retries"] = max(usage["attempts"] - usage["calls"], 0)  # extra attempts after 429s, 5xx, timeouts
        return usage

    def add_event(
        self, run_id: str | None, level: str, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        with self.transaction() as cur:
            insert_event(cur, run_id, level, kind, message, data)

    def events(self, run_id: str | None = None, limit: int = 100) -> pd.DataFrame:
        if run_id is None:
            return self.cursor().execute("SELECT * FROM events ORDER BY created_at DESC LIMIT ?", [limit]).df()
        return self.cursor().execute(
            "SELECT * FROM events WHERE run_id = ? ORDER BY created_at DESC LIMIT ?", [run_id, limit]
        ).df()
