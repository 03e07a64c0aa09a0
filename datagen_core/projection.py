"""A 2-D map of every sample's embedding (UMAP), fitted once and cached in the store.

A fit costs seconds (and ~12 s of numba compilation in a fresh process), so the fitted model is pickled
into the store with every text's coordinates; offspring that land later are placed with the fitted
model's `transform` instead of refitting from scratch. Coordinates are for the whole project, so
filtering the map never moves a point.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from datagen_core.embed import Embedder
from datagen_core.errors import DatagenError
from datagen_core.records import text_hash
from datagen_core.store import SampleFilter, Store

MIN_POINTS = 5
# Per process: one lock per project file (two sessions never fit at once) and the fitted reducers in memory,
# keyed by file, projection and fit time (a refit, or another file at the same path, never reuses a stale model).
_LOCKS: dict[str, threading.Lock] = {}
_MODELS: dict[tuple[str, str, datetime], Any] = {}
_GUARD = threading.Lock()


@dataclass(frozen=True)
class MapParams:
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 42
    max_fit: int = 5000  # a fit on more texts costs minutes and a large pickled model; the rest are placed


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

        Fits the map on first use; texts it has not seen yet (new offspring, edited texts) are placed
        with the fitted model's `transform`.
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
    def _vectors(self, texts: list[str]) -> np.ndarray:
        vectors, fresh = self.embedder.embed(self.store, texts)
        self.store.put_embeddings(self.embedder.name, fresh)
        return vectors

    def _fit(self) -> None:
        everything = self.store.map_samples(SampleFilter()).drop_duplicates("text_hash")
        if len(everything) < MIN_POINTS:
            raise DatagenError(f"the map needs at least {MIN_POINTS} distinct samples, the project has "
                               f"{len(everything)}")
        if len(everything) > self.params.max_fit:  # the rest are placed by transform, like later offspring
            everything = everything.sample(n=self.params.max_fit, random_state=self.params.seed)
        vectors = self._vectors(everything["text"].tolist())
        import umap  # imported late: numba's start-up costs seconds

        reducer = umap.UMAP(
            n_neighbors=min(self.params.n_neighbors, len(everything) - 1), min_dist=self.params.min_dist,
            n_components=2, metric="euclidean", random_state=self.params.seed, n_jobs=1,  # seeded: one thread
        )
        xy = reducer.fit_transform(vectors)
        self.store.save_projection(self.projection_id, self.embedder.name, asdict(self.params),
                                   pickle.dumps(reducer), everything["text_hash"].tolist(), xy)
        _MODELS[self._model_key()] = reducer

    def _model_key(self) -> tuple[str, str, datetime]:
        info = self.store.projection_info(self.projection_id)
        assert info is not None, "no fitted projection"
        return str(self.store.path), self.projection_id, info[1]

    def _reducer(self) -> Any:
        key = self._model_key()
        if key not in _MODELS:
            found = self.store.projection(self.projection_id)  # the only read of the (large) pickled model
            assert found is not None and found[0] is not None
            _MODELS[key] = pickle.loads(found[0])  # our own bytes, written by _fit
        return _MODELS[key]

    def _with_coordinates(self, frame: pd.DataFrame) -> pd.DataFrame:
        placed = self.store.projection_points(self.projection_id)
        missing = sorted(set(frame["text_hash"]) - set(placed["text_hash"]))
        if missing:
            self._place(frame.drop_duplicates("text_hash").set_index("text_hash").loc[missing, "text"])
            placed = self.store.projection_points(self.projection_id)
        return frame.merge(placed, on="text_hash", how="inner")

    def _place(self, texts: pd.Series) -> None:
        xy = self._reducer().transform(self._vectors(texts.tolist()))
        self.store.add_projection_points(self.projection_id, texts.index.tolist(), xy)
