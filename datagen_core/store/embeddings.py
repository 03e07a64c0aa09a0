"""The embedding cache: one vector per (embedding model, text hash), so a text is embedded once."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from datagen_core.store.connection import Connection


def insert_embeddings(cur: duckdb.DuckDBPyConnection, model: str, vectors: dict[str, np.ndarray]) -> None:
    """Write vectors by text hash inside the caller's transaction; a hash already stored keeps its vector."""
    if not vectors:
        return
    frame = pd.DataFrame({"h": list(vectors), "v": [v.astype(np.float32).tolist() for v in vectors.values()]})
    cur.register("incoming_vectors", frame)
    cur.execute("INSERT INTO embeddings SELECT ?, h, v FROM incoming_vectors ON CONFLICT DO NOTHING", [model])
    cur.unregister("incoming_vectors")


class EmbeddingTables(Connection):
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
            insert_embeddings(cur, model, vectors)
