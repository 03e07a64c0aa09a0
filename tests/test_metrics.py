"""Each metric against a hand-computable case and an independent brute-force loop."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from datagen_core.evaluation.metrics import aps, cmd, distinct_n, remote_clique, self_bleu, vocabulary_size


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_aps_by_hand_and_by_loop() -> None:
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # cosines: (0,1)=0, (0,2)=1, (1,2)=0
    assert aps(x) == pytest.approx(1 / 3)
    assert aps(x, ["a", "b", "a"], "intra") == pytest.approx(1.0)
    assert aps(x, ["a", "b", "a"], "inter") == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    y, labels = unit(rng.normal(size=(12, 5))), list("aabbbcccaabc")
    pairs = [(i, j) for i, j in itertools.permutations(range(12), 2)]
    assert aps(y) == pytest.approx(np.mean([y[i] @ y[j] for i, j in pairs]))
    assert aps(y, labels, "intra") == pytest.approx(np.mean([y[i] @ y[j] for i, j in pairs if labels[i] == labels[j]]))
    assert aps(y, labels, "inter") == pytest.approx(np.mean([y[i] @ y[j] for i, j in pairs if labels[i] != labels[j]]))


def test_cmd_by_hand_and_by_loop() -> None:
    x = np.array([[1.0], [-1.0]])  # mean 0, c2 = 1, c3 = 0, c4 = 1, c5 = 0
    y = np.array([[0.0], [0.0]])  # every moment 0
    assert cmd(x, y) == pytest.approx(1 / 4 + 1 / 16)
    assert cmd(x, x) == 0.0
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-1, 1, size=(20, 4)), rng.uniform(-0.5, 1, size=(30, 4))
    expected = 0.5 * math.dist(a.mean(0), b.mean(0))
    for k in range(2, 6):
        ca = [sum((row[d] - a[:, d].mean()) ** k for row in a) / len(a) for d in range(4)]
        cb = [sum((row[d] - b[:, d].mean()) ** k for row in b) / len(b) for d in range(4)]
        expected += math.dist(ca, cb) / 2**k
    assert cmd(a, b) == pytest.approx(expected)


def test_remote_clique_by_hand_and_by_loop() -> None:
    x = np.array([[0.0, 0.0], [3.0, 4.0]])  # one distance of 5, counted twice, over n² = 4
    assert remote_clique(x) == pytest.approx(2.5)
    rng = np.random.default_rng(2)
    y = unit(rng.normal(size=(9, 6)))
    assert remote_clique(y) == pytest.approx(np.mean([math.dist(a, b) for a in y for b in y]), abs=1e-6)


def test_vocabulary_and_distinct() -> None:
    texts = ["The cat sat.", "the CAT ran", "A dog!"]
    assert vocabulary_size(texts) == 6  # the, cat, sat, ran, a, dog
    assert distinct_n(texts, 1) == pytest.approx(6 / 8)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab


def test_self_bleu_extremes_and_sampling() -> None:
    same = self_bleu(["the quick brown fox jumps"] * 4)
    assert same.value == pytest.approx(1.0) and same.sampled == 4
    different = self_bleu(["alpha beta gamma delta", "one two three four", "red green blue yellow"])
    assert different.value < 0.05
    sampled = self_bleu([f"text number {i} of many" for i in range(30)], sample=10)
    assert sampled.sampled == 10 and sampled.total == 30 and 0 < sampled.value < 1


def test_self_bleu_equals_nltk_on_random_corpora() -> None:
    """The O(n) implementation against NLTK's sentence_bleu, text by text, including edge cases."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    from datagen_core.evaluation.metrics import tokens

    rng = np.random.default_rng(3)
    words = ["a", "b", "c", "d", "e", "f"]
    for trial in range(20):
        texts = [" ".join(rng.choice(words, size=rng.integers(0, 9))) for _ in range(rng.integers(2, 12))]
        if trial % 4 == 0:
            texts.append(texts[0])  # an exact repeat: its best reference is itself, which must be excluded
        tokenised = [tokens(t) for t in texts]
        expected = np.mean([
            sentence_bleu([r for j, r in enumerate(tokenised) if j != i], hyp,
                          smoothing_function=SmoothingFunction().method1) if hyp else 0.0
            for i, hyp in enumerate(tokenised)
        ])
        assert self_bleu(texts).value == pytest.approx(expected, abs=1e-12), texts


def test_label_and_length_distributions() -> None:
    from datagen_core.evaluation.evaluator import TextSet, intrinsic_metrics

    data = TextSet("x", ("one two", "one two three", "four", "five six"), ("a", "b", "a", "a"))
    vectors = unit(np.random.default_rng(4).normal(size=(4, 3)))
    result = intrinsic_metrics(data, vectors, None, None)
    assert result["label_counts"] == {"a": 3, "b": 1}
    assert result["length_counts"] == [(1, 1), (2, 2), (3, 1)]
    assert result["mean_length"] == pytest.approx(2.0)
    assert result["cmd"] is None and result["cmd_per_label"] == {}
