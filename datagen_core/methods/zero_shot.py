"""SimPrompt / zero-shot (SPEC §2): a plain label-conditional instruction, the same for every call."""

from __future__ import annotations

from datagen_core.methods.base import BaselineMethod, GenerationRequest


class ZeroShotMethod(BaselineMethod):
    """Every request carries the same prompt; variety comes from sampling alone (each request gets its own
    sample index, so neither the response cache nor a seeded server hands back the previous answer)."""

    name = "zero_shot"
    title = "Zero-shot (SimPrompt)"
    summary = "The same label-conditional instruction every call; variety from sampling alone."

    def next_request(self, label: str) -> GenerationRequest | None:
        return self._request(label, prompt=self._prompt(label))
