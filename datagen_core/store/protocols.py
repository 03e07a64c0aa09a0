"""The narrow parts of the store that the LLM facade and the embedder use, so they depend on no more.

`Store` satisfies both; a test or a benchmark may pass anything else with these methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from datagen_core.records import LLMCallRecord


class ResponseCache(Protocol):
    """Where the facade looks up a stored answer to the same request and records every call."""

    def cached_response(self, cache_key: str) -> tuple[str, str | None, int, int] | None: ...

    def insert_llm_calls(self, calls: Sequence[LLMCallRecord]) -> None: ...


class EmbeddingCache(Protocol):
    """Vectors by embedding model and text hash; a hash stored once keeps its vector."""

    def embeddings(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_embeddings(self, model: str, vectors: dict[str, np.ndarray]) -> None: ...
