"""The cache of evaluation results, keyed by a hash of everything that produced them (data, trainer, settings)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from datagen_core.records import utcnow
from datagen_core.store.connection import Connection, retry_on_conflict


class EvaluationTables(Connection):
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

        retry_on_conflict(apply)

    def evaluations(self, subject: str | None = None) -> pd.DataFrame:
        """Every cached result with the settings that produced it, newest first."""
        sql = "SELECT key, kind, subject, params, seconds, created_at FROM evaluations"
        params = [subject] if subject is not None else []
        if subject is not None:
            sql += " WHERE subject = ?"
        return self.cursor().execute(sql + " ORDER BY created_at DESC", params).df()
