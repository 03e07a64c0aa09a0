"""Difficulty enhancement (DataGen, SPEC §3): make question items harder without changing their answer.

Four principles: paraphrase the question, add context, paraphrase the choices, add a plausible wrong
choice. The chosen principles go into ONE rewrite call per item rather than one call per principle:
the principles interact (a paraphrased choice list and a new distractor must be lettered together), a
single call keeps the item coherent, costs a quarter of the calls, and the label guard checks the
final item once instead of letting label drift compound over four successive rewrites.

The guard is why this module is safe to run on a labelled set: the rewrite answers JSON
{"text", "label", "reason", "same_as"}. For an item with lettered options the new label must be one
of the option letters of the new text (and a project label); a changed letter is accepted only with a
reason and `same_as` naming the original correct letter; and when the choices were not meant to be
paraphrased, the correct option's wording must survive verbatim. A refused or unusable rewrite keeps
the original item (keep=True, no correction) and the details say why, so nothing is lost silently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from datagen_core.checks.base import Item, PerItemLLMCheck, Verdict
from datagen_core.config import SamplingParams
from datagen_core.llm import LLM
from datagen_core.llm.structured import ask_structured

REWRITE_SAMPLING = SamplingParams(temperature=0.7, max_tokens=1200)

PRINCIPLES: dict[str, str] = {
    "paraphrase_question": "Paraphrase the question: reword it so it does not share surface wording with the "
                           "original, keeping exactly what it asks.",
    "add_context": "Add context: put the question in a short realistic scenario or give background that the "
                   "reader must take in before answering, without giving the answer away.",
    "paraphrase_choices": "Paraphrase the choices: reword every option, keeping what each one means (the correct "
                          "option must stay correct and every wrong option wrong).",
    "add_distractor": "Add a plausible wrong choice: append one more option, after the last letter, that is "
                      "tempting but clearly wrong to someone who knows the answer.",
}
CHOICE_PRINCIPLES = frozenset({"paraphrase_choices", "add_distractor"})

# "A. text", "A) text", "(A) text" at the start of a line; options are a run of consecutive letters from A.
_OPTION = re.compile(r"^\s*\(?([A-Z])[.)]\)?\s+(.*\S)\s*$")


def lettered_options(text: str) -> dict[str, str]:
    """The last run of consecutive lettered options (A, B, C, ...) in `text`, letter → option text.

    The last run, because a passage before the question may hold its own lettered or numbered lines
    (e.g. "I. ..." in a quotation); fewer than two options count as none.
    """
    runs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        match = _OPTION.match(line)
        if match is None:
            continue
        letter, option = match.groups()
        if letter == "A":
            if len(current) >= 2:
                runs.append(current)
            current = {"A": option}
        elif current and ord(letter) == ord(max(current)) + 1:
            current[letter] = option
    if len(current) >= 2:
        runs.append(current)
    return runs[-1] if runs else {}


def _normal(option: str) -> str:
    return " ".join(option.casefold().split()).rstrip(".")


class Rewrite(BaseModel):
    text: str = Field(min_length=1)
    label: str = Field(min_length=1)
    reason: str = Field(default="", description="why the label changed, if it did")
    same_as: str = Field(default="", description="the original letter of the correct option, if the letter changed")


@dataclass(frozen=True)
class Refusal:
    code: str
    why: str


def guard(original: Item, rewrite: Rewrite, principles: Sequence[str], labels: set[str]) -> Refusal | None:
    """Why a rewrite must not replace `original`, or None when its label still holds (pure, no LLM)."""
    text, label = rewrite.text.strip(), rewrite.label.strip()
    if text == original.text.strip():
        return Refusal("unchanged", "the rewrite is the original text")
    before = lettered_options(original.text)
    if original.label not in before:  # no lettered options that the label names: the label itself must stay
        if label != original.label:
            return Refusal("label_changed", f"label {original.label!r} became {label!r} and the item has no "
                                            "lettered options to check the change against")
        return None
    after = lettered_options(text)
    if len(after) < len(before):
        return Refusal("options_lost", f"the rewrite has {len(after)} lettered options, the original {len(before)}")
    if label not in after:
        return Refusal("label_not_an_option", f"label {label!r} is not one of the options {sorted(after)}")
    if label not in labels:
        return Refusal("unknown_label", f"label {label!r} is not a project label {sorted(labels)}")
    if label != original.label:
        if not rewrite.reason.strip():
            return Refusal("label_changed_without_reason",
                           f"label {original.label!r} became {label!r} without a reason")
        if rewrite.same_as.strip() != original.label:
            return Refusal("label_changed_option_mismatch",
                           f"label {original.label!r} became {label!r} but the rewrite says the correct option "
                           f"was {rewrite.same_as.strip() or 'nothing'!r}")
    if "paraphrase_choices" not in principles and _normal(after[label]) != _normal(before[original.label]):
        return Refusal("answer_option_changed", f"the correct option was {before[original.label]!r}, option "
                                                f"{label} of the rewrite is {after[label]!r}")
    return None


def rewrite_prompt(task: str, text_kind: str, labels: dict[str, str], item: Item, principles: Sequence[str]) -> str:
    described = "\n".join(f"- {name}: {desc}" if desc else f"- {name}" for name, desc in labels.items())
    steps = "\n".join(f"{n}. {PRINCIPLES[p]}" for n, p in enumerate(principles, 1))
    return (
        f"You make synthetic data for the {task} task harder. Each item is a {text_kind} with one of these labels:\n"
        f"{described}\n\nItem:\n<<<\n{item.text}\n>>>\nLabel: {item.label}\n\n"
        f"Rewrite the item to make it more difficult, applying these principles:\n{steps}\n\n"
        "The correct answer must stay correct. Keep lettered options one per line as \"A. ...\". If the letter of "
        "the correct option changes, give the new letter as label, say why in \"reason\" and give the letter it "
        "had before in \"same_as\"; otherwise leave both empty. Answer as JSON: "
        '{"text": "...", "label": "...", "reason": "", "same_as": ""}'
    )


class DifficultyCheck(PerItemLLMCheck):
    name = "difficulty"
    title = "Difficulty enhancement"
    summary = "Multiple-choice questions are rewritten to be harder under DataGen's principles, answer kept."

    def __init__(self, principles: Sequence[str] = tuple(PRINCIPLES), attempts: int = 3) -> None:
        unknown = [p for p in principles if p not in PRINCIPLES]
        if unknown or not principles:
            raise ValueError(f"principles must be a non-empty subset of {list(PRINCIPLES)}; got {list(principles)}")
        self.principles = tuple(p for p in PRINCIPLES if p in principles)  # canonical order, no duplicates
        self.attempts = attempts

    def options(self) -> dict[str, Any]:
        return {"principles": list(self.principles), "attempts": self.attempts}

    def principles_for(self, item: Item) -> list[str]:
        """Choice principles only make sense for an item whose label names one of its lettered options."""
        has_choices = item.label in lettered_options(item.text)
        return [p for p in self.principles if has_choices or p not in CHOICE_PRINCIPLES]

    async def judge(self, llm: LLM, task: str, kind: str, labels: dict[str, str], item: Item) -> Verdict:
        principles = self.principles_for(item)
        details: dict[str, Any] = {"principles": principles, "original": {"text": item.text, "label": item.label}}
        if not principles:
            return Verdict(keep=True, details={**details, "refused": "no_principle_applies",
                                               "why": "the item has no lettered options for the choice principles"})
        answer = await ask_structured(llm, [{"role": "user", "content": rewrite_prompt(task, kind, labels, item,
                                                                                     principles)}],
                                      Rewrite, sampling=REWRITE_SAMPLING, purpose="difficulty_rewrite",
                                      key=f"{item.id}:{item.text}", attempts=self.attempts)
        if answer.problems:
            details["problems"] = answer.problems
        if answer.value is None:
            return Verdict(keep=True, details={**details, "refused": "rewrite_unusable",
                                               "why": f"no usable rewrite after {self.attempts} attempts"})
        rewrite = answer.value
        details["rewrite"] = {"text": rewrite.text.strip(), "label": rewrite.label.strip(),
                              "reason": rewrite.reason, "same_as": rewrite.same_as}
        refusal = guard(item, rewrite, principles, set(labels))
        if refusal is not None:
            return Verdict(keep=True, details={**details, "refused": refusal.code, "why": refusal.why})
        label = rewrite.label.strip()
        return Verdict(keep=True, text=rewrite.text.strip(), label=label if label != item.label else None,
                       details={**details, "refused": None})
