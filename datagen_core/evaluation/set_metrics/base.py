"""The set-metric plug-in interface: one figure (or a few related ones) of a text set, cached with the rest.

Like a method, a check or a trainer, a metric carries its name, title, summary and `Options` and registers in
`METRICS`: `datagen eval`'s table and legend, the Metrics page's table, legend and summary bars all read the
registry, so a new metric is one file plus one `register` line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from datagen_core.registry import NoOptions, Options


@dataclass(frozen=True)
class MetricInput:
    """A set under measurement with its embeddings (L2-normalised, the same embedder for every set) and the
    real seeds it is compared with (None when the set is the real seeds)."""

    texts: Sequence[str]
    labels: Sequence[str]
    vectors: np.ndarray
    reference_labels: Sequence[str] | None
    reference_vectors: np.ndarray | None
    #: Texts sampled by the metrics that are quadratic in the set's size (self-BLEU), and their seed.
    sample: int
    seed: int


class Metric(ABC):
    """One way to measure a set; `compute` returns its result fields (None where it does not apply)."""

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[Options]] = NoOptions
    #: (result field, column title in the comparison tables); the first is the metric's headline figure.
    columns: ClassVar[tuple[tuple[str, str], ...]]
    #: Which way is better, for the legend: lower/higher is more diverse, or closer to the real data.
    reading: ClassVar[str]
    #: Drawn as a panel of the summary bars (the headline figure per subject).
    charted: ClassVar[bool] = False
    #: Comparison to the real seeds: the real seeds' own row has no value.
    needs_reference: ClassVar[bool] = False

    @abstractmethod
    def compute(self, data: MetricInput) -> dict[str, Any]:
        """The result fields (`columns`' keys, plus any detail a chart reads) of one set."""

    @classmethod
    def headline(cls) -> str:
        return cls.columns[0][0]



