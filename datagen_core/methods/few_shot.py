"""One-shot and few-shot in-context generation (SPEC §2): the task plus k real examples of the label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from datagen_core.methods.base import BaselineMethod, GenerationRequest, MethodContext
from datagen_core.registry import Options
from datagen_core.store import PopulationMember


class FewShotOptions(Options):
    """One-shot (k=1) and few-shot (the paper's k=3, 5): k real examples of the label per call."""

    k: int = Field(default=3, ge=1, le=10, title="Examples per call (few-shot)",
                   description="Real examples per call: 1 = one-shot; the paper used 1, 3 and 5.",
                   json_schema_extra={"flag": "shots"})


class FewShotMethod(BaselineMethod):
    """Shows k real examples of the label, drawn afresh for every call with the run's rng.

    Only real seeds are shown (never earlier offspring), as in the paper; a label with fewer than k seeds
    shows all of them, and `details["k"]` records how many were shown.
    """

    name = "few_shot"
    title = "Few-shot"
    summary = "k real examples of the label in each call (one-shot with k=1)."
    Options = FewShotOptions
    options: FewShotOptions

    @classmethod
    def describe(cls, options: FewShotOptions) -> str:
        return f"{options.k} examples per call"

    def __init__(self, context: MethodContext, rng: np.random.Generator) -> None:
        super().__init__(context, rng)
        self.k = self.options.k
        self._real: dict[str, list[int]] = {}
        self._texts: dict[int, str] = {}

    def observe(self, label: str, members: Sequence[PopulationMember], vectors: np.ndarray) -> None:
        real = [m for m in members if m.origin == "real"]
        self._real.setdefault(label, []).extend(m.id for m in real)
        self._texts.update((m.id, m.text) for m in real)

    def next_request(self, label: str) -> GenerationRequest | None:
        pool = self._real.get(label, [])
        if not pool:
            return None
        picked = self.rng.choice(len(pool), size=min(self.k, len(pool)), replace=False)
        shown = tuple(int(pool[i]) for i in picked)
        kind = self.context.project.text_kind
        prompt = self._prompt(
            label,
            examples=[self._texts[i] for i in shown],
            instruction=f"The examples are of the '{label}' category. Write a new {kind} of the same category.",
            requirements=["it must be different from every example"],
        )
        return self._request(label, prompt=prompt, parent_ids=shown, details={"example_ids": list(shown),
                                                                              "k": len(shown)})
