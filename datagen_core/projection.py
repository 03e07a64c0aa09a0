"""A 2-D map of every sample's embedding (UMAP), fitted once and kept in the store as plain coordinates.

A fit costs seconds (and ~12 s of numba compilation in a fresh process), so every fitted text's coordinates
are stored; a text that arrives later (new offspring, an edited text) is placed among the fitted texts its
embedding is nearest to instead of refitting. No fitted model is stored: unpickling one from a shared
project file could run code. Coordinates are for the whole project, so filtering the map never moves a point.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from datagen_core.embed import Embedder
from datagen_core.errors import DatagenError
from datagen_core.records import text_hash
from datagen_core.store import SampleFilter, Store

MIN_POINTS = 5
_PLACE_CHUNK = 1024  # new texts per distance matrix when placing: bounds memory at ~40 MB for a 5,000-text fit
# Per process: one lock per project file, so two sessions never fit at once.
_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


@dataclass(frozen=True)
class MapParams:
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 42
    max_fit: int = 5000  # a fit on more texts costs minutes; the rest are placed


def place_among_neighbours(vectors: np.ndarray, fitted_vectors: np.ndarray, fitted_xy: np.ndarray,
                           k: int) -> np.ndarray:
    """Coordinates for new embeddings: the inverse-distance-weighted mean of the coordinates of the `k` fitted
    texts nearest each one (Euclidean, the fit's metric). The fitted points never move."""
    k = max(1, min(k, len(fitted_vectors)))
    fitted_norms = (fitted_vectors.astype(np.float64) ** 2).sum(axis=1)
    placed = np.empty((len(vectors), 2))
    for start in range(0, len(vectors), _PLACE_CHUNK):
        chunk = vectors[start : start + _PLACE_CHUNK].astype(np.float64)
        squared = (chunk**2).sum(axis=1)[:, None] + fitted_norms[None, :] - 2.0 * chunk @ fitted_vectors.T
        distances = np.sqrt(np.maximum(squared, 0.0))
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        weights = 1.0 / (np.take_along_axis(distances, nearest, axis=1) + 1e-6)
        weighted = (weights[..., None] * fitted_xy[nearest]).sum(axis=1)
        placed[start : start + len(chunk)] = weighted / weights.sum(axis=1)[:, None]
    return placed


class EmbeddingMap:
    """Coordinates for a project's samples; one instance may serve many threads."""

    def __init__(self, store: Store, embedder: Embedder, params: MapParams | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.params = params or MapParams()
        payload = json.dumps({"embedder": embedder.name, **asdict(self.params)}, sort_keys=True)
        self.projection_id = hashlib.sha256(payload.encode()).hexdigest()[:16]
        with _GUARD:
            self._lock = _LOCKS.setdefault(str(store.path), threading.Lock())

    def points(self, chosen: SampleFilter) -> pd.DataFrame:
        """The filtered samples with `x`, `y` and `fitted` (False: placed after the fit, without refitting).

        Fits the map on first use; texts it has not seen yet (new offspring, edited texts) are placed among
        their nearest fitted texts.
        """
        with self._lock:
            if not self.is_fitted:
                self._fit()
            return self._with_coordinates(self.store.map_samples(chosen))

    def locate(self, ids: Sequence[int]) -> pd.DataFrame:
        """The same columns for given sample ids, whatever the filter (the parents of a selected offspring)."""
        frame = self.store.samples_by_ids(ids)[["id", "label", "text", "origin", "status", "run_id", "parent_ids"]]
        frame = frame.assign(text_hash=[text_hash(t) for t in frame["text"]])
        with self._lock:
            if not self.is_fitted:
                self._fit()
            return self._with_coordinates(frame)

    def refit(self) -> None:
        """Fit again on everything the project holds now (after many offspring landed)."""
        with self._lock:
            self._fit()

    @property
    def fitted_on(self) -> int:
        """How many texts the stored fit saw; 0 before the first fit."""
        found = self.store.projection_info(self.projection_id)
        return found[0] if found else 0

    @property
    def is_fitted(self) -> bool:
        return self.store.projection_info(self.projection_id) is not None

    # ------------------------------------------------------------- internals
    def _fit(self) -> None:
        everything = self.store.map_samples(SampleFilter()).drop_duplicates("text_hash")
        if len(everything) < MIN_POINTS:
            raise DatagenError(f"the map needs at least {MIN_POINTS} distinct samples, the project has "
                               f"{len(everything)}")
        if len(everything) > self.params.max_fit:  # the rest are placed among their neighbours, like later offspring
            everything = everything.sample(n=self.params.max_fit, random_state=self.params.seed)
        vectors = self.embedder.embed_stored(self.store, everything["text"].tolist())  # placement reads them
        import umap  # imported late: numba's start-up costs seconds

        reducer = umap.UMAP(
            n_neighbors=min(self.params.n_neighbors, len(everything) - 1), min_dist=self.params.min_dist,
            n_components=2, metric="euclidean", random_state=self.params.seed, n_jobs=1,  # seeded: one thread
        )
        xy = reducer.fit_transform(vectors)
        self.store.save_projection(self.projection_id, self.embedder.name, asdict(self.params),
                                   everything["text_hash"].tolist(), xy)

    def _with_coordinates(self, frame: pd.DataFrame) -> pd.DataFrame:
        placed = self.store.projection_points(self.projection_id)
        missing = sorted(set(frame["text_hash"]) - set(placed["text_hash"]))
        if missing:
            self._place(frame.drop_duplicates("text_hash").set_index("text_hash").loc[missing, "text"])
            placed = self.store.projection_points(self.projection_id)
        return frame.merge(placed, on="text_hash", how="inner")

    def _place(self, texts: pd.Series) -> None:
        fitted_xy, fitted_vectors = self.store.fitted_points(self.projection_id)
        if not len(fitted_xy):
            raise DatagenError("the stored map has no embeddings of the texts it was fitted on: fit it again")
        vectors = self.embedder.embed_stored(self.store, texts.tolist())
        xy = place_among_neighbours(vectors, fitted_vectors, fitted_xy, self.params.n_neighbors)
        self.store.add_projection_points(self.projection_id, texts.index.tolist(), xy)
