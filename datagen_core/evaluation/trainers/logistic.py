"""The fast trainer: logistic regression on frozen sentence embeddings (a linear probe)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from pydantic import Field

from datagen_core import registry
from datagen_core.errors import DatagenError
from datagen_core.evaluation.trainers.base import Encode, LabelledTexts, ProgressFn, Trainer, TrainerContext


class LogisticTrainer(Trainer):
    """Seconds, not minutes: the embeddings are cached in the store, only the probe is fitted."""

    name = "logistic"
    title = "Logistic probe"
    summary = "logistic regression on the cached sentence embeddings: seconds"

    class Options(registry.Options):
        c: float = Field(10.0, gt=0, le=1e6, title="C (probe)",
                         description="inverse regularisation strength of the logistic probe",
                         json_schema_extra={"flag": "probe-c"})
        max_iter: int = Field(2000, ge=10, le=100_000, title="Max iterations (probe)",
                              description="solver iterations of the logistic probe")

    @classmethod
    def create(cls, context: TrainerContext, **options: Any) -> Self:
        return cls(context.encode, context.embed_model, **cls.settings(options).model_dump())

    def __init__(self, encode: Encode, embed_model: str, c: float = 10.0, max_iter: int = 2000) -> None:
        self.encode = encode
        self.embed_model = embed_model
        self.c = c
        self.max_iter = max_iter

    def options(self) -> dict[str, Any]:
        return {"embed_model": self.embed_model, "C": self.c, "max_iter": self.max_iter}

    def fit_predict(
        self, train: LabelledTexts, test_texts: Sequence[str], progress: ProgressFn | None = None
    ) -> list[str]:
        from sklearn.linear_model import LogisticRegression

        if len(set(train.labels)) < 2:
            raise DatagenError(f"training needs at least two labels, got {sorted(set(train.labels))}")
        if progress:
            progress(0.0, "embedding")
        x_train, x_test = self.encode(train.texts), self.encode(list(test_texts))
        if progress:
            progress(0.5, "fitting")
        model = LogisticRegression(C=self.c, max_iter=self.max_iter)
        model.fit(x_train, np.asarray(train.labels))
        predicted = model.predict(x_test) if len(x_test) else np.asarray([], dtype=str)
        if progress:
            progress(1.0, "done")
        return [str(p) for p in predicted]
