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

from datagen_core.embed import Embedder
from datagen_core.llm import LLM
from datagen_core.registry import NoOptions, Options
from datagen_core.store import Store


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


class Check(ABC):
    """One check: items in, one verdict per item out; its settings are recorded with every verdict.

    A plug-in: `name`, `title`, `summary` and `Options` (what a user chooses) are what the config, the CLI
    and the studio read (`datagen_core.registry`); register it in `datagen_core/checks/__init__.py` (one line).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[Options]] = NoOptions
    #: Why the check cannot judge a batch of fresh offspring on its own ("" when it can run in-run).
    not_in_run: ClassVar[str] = ""
    #: It asks an LLM (a check without one runs with no model configured).
    needs_llm: ClassVar[bool] = True

    @classmethod
    def describe(cls, options: Options) -> str:
        """The options in a few words, for a run's settings line ("" for none)."""
        return ", ".join(str(value) for value in options.model_dump().values())

    @classmethod  # noqa: B027 (most checks need nothing)
    def require(cls, store: Store) -> None:
        """Raise a DatagenError saying what to do when the project lacks what the check needs."""

    @classmethod
    def from_options(cls, options: Options) -> Check:
        """The check as a user configured it (its other settings keep their defaults)."""
        return cls(**options.model_dump())

    @abstractmethod
    async def check(self, items: Sequence[Item], context: CheckContext) -> list[Verdict]:
        """One verdict per item, in order."""

    def options(self) -> dict[str, Any]:
        """The settings that produced a verdict, stored beside it."""
        return {}


class PerItemLLMCheck(Check):
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
