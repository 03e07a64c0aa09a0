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


class TransientBackendError(Exception):
    """Worth retrying: rate limits, 5xx, timeouts, dropped connections, garbled bodies."""

    def __init__(self, message: str, *, rate_limited: bool = False, retry_after: float | None = None,
                 connection: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        #: The server could not be reached at all (a local one may have died).
        self.connection = connection


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
