"""Samples: offspring written with their lineage, listings by filter, edits with history, quality verdicts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from datagen_core.errors import DatagenError
from datagen_core.records import LLMCallRecord, NewSample, text_hash, utcnow
from datagen_core.store.connection import insert_rows, retry_on_conflict
from datagen_core.store.embeddings import insert_embeddings
from datagen_core.store.llm_calls import insert_calls
from datagen_core.store.project import ProjectTables, allocate_ids
from datagen_core.store.rows import SAMPLE_STATUSES, CheckRecord, SampleFilter, SampleOrder

_ORDER_BY: dict[str, str] = {"oldest": "id", "newest": "id DESC"}


def insert_checks(cur: duckdb.DuckDBPyConnection, verdicts: Sequence[CheckRecord]) -> None:
    """Write quality verdicts inside the caller's transaction."""
    now = utcnow()
    insert_rows(cur, "sample_checks", [
        {"sample_id": v.sample_id, "check": v.check, "keep": v.keep, "reason": v.reason,
         "details": json.dumps(v.details), "options": json.dumps(v.options), "created_at": now}
        for v in verdicts
    ])


class SampleTables(ProjectTables):
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
            insert_calls(cur, calls)
            insert_embeddings(cur, embed_model, embeddings)
            insert_checks(cur, verdicts)
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
            insert_rows(cur, "samples", rows)

    def allocate_sample_ids(self, n: int) -> list[int]:
        return allocate_ids(self.cursor(), n) if n else []

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
        return self.sample_page(chosen, order="oldest")

    def sample_page(
        self, chosen: SampleFilter, *, offset: int = 0, limit: int | None = None, order: SampleOrder = "newest"
    ) -> pd.DataFrame:
        """One page of samples (server-side, so large projects stay fast), newest first by default."""
        if order not in _ORDER_BY:
            raise ValueError(f"unsupported order {order!r}; use one of {sorted(_ORDER_BY)}")
        where, params = chosen.where()
        sql = f"SELECT * EXCLUDE (text_hash) FROM samples WHERE {where} ORDER BY {_ORDER_BY[order]}"
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
                for field, value in changes.items():  # field is one of the three names above, never user text
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

        retry_on_conflict(apply)

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

        return retry_on_conflict(apply)

    def sample_histories(self, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Every edit of these samples, oldest first, by sample id (samples never edited are absent)."""
        if not ids:
            return {}
        frame = self.cursor().execute(
            "SELECT sample_id, field, old_value, new_value, actor, strftime(edited_at, '%Y-%m-%dT%H:%M:%S') AS at "
            "FROM sample_edits WHERE sample_id IN (SELECT unnest(?)) ORDER BY sample_id, edited_at",
            [list(map(int, ids))],
        ).df()
        edits: dict[int, list[dict[str, Any]]] = {}
        for row in frame.itertuples(index=False):
            edits.setdefault(int(row.sample_id), []).append(
                {"field": row.field, "old": row.old_value, "new": row.new_value, "actor": row.actor, "at": row.at})
        return edits

    def sample_history(self, sample_id: int) -> pd.DataFrame:
        return self.cursor().execute(
            "SELECT * FROM sample_edits WHERE sample_id = ? ORDER BY edited_at", [sample_id]
        ).df()

    def record_checks(self, verdicts: Sequence[CheckRecord]) -> None:
        """Verdicts of quality modules on stored samples."""
        with self.transaction() as cur:
            insert_checks(cur, verdicts)

    def sample_checks(self, sample_id: int) -> pd.DataFrame:
        return self.cursor().execute(
            'SELECT * FROM sample_checks WHERE sample_id = ? ORDER BY created_at', [sample_id]
        ).df()
