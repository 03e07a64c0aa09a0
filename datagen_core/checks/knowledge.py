"""A local knowledge base for fact checks (SPEC §3): loading passages and retrieving them.

Passages live in the project store (`kb_documents`) with their embeddings in the shared embedding
cache. Retrieval works two ways and merges them:

- by embedding: cosine similarity of normalised all-MiniLM-L6-v2 vectors (a dot product), top-k;
- by keywords: Okapi BM25 (k1=1.2, b=0.75) computed in one DuckDB query over a term index
  (`kb_terms(doc_id, term, tf)`) built here at load time. DuckDB's `fts` extension would do this, but it
  cannot be installed offline and its wheel exists only for DuckDB 1.5 while we run 2.0, so the index is
  ours: a lower-case word tokenizer and a small English stop-word list, shared by indexing and querying.

`retrieve` fuses both rankings by reciprocal-rank fusion (RRF, k=60): rank-based, so the two methods'
incomparable scores never need calibrating, and a passage found by both rises to the top.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from datagen_core.embed import Embedder
from datagen_core.errors import DatagenError
from datagen_core.records import STOP_WORDS, terms
from datagen_core.store import Store

K1 = 1.2
B = 0.75
RRF_K = 60
TEXT_SUFFIXES = (".txt", ".md")
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")

EMPTY_KB = "the knowledge base is empty: load a knowledge base first (documents as CSV, JSONL or .txt)"


def tokenize(text: str) -> list[str]:
    """Lower-case words without stop words: the terms of the BM25 index and of its queries."""
    return [word for word in terms(text) if word not in STOP_WORDS]


@dataclass(frozen=True)
class Passage:
    """A retrieved passage: its fused score, and each method's rank and score that found it."""

    doc_id: int
    title: str | None
    text: str
    score: float
    methods: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self, chars: int = 300) -> dict[str, object]:
        """What a verdict keeps of it: id, start of the text, scores and methods."""
        return {"doc_id": self.doc_id, "title": self.title, "text": self.text[:chars],
                "score": round(self.score, 6), "methods": self.methods}


def _paragraphs(text: str) -> list[str]:
    return [" ".join(part.split()) for part in re.split(r"\n\s*\n", text) if part.strip()]


def read_documents(path: Path, text_col: str = "text", title_col: str | None = "title") -> pd.DataFrame:
    """Passages (`source`, `title`, `text`) from a CSV/TSV/JSONL file, a .txt/.md file split into paragraphs,
    or a directory of .txt/.md files. `title_col` is used when the table has it."""
    if not path.exists():
        raise DatagenError(f"{path}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise DatagenError(f"{path}: no .txt or .md files in this directory")
        return pd.concat([read_documents(p) for p in files], ignore_index=True)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        try:
            paragraphs = _paragraphs(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise DatagenError(f"{path}: not UTF-8 text; re-save the file as UTF-8") from None
        return pd.DataFrame({"source": path.name, "title": path.stem, "text": paragraphs})
    if suffix not in TABLE_SUFFIXES:
        raise DatagenError(f"{path}: unsupported file type {suffix!r}; use CSV, TSV, JSONL or .txt")
    try:
        if suffix in (".csv", ".tsv"):
            raw = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        else:
            raw = pd.read_json(path, lines=suffix != ".json", dtype=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DatagenError(f"{path}: cannot parse: {str(exc).strip().splitlines()[0] if str(exc) else exc}") from None
    if text_col not in raw.columns:
        raise DatagenError(f"{path}: no column {text_col!r} (columns: {', '.join(map(str, raw.columns))}); "
                           "name the text column")
    texts = raw[text_col].fillna("").astype(str).map(lambda t: " ".join(t.split()))
    titles = raw[title_col].fillna("").astype(str) if title_col and title_col in raw.columns else None
    frame = pd.DataFrame({"source": path.name, "title": titles if titles is not None else None, "text": texts})
    return frame[frame["text"] != ""].reset_index(drop=True)


def load_knowledge(
    store: Store, embedder: Embedder, path: Path, text_col: str = "text", title_col: str | None = "title"
) -> int:
    """Add a file's (or directory's) passages to the project's knowledge base, indexed for both kinds of
    search; passages already there are skipped. Returns how many were added."""
    frame = read_documents(path, text_col, title_col)
    if frame.empty:
        raise DatagenError(f"{path}: no non-empty passages to load")
    return add_passages(store, embedder, list(frame.itertuples(index=False, name=None)))


def add_passages(store: Store, embedder: Embedder, rows: Sequence[tuple[str, str | None, str]]) -> int:
    """Index (source, title, text) passages: term counts for BM25, embeddings into the store's cache."""
    ids = store.add_kb_documents([(source, title or None, text, dict(Counter(tokenize(text))))
                                  for source, title, text in rows])
    if ids:
        added = store.kb_documents(ids)
        embedder.embed_stored(store, list(added["text"]))
    return len(ids)


class KnowledgeBase:
    """Search over a store's passages; the passage vectors are read once per instance."""

    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self._documents: pd.DataFrame | None = None
        self._vectors: np.ndarray | None = None

    def _load(self) -> tuple[pd.DataFrame, np.ndarray]:
        if self._documents is None or self._vectors is None:
            documents = self.store.kb_documents()
            if documents.empty:
                raise DatagenError(EMPTY_KB)
            vectors, _ = self.embedder.embed(self.store, list(documents["text"]))  # cached at load time
            self._documents, self._vectors = documents.reset_index(drop=True), vectors
        return self._documents, self._vectors

    def ensure_loaded(self) -> int:
        """Number of passages; raises a DatagenError saying what to do when there are none."""
        return len(self._load()[0])

    def search_embedding(self, query: str, k: int) -> list[tuple[int, float]]:
        """(doc id, cosine similarity) of the k passages nearest the query."""
        documents, vectors = self._load()
        query_vector, _ = self.embedder.embed(self.store, [query])
        similarities = vectors @ query_vector[0]
        top = np.argsort(-similarities, kind="stable")[:k]
        return [(int(documents["id"].iloc[i]), float(similarities[i])) for i in top]

    def search_keywords(self, query: str, k: int) -> list[tuple[int, float]]:
        """(doc id, BM25 score) of the k best passages for the query's terms."""
        self._load()
        return self.store.kb_bm25(tokenize(query), k, K1, B)

    def retrieve(self, query: str, k: int = 5, methods: Sequence[str] = ("embedding", "bm25")) -> list[Passage]:
        """The k best passages by reciprocal-rank fusion of the chosen methods' rankings."""
        documents, _ = self._load()
        depth = max(k * 4, 20)  # fuse deeper than k so a passage ranked moderately by both can win
        rankings = {"embedding": self.search_embedding, "bm25": self.search_keywords}
        fused: dict[int, float] = {}
        found: dict[int, dict[str, dict[str, float]]] = {}
        for method in methods:
            if method not in rankings:
                raise DatagenError(f"unknown retrieval method {method!r}; use embedding or bm25")
            for rank, (doc_id, score) in enumerate(rankings[method](query, depth), start=1):
                fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (RRF_K + rank)
                found.setdefault(doc_id, {})[method] = {"rank": rank, "score": round(score, 6)}
        best = sorted(fused, key=lambda d: (-fused[d], d))[:k]
        by_id = documents.set_index("id")
        return [Passage(doc_id, _title(by_id.at[doc_id, "title"]), str(by_id.at[doc_id, "text"]), fused[doc_id],
                        found[doc_id]) for doc_id in best]


def _title(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None
