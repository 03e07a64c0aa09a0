"""2-D maps of the embeddings: each map's parameters and every text's coordinates in it, as plain numbers.

No fitted model is kept (a pickled one could run code when a shared file is opened): texts added after a
fit are placed from the coordinates and stored embeddings of the fitted texts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from datagen_core.records import utcnow
from datagen_core.store.connection import Connection, insert_rows


def _insert_points(
    cur: duckdb.DuckDBPyConnection, projection_id: str, hashes: Sequence[str], xy: np.ndarray, fitted: bool
) -> None:
    rows = [{"projection_id": projection_id, "text_hash": h, "x": float(x), "y": float(y), "fitted": fitted}
            for h, (x, y) in zip(hashes, xy, strict=True)]
    insert_rows(cur, "projection_points", rows, skip_existing=True)


class ProjectionTables(Connection):
    def projection_info(self, projection_id: str) -> tuple[int, datetime] | None:
        """(texts fitted on, when) of a projection, or None before its first fit."""
        rows = self.cursor().execute(
            "SELECT fitted_on, created_at FROM projections WHERE id = ?", [projection_id]
        ).fetchall()
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def save_projection(
        self, projection_id: str, embed_model: str, params: dict[str, Any], hashes: Sequence[str], xy: np.ndarray
    ) -> None:
        """Replace a projection and all its points with a fresh fit, atomically."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM projection_points WHERE projection_id = ?", [projection_id])
            cur.execute("DELETE FROM projections WHERE id = ?", [projection_id])
            cur.execute("INSERT INTO projections VALUES (?, ?, ?, ?, ?)",
                        [projection_id, embed_model, json.dumps(params), len(hashes), utcnow()])
            _insert_points(cur, projection_id, hashes, xy, fitted=True)

    def add_projection_points(self, projection_id: str, hashes: Sequence[str], xy: np.ndarray) -> None:
        """Texts placed into an existing projection without refitting it."""
        with self.transaction() as cur:
            _insert_points(cur, projection_id, hashes, xy, fitted=False)

    def projection_points(self, projection_id: str) -> pd.DataFrame:
        return self.cursor().execute(
            "SELECT text_hash, x, y, fitted FROM projection_points WHERE projection_id = ?", [projection_id]
        ).df()

    def fitted_points(self, projection_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(coordinates n×2, embeddings n×d) of the texts a projection was fitted on, in the same order.

        A fitted text whose embedding is not stored under the projection's embedding model is left out.
        """
        rows = self.cursor().execute(
            "SELECT p.x, p.y, e.vector FROM projection_points p JOIN projections j ON j.id = p.projection_id "
            "JOIN embeddings e ON e.model = j.embed_model AND e.text_hash = p.text_hash "
            "WHERE p.projection_id = ? AND p.fitted ORDER BY p.text_hash",
            [projection_id],
        ).fetchall()
        xy = np.array([(x, y) for x, y, _ in rows], dtype=np.float64).reshape(-1, 2)
        vectors = np.array([v for _, _, v in rows], dtype=np.float32)
        return xy, vectors
