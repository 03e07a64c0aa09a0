"""Intrinsic quality of a text set (SPEC §4): diversity and closeness to the real distribution.

Every embedding metric expects L2-normalised rows from the same sentence transformer for real and
synthetic data. Self-BLEU follows Texygen (sentence BLEU-4 with NLTK's smoothing method 1, each text
against all others), sampled for large sets with the sample size reported.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datagen_core.records import folded_words


def tokens(text: str) -> list[str]:
    """The words the diversity metrics count (the package's one word rule)."""
    return folded_words(text)


def aps(vectors: np.ndarray, labels: Sequence[str] | None = None, scope: str = "all") -> float:
    """Average pairwise cosine similarity over pairs i≠j: all pairs, same-label ('intra') or different ('inter')."""
    n = len(vectors)
    if n < 2:
        return float("nan")
    sims = vectors @ vectors.T
    mask = ~np.eye(n, dtype=bool)
    if scope != "all":
        if labels is None:
            raise ValueError("intra- and inter-class APS need labels")
        same = np.asarray(labels)[:, None] == np.asarray(labels)[None, :]
        mask &= same if scope == "intra" else ~same
    return float(sims[mask].mean()) if mask.any() else float("nan")


def cmd(x: np.ndarray, y: np.ndarray, moments: int = 5) -> float:
    """Central moment discrepancy between samples X and Y of embeddings in [-1, 1]."""
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    total = 0.5 * float(np.linalg.norm(mean_x - mean_y))
    for k in range(2, moments + 1):
        central_x = ((x - mean_x) ** k).mean(axis=0)
        central_y = ((y - mean_y) ** k).mean(axis=0)
        total += float(np.linalg.norm(central_x - central_y)) / 2**k
    return total


def vocabulary_size(texts: Sequence[str]) -> int:
    return len({token for text in texts for token in tokens(text)})


def remote_clique(vectors: np.ndarray) -> float:
    """Mean pairwise Euclidean distance, (1/n²) Σ_i Σ_j ‖e_i − e_j‖ (the diagonal's zeros included)."""
    n = len(vectors)
    if n == 0:
        return float("nan")
    squared = np.maximum((vectors**2).sum(1)[:, None] + (vectors**2).sum(1)[None, :] - 2 * vectors @ vectors.T, 0)
    np.fill_diagonal(squared, 0.0)
    return float(np.sqrt(squared).sum() / n**2)


@dataclass(frozen=True)
class SelfBleu:
    value: float
    sampled: int
    total: int


def self_bleu(texts: Sequence[str], sample: int = 500, seed: int = 0) -> SelfBleu:
    """Mean BLEU-4 of each (sampled) text against all the others as references. Lower = more diverse.

    Exactly NLTK's `sentence_bleu` with smoothing method 1 (the tests compare the two), computed in
    O(n) per text instead of re-counting every reference's n-grams for every hypothesis: each n-gram's
    two highest counts over the whole set give its clipping count "over all texts but this one".
    """
    tokenised = [tokens(t) for t in texts]
    n = len(tokenised)
    if n < 2:
        return SelfBleu(float("nan"), 0, n)
    chosen = np.arange(n) if n <= sample else np.random.default_rng(seed).choice(n, size=sample, replace=False)
    counts = [[Counter(zip(*(words[k:] for k in range(order)), strict=False)) for order in range(1, 5)]
              for words in tokenised]
    top: list[dict[tuple[str, ...], tuple[int, int, int]]] = [{} for _ in range(4)]  # gram -> (best, owner, second)
    for owner, per_order in enumerate(counts):
        for order, counter in enumerate(per_order):
            table = top[order]
            for gram, c in counter.items():
                best = table.get(gram)
                if best is None:
                    table[gram] = (c, owner, 0)
                elif c > best[0]:
                    table[gram] = (c, owner, best[0])
                elif c > best[2]:
                    table[gram] = (best[0], best[1], c)
    lengths = Counter(len(words) for words in tokenised)
    return SelfBleu(float(np.mean([_bleu_against_others(int(i), counts[i], top, lengths, len(tokenised[i]))
                                   for i in chosen])), len(chosen), n)


def _bleu_against_others(
    me: int,
    counts: list[Counter[tuple[str, ...]]],
    top: list[dict[tuple[str, ...], tuple[int, int, int]]],
    lengths: Counter[int],
    length: int,
) -> float:
    """NLTK's sentence BLEU-4 (smoothing method 1: 0.1 added to a zero numerator) of text `me` vs all others."""
    precisions = []
    for order, counter in enumerate(counts):
        matched = 0
        for gram, c in counter.items():
            best, owner, second = top[order][gram]
            matched += min(c, second if owner == me else best)
        if order == 0 and matched == 0:
            return 0.0
        total = max(1, sum(counter.values()))
        precisions.append((matched if matched else 0.1) / total)
    others = lengths.copy()
    others[length] -= 1
    closest = min((ref for ref, k in others.items() if k > 0), key=lambda ref: (abs(ref - length), ref))
    penalty = 1.0 if length > closest else math.exp(1 - closest / length)
    return penalty * math.exp(math.fsum(0.25 * math.log(p) for p in precisions))


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the set."""
    grams = [tuple(words[i : i + n]) for words in map(tokens, texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")
