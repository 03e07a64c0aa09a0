"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server) through the `openai` client."""

from __future__ import annotations

import asyncio
from typing import Any

import openai

from datagen_core.config import LLMConfig, SamplingParams, redact_url
from datagen_core.errors import LLMError, LLMFatalError
from datagen_core.llm.base import Backend, BackendAnswer, TransientBackendError

#: A server that accepts no connection within this is down or unreachable (the first-byte timeout caps it).
CONNECT_TIMEOUT_S = 10.0


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class OpenAIBackend(Backend):
    name = "openai"
    #: The sampling field servers read a repeat penalty from (vLLM's name; llama.cpp's is `repeat_penalty`).
    repeat_penalty_field = "repetition_penalty"

    def __init__(self, config: LLMConfig) -> None:
        assert config.base_url is not None
        self.model = config.model
        self.base_url = config.base_url
        #: The endpoint as messages name it: without credentials written into the URL.
        self.where = redact_url(config.base_url)
        self.max_parallel = 1_000_000
        self._config = config
        self._client: openai.AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        # Servers differ on structured output: vLLM/OpenAI take json_schema, llama.cpp's server json_object.
        self._schema_style = "json_schema"

    def _bad_key(self) -> str:
        where = "the key typed for this session" if self._config.session_api_key else f"${self._config.api_key_env}"
        return f"{self.where} refused the API key (401): check {where}"

    @property
    def client(self) -> openai.AsyncOpenAI:
        """A client bound to the running event loop (its connection pool cannot move between loops)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # The facade owns retries; the client must not retry behind its back.
            first_byte = self._config.first_byte_timeout_s
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self._config.api_key(), max_retries=0,
                timeout=openai.Timeout(first_byte, connect=min(CONNECT_TIMEOUT_S, first_byte)),
            )
            self._client_loop = loop
        return self._client

    def _structured(self, kwargs: dict[str, Any], schema: dict[str, Any]) -> None:
        """Ask for output that follows `schema` the way this server understands."""
        if self._schema_style == "json_schema":
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        else:
            kwargs["response_format"] = {"type": "json_object", "schema": schema}

    async def complete(
        self, messages: list[dict[str, str]], sampling: SamplingParams, schema: dict[str, Any] | None, seed: int
    ) -> BackendAnswer:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
        }
        if sampling.repeat_penalty is not None:
            kwargs["extra_body"] = {self.repeat_penalty_field: sampling.repeat_penalty}
        if schema is not None:
            self._structured(kwargs, schema)
        try:
            async with asyncio.timeout(self._config.timeout_s):
                response = await self.client.chat.completions.create(**kwargs)
        except TimeoutError:
            raise TransientBackendError(f"no complete answer within {self._config.timeout_s:g} s", "timeout") from None
        except openai.BadRequestError as exc:
            if schema is not None and self._schema_style == "json_schema" and "json_schema" in str(exc):
                self._schema_style = "json_object"
                raise TransientBackendError("server rejects json_schema; retrying with json_object", "schema") from None
            raise LLMError(f"{self.where} rejected the request: {exc.message}") from None
        except openai.AuthenticationError:
            raise LLMFatalError(self._bad_key()) from None
        except openai.PermissionDeniedError as exc:
            raise LLMFatalError(f"{self.where} denied access (403): {exc.message}") from None
        except openai.NotFoundError:
            raise LLMFatalError(f"{self.where}: model {self.model!r} or endpoint not found (404)") from None
        except openai.RateLimitError as exc:
            raise TransientBackendError("rate limited (429)", "rate_limited", retry_after=_retry_after(exc)) from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise TransientBackendError(f"server error {exc.status_code}", "server_error",
                                            retry_after=_retry_after(exc)) from None
            raise LLMError(f"{self.where} answered {exc.status_code}: {exc.message}") from None
        except openai.APITimeoutError:
            raise TransientBackendError(
                f"no answer within {self._config.first_byte_timeout_s:g} s", "timeout") from None
        except openai.APIConnectionError as exc:
            raise TransientBackendError(f"connection failed: {exc.__cause__ or exc}", "connection") from None
        except (openai.APIResponseValidationError, ValueError) as exc:
            raise TransientBackendError(f"unreadable response: {type(exc).__name__}", "unreadable") from None
        if not response.choices:
            raise TransientBackendError("response without choices", "unreadable")
        choice = response.choices[0]
        usage = response.usage
        return BackendAnswer(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    async def check(self) -> None:
        try:
            await self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": "Say OK."}], max_tokens=2
            )
        except openai.AuthenticationError:
            raise LLMFatalError(self._bad_key()) from None
        except openai.NotFoundError:
            raise LLMFatalError(f"{self.where}: model {self.model!r} or endpoint not found (404)") from None
        except openai.APITimeoutError:
            raise LLMFatalError(f"{self.where} did not answer within the timeout") from None
        except openai.APIConnectionError:
            raise LLMFatalError(f"cannot reach the LLM endpoint {self.where}: is the server running?") from None
        except openai.APIStatusError as exc:
            if exc.status_code < 500 and exc.status_code != 429:
                raise LLMFatalError(f"{self.where} answered {exc.status_code}: {exc.message}") from None
        except (openai.APIResponseValidationError, ValueError):
            raise LLMFatalError(f"{self.where} does not speak the OpenAI chat API") from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
