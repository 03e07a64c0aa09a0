"""The downstream-trainer plug-in interface: fit a text classifier, predict held-out texts.

A trainer sees only texts and labels, so the same evaluation code compares a fast probe on frozen
embeddings with a fine-tuned encoder; `options()` is part of every cached result's key. Like a method or a
check, a trainer carries its name, title, summary and `Options` model and registers in `TRAINERS`: the CLI's
`--trainer` choices and flags and the Metrics page's widgets come from there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import ValidationError

from datagen_core.errors import DatagenError
from datagen_core.registry import NoOptions, Options, validation_message

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


Encode = Callable[[Sequence[str]], np.ndarray]
"""Texts to their embeddings (through the store's cache)."""


@dataclass(frozen=True)
class TrainerContext:
    """What the evaluation lends a trainer: the embedder it measures everything with."""

    encode: Encode
    embed_model: str


class Trainer(ABC):
    """One way to train a classifier; its settings are its `Options`."""

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[Options]] = NoOptions

    @classmethod
    def settings(cls, options: dict[str, Any]) -> Options:
        """`options` validated by the trainer's model, or one line naming the field and the problem."""
        try:
            return cls.Options(**options)
        except ValidationError as exc:
            raise DatagenError(f"{cls.name} trainer: {validation_message(exc)}") from None

    @classmethod
    def create(cls, context: TrainerContext, **options: Any) -> Self:
        """The trainer for these options (validated); a trainer that needs the embedder overrides this."""
        return cls(**cls.settings(options).model_dump())

    @abstractmethod
    def fit_predict(
        self, train: LabelledTexts, test_texts: Sequence[str], progress: ProgressFn | None = None
    ) -> list[str]:
        """Train on `train` (at least two labels), then predict one label per test text."""

    def options(self) -> dict[str, Any]:
        """The settings that determine a result, stored beside it."""
        return {}
