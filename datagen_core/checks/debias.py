"""Rephrasing to remove bias (SPEC §3): find label shortcuts, rewrite only the items that carry one.

A shortcut is a word or bigram whose presence predicts a label far above chance — e.g. every spam
item says "URGENT" — so a classifier trained on the set learns the phrase instead of the task.
Detection (`detect_shortcuts`) is a pure count over the selected items plus the project's real
examples: P(label | phrase) ≥ `threshold`, at least `min_count` items with the phrase, and a lift of
at least `min_lift` over the label's share (so a label that is 95 % of the data does not make every
word a shortcut). Stop words are ignored: rewriting "your" out of a text is not debiasing.

Only an item whose own label the phrase predicts is rewritten (an item of another label carrying the
phrase is a counter-example, which helps). The rewrite must drop every such phrase; if it does not,
it is asked once more, then the original is kept with the reason in the details.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, Field

from datagen_core.checks.base import Check, CheckContext, Item, Verdict
from datagen_core.config import SamplingParams
from datagen_core.llm import LLM
from datagen_core.llm.structured import ask_structured
from datagen_core.records import STOP_WORDS, terms

REWRITE_SAMPLING = SamplingParams(temperature=0.7, max_tokens=400)

def ngrams(words: Sequence[str], max_ngram: int) -> set[str]:
    """Distinct n-grams (1..max_ngram) of `words`, joined by a space; stop words alone, or all-stop-word n-grams,
    are left out."""
    found: set[str] = set()
    for n in range(1, max_ngram + 1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if not all(w in STOP_WORDS for w in gram):
                found.add(" ".join(gram))
    return found


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether the token sequence of `phrase` occurs in `text` (case- and punctuation-insensitive)."""
    words, target = terms(text), phrase.split()
    return any(words[i : i + len(target)] == target for i in range(len(words) - len(target) + 1))


@dataclass(frozen=True)
class Shortcut:
    phrase: str
    label: str
    count: int  # items containing the phrase
    label_count: int  # of those, items with `label`
    precision: float  # P(label | phrase)
    prior: float  # P(label) over the corpus
    lift: float  # precision / prior


def detect_shortcuts(
    examples: Iterable[tuple[str, str]],
    *,
    threshold: float = 0.9,
    min_count: int = 5,
    min_lift: float = 1.5,
    max_ngram: int = 2,
) -> list[Shortcut]:
    """Phrases (words and n-grams up to `max_ngram`) whose presence predicts one label, from (text, label) pairs.

    Counts are per item (presence), not per occurrence. A bigram is dropped when one of its words is
    already a shortcut for the same label: removing the word removes the bigram. Most frequent first.
    """
    label_totals: Counter[str] = Counter()
    phrase_totals: Counter[str] = Counter()
    phrase_labels: dict[str, Counter[str]] = {}
    for text, label in examples:
        label_totals[label] += 1
        for gram in ngrams(terms(text), max_ngram):
            phrase_totals[gram] += 1
            phrase_labels.setdefault(gram, Counter())[label] += 1
    total = sum(label_totals.values())
    found: list[Shortcut] = []
    for phrase, count in phrase_totals.items():
        if count < min_count:
            continue
        label, label_count = phrase_labels[phrase].most_common(1)[0]
        precision, prior = label_count / count, label_totals[label] / total
        if precision >= threshold and precision / prior >= min_lift:
            found.append(Shortcut(phrase, label, count, label_count, round(precision, 4), round(prior, 4),
                                  round(precision / prior, 4)))
    words = {(s.phrase, s.label) for s in found if " " not in s.phrase}
    found = [s for s in found if " " not in s.phrase or not any((w, s.label) in words for w in s.phrase.split())]
    return sorted(found, key=lambda s: (-s.count, -s.precision, s.phrase))


class Rephrased(BaseModel):
    text: str = Field(min_length=1)


def rewrite_prompt(task: str, text_kind: str, labels: dict[str, str], item: Item, phrases: Sequence[str]) -> str:
    described = "\n".join(f"- {name}: {desc}" if desc else f"- {name}" for name, desc in labels.items())
    quoted = ", ".join(f'"{p}"' for p in phrases)
    return (
        f"You fix synthetic data for the {task} task. Each item is a {text_kind} with one of these labels:\n"
        f"{described}\n\nIn this data set the phrases {quoted} appear almost only in items labelled {item.label}, "
        "so a classifier would learn the phrase instead of the task.\n\n"
        f"Item: {item.text}\nLabel: {item.label}\n\n"
        f"Rewrite the item so that none of these phrases appears, in any spelling or case, while it keeps its "
        f"meaning, stays clearly a {item.label} item and reads naturally. Answer as JSON: {{\"text\": \"...\"}}"
    )


class DebiasCheck(Check):
    name = "debias"
    title = "Label-shortcut rephrasing (debias)"
    summary = "Finds words that give the label away across the dataset and rephrases the items that carry them."
    not_in_run = "it looks for shortcuts across the whole dataset: apply it afterwards with `datagen check`"

    def __init__(self, threshold: float = 0.9, min_count: int = 5, min_lift: float = 1.5, max_ngram: int = 2,
                 include_real: bool = True, retries: int = 1) -> None:
        if not 0 < threshold <= 1 or min_count < 1 or max_ngram < 1 or retries < 0:
            raise ValueError("need 0 < threshold <= 1, min_count >= 1, max_ngram >= 1 and retries >= 0")
        self.threshold = threshold
        self.min_count = min_count
        self.min_lift = min_lift
        self.max_ngram = max_ngram
        self.include_real = include_real
        self.retries = retries

    def options(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "min_count": self.min_count, "min_lift": self.min_lift,
                "max_ngram": self.max_ngram, "include_real": self.include_real, "retries": self.retries}

    def detect(self, items: Sequence[Item], context: CheckContext) -> list[Shortcut]:
        """The shortcuts of `items` plus (unless turned off) the project's real examples not among them."""
        corpus = [(item.text, item.label) for item in items]
        if self.include_real:
            ids = {item.id for item in items if item.id is not None}
            real = context.store.real_examples()
            corpus += [(text, label) for rid, label, text in real[["id", "label", "text"]].itertuples(index=False)
                       if int(rid) not in ids]
        return detect_shortcuts(corpus, threshold=self.threshold, min_count=self.min_count, min_lift=self.min_lift,
                                max_ngram=self.max_ngram)

    async def check(self, items: Sequence[Item], context: CheckContext) -> list[Verdict]:
        shortcuts = self.detect(items, context)
        carried = [[s for s in shortcuts if s.label == item.label and contains_phrase(item.text, s.phrase)]
                   for item in items]
        if any(carried) and context.llm is None:
            raise ValueError("rephrasing to remove bias needs an LLM")
        project = context.store.project()
        labels = {lb.name: lb.description for lb in context.store.labels()}

        async def one(item: Item, found: list[Shortcut]) -> Verdict:
            if not found:
                return Verdict(keep=True, details={"shortcuts": []})
            assert context.llm is not None
            return await self._rephrase(context.llm, project.task, project.text_kind, labels, item, found)

        return list(await asyncio.gather(*[one(item, found) for item, found in zip(items, carried, strict=True)]))

    async def _rephrase(self, llm: LLM, task: str, kind: str, labels: dict[str, str], item: Item,
                        found: list[Shortcut]) -> Verdict:
        phrases = [s.phrase for s in found]
        details: dict[str, Any] = {"shortcuts": [asdict(s) for s in found], "original": item.text, "attempts": []}
        messages = [{"role": "user", "content": rewrite_prompt(task, kind, labels, item, phrases)}]
        for attempt in range(1, self.retries + 2):
            answer = await ask_structured(llm, messages, Rephrased, sampling=REWRITE_SAMPLING,
                                          purpose="debias_rewrite", key=f"{item.id}:{item.text}:{attempt}")
            step: dict[str, Any] = {"attempt": attempt}
            if answer.problems:
                step["problems"] = answer.problems
            details["attempts"].append(step)
            if answer.value is None:
                details["refused"] = "rewrite_unusable"
                return Verdict(keep=True, details=details)  # malformed three times: retrying again will not help
            text = answer.value.text.strip()
            left = [p for p in phrases if contains_phrase(text, p)]
            step.update(rewrite=text, still_contains=left)
            if not left:
                details["rewrite"] = text
                return Verdict(keep=True, text=text, details=details)
            messages = [*messages, {"role": "assistant", "content": answer.value.model_dump_json()},
                        {"role": "user", "content": "Your rewrite still contains "
                         + ", ".join(f'"{p}"' for p in left) + '. Rewrite it again without them. Answer as JSON: '
                         '{"text": "..."}'}]
        details["refused"] = "shortcut_still_present"
        return Verdict(keep=True, details=details)
