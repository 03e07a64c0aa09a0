"""One-shot and few-shot in-context generation (SPEC §2): the task plus k real examples of the label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..store import PopulationMember
from .base import BaselineMethod, GenerationRequest, MethodContext


class FewShotMethod(BaselineMethod):
    """Shows k real examples of the label, drawn afresh for every call with the run's rng.

    Only real seeds are shown (never earlier offspring), as in the paper; a label with fewer than k seeds
    shows all of them, and `details["k"]` records how many were shown.
    """

    name = "few_shot"

    def __init__(self, context: MethodContext, rng: np.random.Generator) -> None:
        super().__init__(context, rng)
        self.k = context.config.few_shot.k
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
