"""The knowledge base for fact checks: passages and a term index, searched by Okapi BM25 in SQL.

Term counts come from the caller's tokenizer, so the index and the queries always tokenize alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from datagen_core.records import text_hash, utcnow
from datagen_core.store.connection import Connection, insert_rows

_PASSAGE_COLUMNS = "id, source, title, text, text_hash"


class KnowledgeTables(Connection):
    def add_kb_documents(self, documents: Sequence[tuple[str, str | None, str, dict[str, int]]]) -> list[int]:
        """Store passages as (source, title, text, term counts); a text already in the base is skipped.

        Returns the new passages' ids.
        """
        now = utcnow()
        with self.transaction() as cur:
            known = {h for (h,) in cur.execute("SELECT text_hash FROM kb_documents").fetchall()}
            next_id = int(cur.execute("SELECT coalesce(max(id), 0) + 1 FROM kb_documents").fetchall()[0][0])
            docs: list[dict[str, Any]] = []
            terms: list[dict[str, Any]] = []
            for source, title, text, counts in documents:
                digest = text_hash(text)
                if digest in known:
                    continue
                known.add(digest)
                docs.append({"id": next_id, "source": source, "title": title or None, "text": text,
                             "text_hash": digest, "length": sum(counts.values()), "created_at": now})
                terms.extend({"doc_id": next_id, "term": term, "tf": tf} for term, tf in counts.items())
                next_id += 1
            insert_rows(cur, "kb_documents", docs)
            insert_rows(cur, "kb_terms", terms)
        return [doc["id"] for doc in docs]

    def kb_count(self) -> int:
        return int(self._scalar("SELECT count(*) FROM kb_documents"))

    def kb_documents(self, ids: Sequence[int] | None = None) -> pd.DataFrame:
        """Passages (id, source, title, text, text_hash), all of them or those `ids` name, by id."""
        if ids is None:
            return self.cursor().execute(f"SELECT {_PASSAGE_COLUMNS} FROM kb_documents ORDER BY id").df()
        return self.cursor().execute(
            f"SELECT {_PASSAGE_COLUMNS} FROM kb_documents WHERE list_contains(?, id) ORDER BY id", [list(ids)]
        ).df()

    def kb_bm25(self, terms: Sequence[str], k: int, k1: float = 1.2, b: float = 0.75) -> list[tuple[int, float]]:
        """Top-k passages for query terms by Okapi BM25 (idf = ln(1 + (N - n + 0.5) / (n + 0.5))), one query."""
        if not terms:
            return []
        rows = self.cursor().execute(
            """
            WITH q AS (SELECT DISTINCT unnest(?::VARCHAR[]) AS term),
            stats AS (SELECT count(*) AS n_docs, avg(length) AS avgdl FROM kb_documents),
            df AS (SELECT t.term, count(*) AS n FROM kb_terms t JOIN q ON t.term = q.term GROUP BY t.term)
            SELECT t.doc_id,
                   sum(ln(1 + (stats.n_docs - df.n + 0.5) / (df.n + 0.5))
                       * t.tf * (? + 1) / (t.tf + ? * (1 - ? + ? * d.length / stats.avgdl))) AS score
            FROM kb_terms t JOIN df ON t.term = df.term JOIN kb_documents d ON d.id = t.doc_id CROSS JOIN stats
            GROUP BY t.doc_id ORDER BY score DESC, t.doc_id LIMIT ?
            """,
            [list(terms), k1, k1, b, b, k],
        ).fetchall()
        return [(int(doc_id), float(score)) for doc_id, score in rows]
