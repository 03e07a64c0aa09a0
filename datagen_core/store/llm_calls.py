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
    rows = [{**asdict(c), "messages": json.dumps(c.messages), "params": json.dumps(c.params)} for c in calls]
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
