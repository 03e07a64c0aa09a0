"""Structured answers: ask for JSON that a pydantic model validates, retrying malformed answers.

Small models and busy endpoints return broken JSON now and then; every caller (quality modules,
proposals) wants the same thing: a validated object, or None with the reasons, never an exception
that ends a batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ..config import SamplingParams
from ..errors import LLMError, LLMFatalError
from .facade import LLM

M = TypeVar("M", bound=BaseModel)


@dataclass
class StructuredAnswer(Generic[M]):
    value: M | None
    problems: list[str] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)


def parse_json_object(text: str, model: type[M]) -> M:
    """The first-to-last brace span of `text`, validated; raises ValueError with a one-line reason."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the answer")
    try:
        return model.model_validate(json.loads(text[start : end + 1]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg}") from None
    except ValidationError as exc:
        raise ValueError(f"unexpected JSON: {str(exc).splitlines()[0]}") from None


async def ask_structured(
    llm: LLM,
    messages: list[dict[str, str]],
    model: type[M],
    *,
    sampling: SamplingParams,
    purpose: str,
    key: str = "",
    attempts: int = 3,
) -> StructuredAnswer[M]:
    """Up to `attempts` answers (each a fresh sample) until one validates; failed calls count as problems."""
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
            answer.value = parse_json_object(completion.text, model)
            return answer
        except ValueError as exc:
            answer.problems.append(str(exc))
    return answer
