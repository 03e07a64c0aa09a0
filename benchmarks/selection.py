"""Benchmark parent selection: build time, time per selected pair, and the approximate selector's recall.

    python benchmarks/selection.py [--sizes 1000 10000 100000] [--dim 384] [--steps 200] [--skip-exact-above N]

Each step is one select() followed by one add() of a new member, as in the generation loop. Recall compares the
approximate pair with the exact best unused pair at the same step: an exact selector (a copy of the built one) is
kept in lockstep with the approximate one, fed the same members and the approximate selector's pairs as used.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datagen_core.engine.selection import ApproxFarthestPairSelector, FarthestPairSelector, ParentSelector

CLUSTERS = 20
SPREAD = 1.0  # noise scale relative to the cluster centres' per-coordinate scale


def clustered_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """A mixture of gaussians projected to the unit sphere, like the embeddings of one label's texts."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32)
    x = centres[rng.integers(CLUSTERS, size=n)] + SPREAD * rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def distance(vectors: np.ndarray, pair: tuple[int, int]) -> float:
    a, b = (vectors[k].astype(np.float64) for k in pair)
    return float(np.linalg.norm(a - b))


def build(selector: ParentSelector, vectors: np.ndarray, n: int) -> float:
    start = time.perf_counter()
    selector.add_many(range(n), vectors[:n])
    return time.perf_counter() - start


def run_steps(selector: ParentSelector, vectors: np.ndarray, n: int, steps: int) -> float:
    """Mean milliseconds per select() + add() cycle."""
    start = time.perf_counter()
    for step in range(steps):
        selector.select()
        selector.add(n + step, vectors[n + step])
    return 1000 * (time.perf_counter() - start) / steps


def recall(
    approx: ApproxFarthestPairSelector, reference: FarthestPairSelector, vectors: np.ndarray, n: int, steps: int
) -> tuple[float, float, float, float]:
    """(ms per approx step, fraction of steps within 1% of the exact best unused distance, mean ratio, seconds
    spent on the exact reference)."""
    hits, ratios, approx_seconds, reference_seconds = 0, [], 0.0, 0.0
    for step in range(steps):
        t0 = time.perf_counter()
        pair = approx.select()
        t1 = time.perf_counter()
        best = reference._best_pair()  # peek without reserving: the reference's used pairs stay the approx's
        assert pair is not None and best is not None
        ratio = distance(vectors, pair) / distance(vectors, best)
        hits += ratio >= 0.99
        ratios.append(ratio)
        t2 = time.perf_counter()
        reference.mark_used(*pair)
        reference.add(n + step, vectors[n + step])
        t3 = time.perf_counter()
        approx.add(n + step, vectors[n + step])
        t4 = time.perf_counter()
        approx_seconds += (t1 - t0) + (t4 - t3)
        reference_seconds += t3 - t2
    return 1000 * approx_seconds / steps, hits / steps, float(np.mean(ratios)), reference_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-exact-above",
        type=int,
        default=None,
        metavar="N",
        help="skip the exact selector (and so recall) for sizes above N: its build is O(n² d)",
    )
    args = parser.parse_args()

    print(
        f"clustered unit vectors: {CLUSTERS} gaussians, noise {SPREAD}, dim {args.dim}, seed {args.seed}; "
        f"{args.steps} select()+add() steps per run"
    )
    header = (
        f"{'n':>8} {'selector':>8} {'build s':>9} {'ms/pair':>9} {'recall@0.99':>12} {'mean ratio':>11} "
        f"{'candidates':>11}"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        vectors = clustered_unit_vectors(n + args.steps, args.dim, args.seed)
        approx = ApproxFarthestPairSelector(seed=args.seed)
        approx_build = build(approx, vectors, n)
        candidates = approx._candidates.n
        if args.skip_exact_above is not None and n > args.skip_exact_above:
            approx_ms = run_steps(approx, vectors, n, args.steps)
            print(f"{n:>8} {'exact':>8} {'skipped (--skip-exact-above)':>42}")
            print(
                f"{n:>8} {'approx':>8} {approx_build:>9.2f} {approx_ms:>9.2f} {'n/a':>12} {'n/a':>11} {candidates:>11}",
                flush=True,
            )
            continue
        exact = FarthestPairSelector()
        exact_build = build(exact, vectors, n)
        reference = copy.deepcopy(exact)
        exact_ms = run_steps(exact, vectors, n, args.steps)
        print(f"{n:>8} {'exact':>8} {exact_build:>9.2f} {exact_ms:>9.2f} {'1':>12} {'1':>11} {n:>11}", flush=True)
        approx_ms, hit_rate, mean_ratio, reference_seconds = recall(approx, reference, vectors, n, args.steps)
        print(
            f"{n:>8} {'approx':>8} {approx_build:>9.2f} {approx_ms:>9.2f} {hit_rate:>12.3f} {mean_ratio:>11.4f} "
            f"{candidates:>11}   (exact reference in lockstep: {reference_seconds:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
