"""The quality-module plug-in interface: items in, one verdict per item out.

A check never writes to the store itself: `apply_check` (or the run loop) records its verdicts, so a
check can run in-run on fresh offspring or afterwards on a selection of stored samples alike.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..embed import Embedder
from ..llm import LLM
from ..store import Store


@dataclass(frozen=True)
class Item:
    """What a check looks at: a stored sample (id set) or an offspring not yet stored (id None)."""

    id: int | None
    label: str
    text: str


@dataclass(frozen=True)
class Verdict:
    """Keep the item or not, why, an optional correction, and what the check saw (evidence, trajectory)."""

    keep: bool
    reason: str | None = None
    text: str | None = None
    label: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckContext:
    store: Store
    embedder: Embedder
    llm: LLM | None = None


class QualityCheck(ABC):
    """One quality module; options are constructor arguments, recorded with every verdict."""

    name: ClassVar[str]

    @abstractmethod
    async def check(self, items: Sequence[Item], context: CheckContext) -> list[Verdict]:
        """One verdict per item, in order."""

    def options(self) -> dict[str, Any]:
        """The settings that produced a verdict, stored beside it."""
        return {}


class PerItemLLMCheck(QualityCheck):
    """A module that asks the LLM about each item on its own; all items go at once (the facade limits them)."""

    async def check(self, items: Sequence[Item], context: CheckContext) -> list[Verdict]:
        if context.llm is None:
            raise ValueError(f"the {self.name} check needs an LLM")
        project = context.store.project()
        labels = {lb.name: lb.description for lb in context.store.labels()}
        return list(await asyncio.gather(*[
            self.judge(context.llm, project.task, project.text_kind, labels, item) for item in items
        ]))

    @abstractmethod
    async def judge(self, llm: LLM, task: str, kind: str, labels: dict[str, str], item: Item) -> Verdict:
        """The verdict on one item, given the task, the kind of text and the labels with their descriptions."""
