"""Quality modules applied afterwards to a selection of stored samples (the run loop applies them in-run).

Verdicts are recorded per sample with the module's settings; a rejected sample stays in the store with
status `rejected` and the reason in its checks, and a correction goes through `Store.edit_sample`, so
the history keeps what the sample was before.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from .embed import Embedder
from .llm import LLM
from .store import SampleFilter, Store
from .validators import CheckContext, Item, QualityCheck, Verdict


@dataclass
class CheckSummary:
    check: str
    checked: int = 0
    kept: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    corrected: int = 0


def apply_check(
    store: Store, check: QualityCheck, chosen: SampleFilter, embedder: Embedder, llm: LLM | None = None
) -> CheckSummary:
    """Run `check` over the samples `chosen` selects (oldest first) and record every verdict."""
    frame = store.sample_page(chosen, order="id")
    items = [Item(int(row.id), row.label, row.text) for row in frame.itertuples()]

    async def judge() -> list[Verdict]:
        try:
            if llm is not None:
                await llm.check()
            return await check.check(items, CheckContext(store, embedder, llm))
        finally:
            if llm is not None:
                await llm.aclose()

    verdicts = asyncio.run(judge()) if items else []
    actor = f"check:{check.name}"
    summary = CheckSummary(check.name, checked=len(items))
    for item, verdict in zip(items, verdicts, strict=True):
        assert item.id is not None
        if not verdict.keep:
            summary.rejected[verdict.reason or "rejected"] += 1
            store.edit_sample(item.id, status="rejected", actor=actor)
            continue
        summary.kept += 1
        if (verdict.text and verdict.text != item.text) or (verdict.label and verdict.label != item.label):
            summary.corrected += 1
            store.edit_sample(item.id, text=verdict.text, label=verdict.label, actor=actor)
    store.record_checks(check.name, check.options(), [
        (item.id, v.keep, v.reason, v.details) for item, v in zip(items, verdicts, strict=True)  # type: ignore[misc]
    ])
    return summary
