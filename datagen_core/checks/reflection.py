"""Self-reflection (DataGen): a judge says whether an item is good; if not, a rewrite improves text and label.

At most `rounds` judge → rewrite rounds (DataGen: 5). The verdict carries the whole trajectory (each
round's reflection, verdict and rewrite), so a reviewer sees why an item changed. A rewrite that names a
label the project does not have keeps the old label and says so; malformed judge answers are retried
and, when they stay malformed, reject the item with that reason instead of stopping the batch.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from datagen_core.checks.base import Item, PerItemLLMCheck, Verdict
from datagen_core.config import SamplingParams
from datagen_core.llm import LLM
from datagen_core.llm.structured import ask_structured
from datagen_core.registry import Options

JUDGE_SAMPLING = SamplingParams(temperature=0.0, max_tokens=300)
REWRITE_SAMPLING = SamplingParams(temperature=0.7, max_tokens=400)


class Judgement(BaseModel):
    reflection: str = Field(description="what is wrong or right with the item, briefly")
    is_good: bool


class Rewrite(BaseModel):
    text: str = Field(min_length=1)
    label: str = Field(min_length=1)


def judge_prompt(task: str, text_kind: str, labels: dict[str, str], item_text: str, label: str) -> str:
    described = "\n".join(f"- {name}: {desc}" if desc else f"- {name}" for name, desc in labels.items())
    return (
        f"You check synthetic data for the {task} task. Each item is a {text_kind} with one of these labels:\n"
        f"{described}\n\nItem: {item_text}\nLabel: {label}\n\n"
        "Is this a realistic, well-formed item whose label is correct and unambiguous? Reflect briefly, then "
        'answer as JSON: {"reflection": "...", "is_good": true or false}'
    )


def rewrite_prompt(judge: str, reflection: str) -> str:
    return (
        f"{judge}\n\nA reviewer said: {reflection}\n"
        'Rewrite the item to fix this, keeping it natural. Answer as JSON: {"text": "...", "label": "<one of the '
        'labels>"}'
    )


class ReflectionOptions(Options):
    rounds: int = Field(default=5, ge=1, le=10, title="Reflection rounds",
                        description="Judge/rewrite rounds at most.")


_DEFAULTS = ReflectionOptions()


class ReflectionCheck(PerItemLLMCheck):
    name = "reflection"
    title = "Self-reflection"
    summary = "The LLM judges each item against its label and rewrites it until it passes (or rejects it)."
    Options = ReflectionOptions

    @classmethod
    def describe(cls, options: Options) -> str:
        assert isinstance(options, ReflectionOptions)
        return f"{options.rounds} rounds"

    def __init__(self, rounds: int = _DEFAULTS.rounds) -> None:
        self.rounds = rounds

    def options(self) -> dict[str, Any]:
        return {"rounds": self.rounds}

    async def judge(self, llm: LLM, task: str, kind: str, labels: dict[str, str], item: Item) -> Verdict:
        text, label = item.text, item.label
        trajectory: list[dict[str, Any]] = []
        key = f"{item.id}:{item.text}"
        for round_number in range(1, self.rounds + 1):
            judge = judge_prompt(task, kind, labels, text, label)
            judged = await ask_structured(llm, [{"role": "user", "content": judge}], Judgement,
                                          sampling=JUDGE_SAMPLING, purpose="reflection_judge",
                                          key=f"{key}:{round_number}")
            if judged.value is None:
                trajectory.append({"round": round_number, "judge_problems": judged.problems})
                return Verdict(keep=False, reason="judge_unusable", details={"trajectory": trajectory})
            step: dict[str, Any] = {"round": round_number, "reflection": judged.value.reflection,
                                    "is_good": judged.value.is_good}
            trajectory.append(step)
            if judged.value.is_good:
                return Verdict(keep=True, text=text if text != item.text else None,
                               label=label if label != item.label else None,
                               details={"trajectory": trajectory, "rounds": round_number})
            rewritten = await ask_structured(llm, [{"role": "user", "content": rewrite_prompt(
                judge, judged.value.reflection)}], Rewrite, sampling=REWRITE_SAMPLING, purpose="reflection_rewrite",
                key=f"{key}:{round_number}")
            if rewritten.value is None:
                step["rewrite_problems"] = rewritten.problems
                continue
            text = rewritten.value.text.strip()
            step["rewrite"] = text
            if rewritten.value.label in labels:
                label = rewritten.value.label
            else:
                step["unknown_label"] = rewritten.value.label
            step["label"] = label
        return Verdict(keep=False, reason=f"not_good_after_{self.rounds}_rounds",
                       details={"trajectory": trajectory, "rounds": self.rounds})
