"""The one LLM facade: strategies ask it for completions and nothing else.

It owns admission control (at most N requests in flight, halved on 429 and grown back one at a time),
retries with exponential backoff, the response cache in the store (keyed by model, messages, sampling
parameters, schema and a sample index) and the record of every call for token accounting.
A facade lives in one asyncio event loop at a time (the backends bind connections to it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from datagen_core.config import LLMConfig, SamplingParams
from datagen_core.errors import LLMError, LLMFatalError
from datagen_core.llm.base import Backend, TransientBackendError
from datagen_core.records import LLMCallRecord
from datagen_core.store import ResponseCache


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    call: LLMCallRecord

    @property
    def cached(self) -> bool:
        return self.call.cached


class AdaptiveLimiter:
    """At most `limit` requests at once; AIMD: halve on rate limiting, +1 after `limit` successes."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.active = 0
        self._successes = 0
        self._condition = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._condition:
            await self._condition.wait_for(lambda: self.active < self.limit)
            self.active += 1

    async def __aexit__(self, *exc: object) -> None:
        async with self._condition:
            self.active -= 1
            self._condition.notify_all()

    def rate_limited(self) -> None:
        self.limit = max(1, self.limit // 2)
        self._successes = 0

    def succeeded(self) -> None:
        self._successes += 1
        if self.limit < self.maximum and self._successes >= self.limit:
            self.limit += 1
            self._successes = 0


def cache_key(model: str, messages: list[dict[str, str]], sampling: SamplingParams,
              schema: dict[str, Any] | None, sample_index: str) -> str:
    payload = json.dumps(
        {"model": model, "messages": messages, "sampling": sampling.model_dump(), "schema": schema,
         "sample": sample_index},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def make_backend(config: LLMConfig) -> Backend:
    """The factory is the only place that knows backend classes."""
    if config.backend == "embedded":
        from datagen_core.llm.embedded import EmbeddedBackend

        return EmbeddedBackend(config)
    from datagen_core.llm.openai_backend import OpenAIBackend

    return OpenAIBackend(config)


class LLM:
    """Completions with retries, caching and accounting. Construct with `LLM.from_config`."""

    def __init__(
        self,
        backend: Backend,
        store: ResponseCache | None,
        *,
        max_in_flight: int = 16,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        run_id: str | None = None,
        use_cache: bool = True,
        autoflush: bool = True,
    ) -> None:
        self.backend = backend
        self.store = store
        self.max_in_flight = max(1, min(max_in_flight, backend.max_parallel))
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.run_id = run_id
        self.use_cache = use_cache
        self.autoflush = autoflush
        self._limiter: AdaptiveLimiter | None = None
        self._limiter_loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[LLMCallRecord] = []
        self._pending_lock = threading.Lock()
        #: Told of every transient fault as it happens (before the retry), so a run can say the endpoint struggles.
        self.on_fault: Callable[[TransientBackendError, int], None] | None = None
        #: A run stops when the endpoint answers nothing for this long (see LLMConfig.give_up_after_s).
        self.give_up_after_s = LLMConfig.model_fields["give_up_after_s"].default

    @classmethod
    def from_config(cls, config: LLMConfig, store: ResponseCache | None, **kwargs: Any) -> LLM:
        kwargs.setdefault("max_in_flight", config.max_in_flight)
        kwargs.setdefault("max_retries", config.max_retries)
        llm = cls(make_backend(config), store, **kwargs)
        llm.give_up_after_s = config.give_up_after_s
        return llm

    @property
    def model(self) -> str:
        return self.backend.model

    @property
    def in_flight_limit(self) -> int:
        return self._limiter.limit if self._limiter else self.max_in_flight

    def _limiter_for_loop(self) -> AdaptiveLimiter:
        loop = asyncio.get_running_loop()
        if self._limiter is None or self._limiter_loop is not loop:
            self._limiter = AdaptiveLimiter(self.max_in_flight)
            self._limiter_loop = loop
        return self._limiter

    # ------------------------------------------------------------ accounting
    def _record(self, record: LLMCallRecord) -> None:
        if self.store is None:
            return
        if self.autoflush:
            self.store.insert_llm_calls([record])
            return
        with self._pending_lock:
            self._pending.append(record)

    def has_pending_calls(self) -> bool:
        return bool(self._pending)

    def take_pending_calls(self) -> list[LLMCallRecord]:
        """Call records not yet written, for a caller that writes them in its own transaction."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        return pending

    # ----------------------------------------------------------- completion
    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        sampling: SamplingParams,
        schema: dict[str, Any] | None = None,
        purpose: str = "completion",
        sample_index: str = "0",
        request: dict[str, Any] | None = None,
    ) -> Completion:
        """One completion. Raises LLMFatalError (stop everything) or LLMError (this call failed for good).

        `request` is what the caller needs to make its answer into a result again (a run's lineage); it is
        stored with the call, so an answer that landed before a crash is not paid for twice."""
        key = cache_key(self.backend.model, messages, sampling, schema, sample_index)
        params = {**sampling.model_dump(), "schema": schema, "sample_index": sample_index}
        common = {"run_id": self.run_id, "purpose": purpose, "backend": self.backend.name,
                  "model": self.backend.model, "cache_key": key, "messages": messages, "params": params,
                  "request": request}
        if self.use_cache and self.store is not None:
            hit = self.store.cached_response(key)
            if hit is not None:
                text, finish, prompt_tokens, completion_tokens = hit
                record = LLMCallRecord(id=uuid.uuid4().hex, response=text, finish_reason=finish,
                                       prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                       latency_ms=0.0, attempts=0, cached=True, error=None, **common)
                self._record(record)
                return Completion(text, finish, record)

        seed = int(key[:8], 16)
        limiter = self._limiter_for_loop()
        started = time.perf_counter()
        attempt = 0
        faults: dict[str, int] = {}
        while True:
            attempt += 1
            tried = time.perf_counter()
            try:
                async with limiter:
                    answer = await self.backend.complete(messages, sampling, schema, seed)
                limiter.succeeded()
                break
            except TransientBackendError as exc:
                faults[exc.kind] = faults.get(exc.kind, 0) + 1
                if exc.rate_limited:
                    limiter.rate_limited()
                if self.on_fault is not None:
                    self.on_fault(exc, attempt)
                if attempt > self.max_retries:
                    self._record(self._failed(common, started, attempt, f"gave up after {attempt} attempts: {exc}",
                                              faults))
                    raise LLMError(f"LLM call failed after {attempt} attempts: {exc}") from None
                delay = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
                delay = max(delay * random.uniform(0.5, 1.0), exc.retry_after or 0.0)
                await asyncio.sleep(delay)
            except LLMError as exc:  # includes LLMFatalError
                self._record(self._failed(common, started, attempt, str(exc), faults))
                raise
        now = time.perf_counter()
        record = LLMCallRecord(
            id=uuid.uuid4().hex, response=answer.text, finish_reason=answer.finish_reason,
            prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
            latency_ms=(now - started) * 1000, attempts=attempt, cached=False, error=None,
            faults=faults or None, lost_ms=(tried - started) * 1000, **common,
        )
        self._record(record)
        return Completion(answer.text, answer.finish_reason, record)

    def _failed(self, common: dict[str, Any], started: float, attempts: int, error: str,
                faults: dict[str, int]) -> LLMCallRecord:
        """A call given up on: all of its time was lost."""
        lost = (time.perf_counter() - started) * 1000
        return LLMCallRecord(id=uuid.uuid4().hex, response=None, finish_reason=None, prompt_tokens=0,
                             completion_tokens=0, latency_ms=lost, attempts=attempts, cached=False, error=error,
                             faults=faults or None, lost_ms=lost, **common)

    async def check(self) -> None:
        await self.backend.check()

    async def aclose(self) -> None:
        await self.backend.aclose()


@dataclass(frozen=True)
class Probe:
    """One answer from a model, timed: how long it took to become ready (connect, start a local server) and
    then to answer."""

    model: str
    text: str
    ready_s: float
    answer_s: float
    completion_tokens: int


def probe(config: LLMConfig, prompt: str = "Reply with the word OK.", max_tokens: int = 4) -> Probe:
    """Ask the configured model one short question, uncached; LLMFatalError (or LLMError) says why it cannot."""

    async def ask() -> Probe:
        llm = LLM.from_config(config, None, max_retries=1, use_cache=False)
        try:
            started = time.perf_counter()
            await llm.check()
            ready = time.perf_counter()
            answer = await llm.complete([{"role": "user", "content": prompt}],
                                        sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens),
                                        purpose="check")
            return Probe(llm.model, answer.text, ready - started, time.perf_counter() - ready,
                         answer.call.completion_tokens)
        finally:
            await llm.aclose()

    return asyncio.run(ask())


def check_connection(config: LLMConfig) -> str:
    """Ask the configured model for one short answer; a line for the user, or LLMFatalError saying why not."""
    answer = probe(config)
    return f"{answer.model} answered {answer.text.strip()[:40]!r} in {answer.ready_s + answer.answer_s:.1f} s"


__all__ = ["LLM", "Completion", "LLMError", "LLMFatalError", "Probe", "check_connection", "make_backend", "probe"]
