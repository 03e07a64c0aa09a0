"""Structured answers: ask for JSON that a pydantic model validates, retrying malformed answers.

Small models and busy endpoints return broken JSON now and then; every caller (checks,
proposals) wants the same thing: a validated object, or None with the reasons, never an exception
that ends a batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from datagen_core.config import SamplingParams
from datagen_core.errors import LLMError, LLMFatalError
from datagen_core.llm.facade import LLM

M = TypeVar("M", bound=BaseModel)


@dataclass
class StructuredAnswer(Generic[M]):
    value: M | None
    problems: list[str] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)


def parse_json_object(text: str, model: type[M], context: Mapping[str, Any] | None = None) -> M:
    """The first-to-last brace span of `text`, validated (with `context` for the model's validators); raises
    ValueError with a one-line reason that names the field and what is wrong with it.

    The one parser of JSON answers (structured answers here, gene proposals, DataGen's items): models wrap
    their JSON in prose or code fences, and every caller should read it the same way."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the answer")
    try:
        return model.model_validate(json.loads(text[start : end + 1]), context=context)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "answer"
        raise ValueError(f"unexpected JSON: {where}: {error['msg']}") from None


async def ask_structured(
    llm: LLM,
    messages: list[dict[str, str]],
    model: type[M],
    *,
    sampling: SamplingParams,
    purpose: str,
    key: str = "",
    attempts: int = 3,
    context: Mapping[str, Any] | None = None,
) -> StructuredAnswer[M]:
    """Up to `attempts` answers (each a fresh sample) until one validates; failed calls count as problems.
    `context` reaches the model's validators (what counts as usable may depend on the question)."""
    answer: StructuredAnswer[M] = StructuredAnswer(None)
    schema = model.model_json_schema()
    for attempt in range(attempts):
        try:
            completion = await llm.complete(messages, sampling=sampling, schema=schema, purpose=purpose,
                                            sample_index=f"{key}:{attempt}")
        except LLMFatalError:
            raise
        except LLMError as exc:
            answer.problems.append(str(exc))
            continue
        answer.call_ids.append(completion.call.id)
        try:
            answer.value = parse_json_object(completion.text, model, context)
            return answer
        except ValueError as exc:
            answer.problems.append(str(exc))
    return answer
