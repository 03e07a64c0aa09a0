"""Is a dataset any good, and which run is better (SPEC §4): intrinsic metrics and downstream F1.

Everything is measured with the same embedder for real and synthetic data. Results are cached in the
store under a key that hashes the data itself (text hashes and labels), the test set, the trainer and
every setting, so a figure is recomputed only when something that produced it changed (an edit in
Review changes the data and therefore the key) and each figure can be traced to its parameters.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from datagen_core.embed import Embedder
from datagen_core.errors import DatagenError
from datagen_core.evaluation import metrics
from datagen_core.evaluation.set_metrics import METRICS, MetricInput
from datagen_core.evaluation.trainers import TRAINERS, LabelledTexts, ProgressFn, Trainer, TrainerContext
from datagen_core.records import text_hash
from datagen_core.store import Store

REAL = "real"
"""The subject name of the project's real seed examples (other subjects are run ids)."""

TRAINING_SETS = ("synthetic", "real", "mixed")
"""What a classifier may train on (`training_set`): a run's samples, the real seeds, or both."""


@dataclass(frozen=True)
class TextSet:
    """Labelled texts under evaluation: a run's kept samples, the real seeds or the held-out test set."""

    subject: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def fingerprint(self) -> str:
        """Order-independent hash of the content: the same data gives the same cache key."""
        rows = sorted(f"{label}\t{text_hash(text)}" for text, label in zip(self.texts, self.labels, strict=True))
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]

    def as_training(self) -> LabelledTexts:
        return LabelledTexts(self.texts, self.labels)

    def take(self, rows: Sequence[int], subject: str | None = None) -> TextSet:
        return TextSet(subject or self.subject, tuple(self.texts[i] for i in rows), tuple(self.labels[i] for i in rows))


def _text_set(subject: str, frame: pd.DataFrame) -> TextSet:
    return TextSet(subject, tuple(frame["text"].astype(str)), tuple(frame["label"].astype(str)))


def subject_set(store: Store, subject: str) -> TextSet:
    """The real seeds (`REAL`) or a run's dataset: kept offspring a user has not rejected, edits applied."""
    if subject == REAL:
        return _text_set(REAL, store.real_examples())
    store.run(subject)  # a clear error for an unknown run id
    return _text_set(subject, store.kept_synthetic(subject))


def heldout_set(store: Store) -> TextSet:
    frame = store.heldout()
    if frame.empty:
        raise DatagenError(
            "the project has no held-out real data: create it with `datagen init --holdout 0.2`, or add labelled "
            "real examples the generator never saw with `datagen heldout load NAME --data test.csv`"
        )
    return _text_set("heldout", frame)


# ------------------------------------------------------------------ intrinsic metrics
def intrinsic_metrics(
    subject: TextSet,
    vectors: np.ndarray,
    reference: TextSet | None,
    reference_vectors: np.ndarray | None,
    bleu_sample: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Every registered set metric's fields (CMD against `reference`, the real seeds; None for the real seeds
    themselves) and the set's size, label and length distributions."""
    data = MetricInput(subject.texts, subject.labels, vectors, reference.labels if reference is not None else None,
                       reference_vectors, bleu_sample, seed)
    lengths = [len(metrics.tokens(t)) for t in subject.texts]
    result: dict[str, Any] = {"n": len(subject)}
    for metric in METRICS.values():
        result.update(metric().compute(data))
    return {**result, "label_counts": dict(Counter(subject.labels)),
            "length_counts": sorted(Counter(lengths).items()),  # (words, texts), ascending
            "mean_length": float(np.mean(lengths)) if lengths else float("nan")}


# ------------------------------------------------------------------ downstream F1
@dataclass(frozen=True)
class DownstreamResult:
    """A classifier trained on one training set and scored on held-out real data."""

    mode: str
    trainer: str
    n_train: int
    n_test: int
    train_counts: dict[str, int]
    synthetic_per_label: int | None
    micro_f1: float
    macro_f1: float
    per_label_f1: dict[str, float]
    labels: list[str]
    confusion: list[list[int]]  # rows: true label, columns: predicted, in `labels` order


def score(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Micro/macro F1 over `labels` (absent predictions count as errors) and the confusion matrix."""
    from sklearn.metrics import confusion_matrix, f1_score

    per_label = f1_score(truth, predicted, labels=list(labels), average=None, zero_division=0)
    return {
        "micro_f1": float(f1_score(truth, predicted, labels=list(labels), average="micro", zero_division=0)),
        "macro_f1": float(np.mean(per_label)) if len(per_label) else float("nan"),
        "per_label_f1": {label: float(f) for label, f in zip(labels, per_label, strict=True)},
        "labels": list(labels),
        "confusion": confusion_matrix(truth, predicted, labels=list(labels)).tolist(),
    }


def training_set(
    mode: str,
    real: TextSet,
    synthetic: TextSet | None,
    *,
    mix_ratio: float | None = None,
    per_label: int | None = None,
    seed: int = 0,
) -> TextSet:
    """What a classifier trains on: the synthetic set (optionally `per_label` of each label), the real seeds,
    or both mixed with `mix_ratio` synthetic samples per real one of the same label (None: all synthetic)."""
    if mode not in TRAINING_SETS:
        raise DatagenError(f"mode must be one of {TRAINING_SETS}, not {mode!r}")
    if mode == "real":
        return real
    if synthetic is None:
        raise DatagenError(f"mode {mode!r} needs a run")
    rng = np.random.default_rng(seed)
    rows: list[int] = []
    for label in dict.fromkeys(synthetic.labels):
        mine = [i for i, lb in enumerate(synthetic.labels) if lb == label]
        limit = per_label
        if mode == "mixed" and mix_ratio is not None:
            limit = round(mix_ratio * sum(lb == label for lb in real.labels))
        if limit is not None and limit < len(mine):
            mine = sorted(rng.choice(mine, size=limit, replace=False).tolist())
        rows.extend(mine)
    chosen = synthetic.take(sorted(rows))
    if mode == "synthetic":
        return chosen
    return TextSet(f"{real.subject}+{synthetic.subject}", real.texts + chosen.texts, real.labels + chosen.labels)


# ------------------------------------------------------------------ cached orchestration
@dataclass(frozen=True)
class Evaluation:
    """One cached figure set: what was computed, from what, how long it took, and whether it came from the cache."""

    key: str
    kind: str
    subject: str
    params: dict[str, Any]
    result: dict[str, Any]
    seconds: float
    cached: bool = field(default=False, compare=False)


def _key(kind: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({"kind": kind, **params}, sort_keys=True).encode()).hexdigest()[:24]


class NotCached(DatagenError):
    """A read-only evaluator was asked for a figure the cache does not hold yet."""


class Evaluator:
    """Computes metrics and downstream F1 for a project's subjects, reading and filling the store's cache.

    `read_only=True` answers from the cache alone and raises NotCached on a miss, so a view can draw what is
    known on every redraw and compute only when asked.
    """

    def __init__(self, store: Store, embedder: Embedder | None = None, *, read_only: bool = False) -> None:
        self.store = store
        self.embedder = embedder or Embedder()
        self.read_only = read_only

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings through the store's cache (the run loop already embedded every kept offspring)."""
        return self.embedder.embed_stored(self.store, list(texts))

    def trainer(self, name: str, **options: Any) -> Trainer:
        """The registered trainer `name` with these options (validated), measuring with this evaluator's embedder."""
        return TRAINERS.get(name).create(TrainerContext(self.encode, self.embedder.name), **options)

    def _cached(self, kind: str, subject: str, params: dict[str, Any], compute: Any, refresh: bool) -> Evaluation:
        key = _key(kind, params)
        if not refresh and (hit := self.store.evaluation(key)) is not None:
            return Evaluation(key, kind, subject, hit["params"], hit["result"], hit["seconds"], cached=True)
        if self.read_only:
            raise NotCached(f"{kind} of {subject} is not computed with these settings yet")
        started = time.perf_counter()
        result = compute()
        seconds = time.perf_counter() - started
        self.store.save_evaluation(key, kind, subject, params, result, seconds)
        return Evaluation(key, kind, subject, params, result, seconds)

    def metrics(self, subject: str, *, bleu_sample: int = 500, seed: int = 0, refresh: bool = False) -> Evaluation:
        """Intrinsic metrics of a subject, CMD against the real seeds."""
        data, real = subject_set(self.store, subject), subject_set(self.store, REAL)
        if not len(data):
            raise DatagenError(f"{subject} has no samples to measure")
        params = {"subject": subject, "data": data.fingerprint, "reference": real.fingerprint,
                  "embed_model": self.embedder.name, "bleu_sample": bleu_sample, "seed": seed,
                  "metrics": list(METRICS.names())}  # a newly registered metric is computed, not missing

        def compute() -> dict[str, Any]:
            reference = None if subject == REAL else real
            reference_vectors = None if reference is None else self.encode(real.texts)
            return intrinsic_metrics(data, self.encode(data.texts), reference, reference_vectors, bleu_sample, seed)

        return self._cached("metrics", subject, params, compute, refresh)

    def downstream(
        self,
        subject: str,
        trainer: Trainer,
        *,
        mode: str = "synthetic",
        mix_ratio: float | None = None,
        per_label: int | None = None,
        seed: int = 0,
        test: TextSet | None = None,
        progress: ProgressFn | None = None,
        refresh: bool = False,
    ) -> Evaluation:
        """Train on a subject's training set for `mode` and score on held-out real data (the project's by default)."""
        test = test or heldout_set(self.store)
        real = subject_set(self.store, REAL)
        synthetic = None if subject == REAL else subject_set(self.store, subject)
        if subject == REAL and mode != "real":
            raise DatagenError("the real seeds can only be evaluated in mode 'real'")
        train = training_set(mode, real, synthetic, mix_ratio=mix_ratio, per_label=per_label, seed=seed)
        if len(set(train.labels)) < 2:
            raise DatagenError(f"{subject} ({mode}) has fewer than two labels to train on")
        labels = [lb.name for lb in self.store.labels()]
        params = {"subject": subject, "mode": mode, "mix_ratio": mix_ratio if mode == "mixed" else None,
                  "per_label": per_label if mode != "real" else None, "seed": seed,
                  "train": train.fingerprint, "test": test.fingerprint, "test_size": len(test),
                  "trainer": trainer.name, "trainer_options": trainer.options()}

        def compute() -> dict[str, Any]:
            predicted = trainer.fit_predict(train.as_training(), test.texts, progress)
            scores = score(test.labels, predicted, labels)
            return asdict(DownstreamResult(
                mode=mode, trainer=trainer.name, n_train=len(train), n_test=len(test),
                train_counts=dict(Counter(train.labels)), synthetic_per_label=per_label, **scores,
            ))

        return self._cached("downstream", subject, params, compute, refresh)


# ------------------------------------------------------------------ tables
def comparison_table(evaluations: Sequence[Evaluation]) -> pd.DataFrame:
    """One row per subject: its intrinsic metrics and every downstream F1 (columns named by mode and trainer)."""
    rows: dict[str, dict[str, Any]] = {}
    for ev in evaluations:
        row = rows.setdefault(ev.subject, {"subject": ev.subject})
        result = ev.result
        if ev.kind == "metrics":
            row["n"] = result["n"]
            row.update({title: result.get(field) for metric in METRICS.values()
                        for field, title in metric.columns})
            row["mean_words"] = result["mean_length"]
        else:
            name = f"{result['mode']} {result['trainer']}"
            if result["mode"] == "mixed" and ev.params.get("mix_ratio") is not None:
                name += f" ×{ev.params['mix_ratio']:g}"
            if result.get("synthetic_per_label") is not None:
                name += f" n={result['synthetic_per_label']}"
            row[f"micro-F1 {name}"] = result["micro_f1"]
            row[f"macro-F1 {name}"] = result["macro_f1"]
    return pd.DataFrame(list(rows.values()))
