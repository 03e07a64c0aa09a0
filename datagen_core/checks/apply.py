"""Quality modules applied to items: afterwards to a selection of stored samples (`apply_check`), or in-run by
the run loop to each batch of fresh offspring (`run_checks`, then `verdict_records` written with the batch).

Verdicts are recorded per sample with the module's settings. Afterwards, a rejected sample stays in the
store with status `rejected` and the reason in its checks, and a correction goes through
`Store.edit_sample`, so the history keeps what the sample was before.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from datagen_core.checks import Check, CheckContext, Item, Verdict
from datagen_core.embed import Embedder
from datagen_core.llm import LLM
from datagen_core.store import CheckRecord, SampleFilter, Store


@dataclass(frozen=True)
class Outcome:
    """What a sequence of checks made of one item: the item after their corrections, every verdict in order,
    and the check that rejected it (None while kept; checks after a rejection never see the item)."""

    original: Item
    item: Item
    verdicts: tuple[tuple[Check, Verdict], ...] = ()
    rejected_by: str | None = None

    @property
    def corrected(self) -> bool:
        return self.item != self.original


def _judged(outcome: Outcome, check: Check, verdict: Verdict, fixed_label: bool) -> Outcome:
    if fixed_label and verdict.keep and verdict.label and verdict.label != outcome.item.label:
        # An offspring counts toward the label it was asked for; one that a module relabels is not one of those.
        verdict = Verdict(keep=False, reason="label_changed", details={
            **verdict.details, "proposed": {"text": verdict.text, "label": verdict.label, "reason": verdict.reason}})
    verdicts = (*outcome.verdicts, (check, verdict))
    if not verdict.keep:
        return Outcome(outcome.original, outcome.item, verdicts, check.name)
    item = Item(outcome.item.id, verdict.label or outcome.item.label, verdict.text or outcome.item.text)
    return Outcome(outcome.original, item, verdicts)


async def run_checks(checks: Sequence[Check], items: Sequence[Item], context: CheckContext, *,
                     fixed_label: bool = False) -> list[Outcome]:
    """Apply `checks` in order; each sees the items still kept, as corrected by the checks before it.

    `fixed_label`: a verdict that moves an item to another label rejects it as `label_changed` (the run
    loop's exact per-label targets; afterwards a relabel is an ordinary correction).
    """
    outcomes = [Outcome(item, item) for item in items]
    for check in checks:
        live = [i for i, outcome in enumerate(outcomes) if outcome.rejected_by is None]
        if not live:
            break
        verdicts = await check.check([outcomes[i].item for i in live], context)
        for i, verdict in zip(live, verdicts, strict=True):
            outcomes[i] = _judged(outcomes[i], check, verdict, fixed_label)
    return outcomes


def verdict_records(checks: Sequence[Check], ids: Sequence[int],
                    outcomes: Sequence[Outcome]) -> list[CheckRecord]:
    """Every verdict under the sample id it is about, with its module's options, ready for the store."""
    return [CheckRecord(sample_id, check.name, verdict.keep, verdict.reason, verdict.details, check.options())
            for check in checks
            for sample_id, outcome in zip(ids, outcomes, strict=True)
            for judged_by, verdict in outcome.verdicts if judged_by is check]


@dataclass
class CheckSummary:
    check: str
    checked: int = 0
    kept: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    corrected: int = 0


def check_target(chosen: SampleFilter) -> SampleFilter | None:
    """What a check applied afterwards judges among the samples `chosen` selects: generated samples a user has
    not rejected (real seeds are the reference, never judged; filtered outputs never count); None when that is
    nothing. The CLI and the studio both narrow their selection through this."""
    if chosen.origin == "real":
        return None
    judged = ("pending", "accepted")
    statuses = tuple(s for s in chosen.statuses if s in judged) if chosen.statuses else judged
    if not statuses:
        return None
    return dataclasses.replace(chosen, origin="synthetic", statuses=statuses, include_filtered=False)


def apply_check(
    store: Store, check: Check, chosen: SampleFilter, embedder: Embedder, llm: LLM | None = None
) -> CheckSummary:
    """Run `check` over the samples of `chosen` it judges (`check_target`, oldest first); record every verdict."""
    target = check_target(chosen)
    frame = store.sample_page(target, order="oldest") if target is not None else None
    items = [] if frame is None else [Item(int(row.id), row.label, row.text) for row in frame.itertuples()]

    async def judge() -> list[Outcome]:
        try:
            if llm is not None:
                await llm.check()
            return await run_checks([check], items, CheckContext(store, embedder, llm))
        finally:
            if llm is not None:
                await llm.aclose()

    outcomes = asyncio.run(judge()) if items else []
    actor = f"check:{check.name}"
    summary = CheckSummary(check.name, checked=len(items))
    for outcome in outcomes:
        sample_id = outcome.item.id
        assert sample_id is not None
        if outcome.rejected_by is not None:
            summary.rejected[outcome.verdicts[-1][1].reason or "rejected"] += 1
            store.edit_sample(sample_id, status="rejected", actor=actor)
        elif outcome.corrected:
            summary.kept += 1
            summary.corrected += 1
            changed = outcome.item
            store.edit_sample(sample_id, text=changed.text if changed.text != outcome.original.text else None,
                              label=changed.label if changed.label != outcome.original.label else None, actor=actor)
        else:
            summary.kept += 1
    store.record_checks(verdict_records([check], [item.id for item in items], outcomes))  # type: ignore[misc]
    return summary
