"""Group checking (DataGen): drop an item too close to one kept before, by embedding or by text.

An item is compared with the pool (real seeds and stored samples not rejected) and with the items of
the same batch kept before it. Embedding distance is Euclidean on normalised vectors (DataGen: 0.3);
text near-duplicates are word-shingle Jaccard matches among the item's nearest neighbours by embedding,
so the text test costs O(k) per item instead of comparing every pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from datagen_core.checks.base import Check, CheckContext, Item, Verdict
from datagen_core.records import folded_words
from datagen_core.registry import Options
from datagen_core.store import SampleFilter


def shingles(text: str, size: int = 3) -> set[tuple[str, ...]]:
    """Word n-grams of a case-folded text (the words themselves for texts shorter than `size`)."""
    words = folded_words(text)
    if len(words) < size:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def nearest(vector: np.ndarray, pool: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The `k` members of `pool` closest to `vector` (Euclidean, on normalised embeddings), nearest first, and
    their distances: the one distance rule of group checking, in-run (`dedup_distance`) and afterwards."""
    if len(pool) == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    distances = np.linalg.norm(pool - vector, axis=1)
    order = np.argsort(distances)[:k]
    return order, distances[order]


def jaccard(a: set[Any], b: set[Any]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class DedupOptions(Options):
    distance: float = Field(default=0.3, ge=0.0, le=2.0, title="Near-duplicate distance",
                            description="Euclidean distance (normalised embeddings) below which items are the "
                            "same; DataGen used 0.3.")
    text_similarity: float = Field(default=0.8, ge=0.0, le=1.0, title="Near-duplicate text similarity",
                                   description="Word-shingle Jaccard at which texts are near-duplicates.")


_DEFAULTS = DedupOptions()


class DedupCheck(Check):
    name = "dedup"
    title = "Group check (near duplicates)"
    summary = "Drops an item too close to one kept before, by embedding distance or by shared word shingles."
    Options = DedupOptions
    not_in_run = "use the in-run group check (dedup_distance, `--dedup`) instead"
    needs_llm = False

    def __init__(self, distance: float = _DEFAULTS.distance, text_similarity: float = _DEFAULTS.text_similarity,
                 neighbours: int = 5) -> None:
        self.distance = distance
        self.text_similarity = text_similarity
        self.neighbours = neighbours

    def options(self) -> dict[str, Any]:
        return {"distance": self.distance, "text_similarity": self.text_similarity, "neighbours": self.neighbours}

    async def check(self, items: Sequence[Item], context: CheckContext) -> list[Verdict]:
        checked = {item.id for item in items if item.id is not None}
        pool = context.store.sample_page(SampleFilter(statuses=("pending", "accepted")), order="oldest")
        pool = pool[~pool["id"].isin(checked)]
        pool_ids = [int(i) for i in pool["id"]]
        pool_texts = list(pool["text"])
        vectors = context.embedder.embed_stored(context.store, pool_texts + [item.text for item in items])
        kept_vectors = list(vectors[: len(pool_texts)])
        kept_ids: list[int | None] = list(pool_ids)
        kept_texts = list(pool_texts)
        verdicts: list[Verdict] = []
        for item, vector in zip(items, vectors[len(pool_texts) :], strict=True):
            verdict = self._judge(item, vector, np.asarray(kept_vectors), kept_ids, kept_texts)
            verdicts.append(verdict)
            if verdict.keep:
                kept_vectors.append(vector)
                kept_ids.append(item.id)
                kept_texts.append(item.text)
        return verdicts

    def _judge(
        self, item: Item, vector: np.ndarray, pool: np.ndarray, ids: list[int | None], texts: list[str]
    ) -> Verdict:
        if len(pool) == 0:
            return Verdict(keep=True)
        neighbours, distances = nearest(vector, pool, self.neighbours)
        closest = int(neighbours[0])
        seen = {"nearest_id": ids[closest], "distance": round(float(distances[0]), 4)}
        if distances[0] < self.distance:
            return Verdict(keep=False, reason="near_duplicate_embedding", details=seen)
        mine = shingles(item.text)
        for k in neighbours:
            similarity = jaccard(mine, shingles(texts[int(k)]))
            if similarity >= self.text_similarity:
                return Verdict(keep=False, reason="near_duplicate_text",
                               details={**seen, "text_match_id": ids[int(k)], "text_similarity": round(similarity, 4)})
        return Verdict(keep=True, details=seen)
