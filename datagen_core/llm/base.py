"""The contract between the LLM facade and a backend: one request in, one answer or a typed error out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from datagen_core.config import SamplingParams


@dataclass(frozen=True)
class BackendAnswer:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


#: What went wrong with an attempt worth retrying; a run reports its retries by these kinds.
FAULT_KINDS = ("rate_limited", "server_error", "timeout", "connection", "unreadable", "schema")


class TransientBackendError(Exception):
    """Worth retrying: rate limits, 5xx, timeouts, dropped connections, garbled bodies."""

    def __init__(self, message: str, kind: str, *, retry_after: float | None = None) -> None:
        assert kind in FAULT_KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after

    @property
    def rate_limited(self) -> bool:
        return self.kind == "rate_limited"

    @property
    def connection(self) -> bool:
        """The server could not be reached at all (a local one may have died)."""
        return self.kind == "connection"


class Backend(ABC):
    """A model that answers chat messages. Backends do HTTP or inference; nothing else."""

    name: str
    model: str
    #: How many requests the backend can usefully serve at once (the embedded model: one).
    max_parallel: int

    @abstractmethod
    async def complete(
        self, messages: list[dict[str, str]], sampling: SamplingParams, schema: dict[str, Any] | None, seed: int
    ) -> BackendAnswer:
        """Raise TransientBackendError to ask for a retry, LLMFatalError to stop, LLMError to give up on this call."""

    @abstractmethod
    async def check(self) -> None:
        """Fail fast with LLMFatalError when the model cannot answer at all (wrong URL, key, model)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or model memory."""
