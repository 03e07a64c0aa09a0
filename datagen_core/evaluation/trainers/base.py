"""The downstream-trainer plug-in interface: fit a text classifier, predict held-out texts.

A trainer sees only texts and labels, so the same evaluation code compares a fast probe on frozen
embeddings with a fine-tuned encoder; `options()` is part of every cached result's key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

ProgressFn = Callable[[float, str], None]
"""Called with the fraction done (0..1) and a short message, e.g. 'epoch 2/3'."""


@dataclass(frozen=True)
class LabelledTexts:
    texts: tuple[str, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)


class Trainer(ABC):
    """One way to train a classifier; options are constructor arguments."""

    name: ClassVar[str]

    @abstractmethod
    def fit_predict(
        self, train: LabelledTexts, test_texts: Sequence[str], progress: ProgressFn | None = None
    ) -> list[str]:
        """Train on `train` (at least two labels), then predict one label per test text."""

    def options(self) -> dict[str, Any]:
        """The settings that determine a result, stored beside it."""
        return {}
