"""The record of every LLM call, which is also the response cache (a successful, uncached call is reused)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

import duckdb

from datagen_core.records import LLMCallRecord
from datagen_core.store.connection import Connection, insert_rows


def insert_calls(cur: duckdb.DuckDBPyConnection, calls: Sequence[LLMCallRecord]) -> None:
    """Write call records inside the caller's transaction."""
    rows = [{**asdict(c), "messages": json.dumps(c.messages), "params": json.dumps(c.params),
             "request": None if c.request is None else json.dumps(c.request),
             "faults": None if c.faults is None else json.dumps(c.faults)} for c in calls]
    insert_rows(cur, "llm_calls", rows)


class LLMCallTables(Connection):
    def cached_response(self, cache_key: str) -> tuple[str, str | None, int, int] | None:
        """(response, finish reason, prompt tokens, completion tokens) of a stored answer to the same request."""
        rows = self.cursor().execute(
            "SELECT response, finish_reason, prompt_tokens, completion_tokens FROM llm_calls "
            "WHERE cache_key = ? AND error IS NULL AND NOT cached LIMIT 1",
            [cache_key],
        ).fetchall()
        return (rows[0][0], rows[0][1], int(rows[0][2]), int(rows[0][3])) if rows else None

    def insert_llm_calls(self, calls: Sequence[LLMCallRecord]) -> None:
        with self.transaction() as cur:
            insert_calls(cur, calls)

    def unused_answers(self, run_id: str) -> list[LLMCallRecord]:
        """A run's answered calls that no sample was made from (they landed just before a crash), oldest first."""
        rows = self.cursor().execute(
            "SELECT id, run_id, purpose, backend, model, cache_key, messages, params, response, finish_reason, "
            "prompt_tokens, completion_tokens, latency_ms, attempts, cached, error, created_at, request, faults, "
            "coalesce(lost_ms, 0) FROM llm_calls c WHERE run_id = ? AND request IS NOT NULL AND error IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM samples s WHERE s.run_id = c.run_id AND s.llm_call_id = c.id) "
            "ORDER BY created_at",
            [run_id],
        ).fetchall()
        return [
            LLMCallRecord(*row[:6], json.loads(row[6]), json.loads(row[7]), *row[8:17], json.loads(row[17]),
                          json.loads(row[18]) if row[18] else None, float(row[19]))
            for row in rows
        ]

    def run_faults(self, run_id: str) -> dict[str, int]:
        """Transient faults a run's calls went through, by kind (retried or, after the last attempt, given up)."""
        totals: dict[str, int] = {}
        for (faults,) in self.cursor().execute(
            "SELECT faults FROM llm_calls WHERE run_id = ? AND faults IS NOT NULL", [run_id]
        ).fetchall():
            for kind, count in json.loads(faults).items():
                totals[kind] = totals.get(kind, 0) + int(count)
        return dict(sorted(totals.items(), key=lambda item: -item[1]))
