"""Parent-pair selection for Genetic Prompt: the farthest pair not used before (exact or approximate) or a random one.

Selection runs while many LLM requests are in flight, so `select()` reserves the pair it returns at once; a pair is
never returned twice. Members arrive over time (offspring land), and a resumed run re-marks the pairs used earlier.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

_BLOCK_ELEMENTS = 1 << 24  # largest distance block (64 MB of float32), so memory stays bounded for any population
_MAX_BLOCK_ROWS = 2048
_NONE = -np.inf  # best distance of a member with no unused partner left


def _row_blocks(start: int, stop: int, width: int) -> Iterator[slice]:
    """Row ranges whose distance blocks against `width` columns fit the memory budget."""
    rows = max(1, min(_MAX_BLOCK_ROWS, _BLOCK_ELEMENTS // max(width, 1)))
    for s in range(start, stop, rows):
        yield slice(s, min(stop, s + rows))


def _grown(array: np.ndarray, capacity: int, fill: float | int) -> np.ndarray:
    """`array` enlarged to `capacity` (amortised doubling by the caller), new slots set to `fill`."""
    if len(array) >= capacity:
        return array
    out = np.full((capacity, *array.shape[1:]), fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


class _Vectors:
    """Member vectors in a preallocated float32 matrix that doubles when full (no repeated vstack)."""

    def __init__(self) -> None:
        self.data: FloatArray = np.empty((0, 0), dtype=np.float32)
        self.sq: FloatArray = np.empty(0, dtype=np.float32)  # squared norms: distances need no unit-norm assumption
        self.n = 0

    @property
    def capacity(self) -> int:
        return len(self.data)

    def extend(self, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.capacity == 0:
            self.data = np.empty((0, vectors.shape[1]), dtype=np.float32)
        stop = self.n + len(vectors)
        if stop > self.capacity:
            capacity = max(stop, 2 * self.capacity, 16)
            self.data = _grown(self.data, capacity, 0.0)
            self.sq = _grown(self.sq, capacity, 0.0)
        self.data[self.n : stop] = vectors
        self.sq[self.n : stop] = np.einsum("ij,ij->i", vectors, vectors)
        self.n = stop

    def sqdist(self, rows: slice | IntArray, cols: slice) -> FloatArray:
        """Squared distances ||a||² + ||b||² − 2a·b as a (rows, cols) block, clipped at 0 against rounding."""
        block = self.data[rows] @ self.data[cols].T
        block *= -2.0
        block += self.sq[cols]
        block += self.sq[rows][:, None]
        np.maximum(block, 0.0, out=block)
        return block


class ParentSelector(ABC):
    """Chooses parent pairs from a growing population; every returned pair is marked used."""

    def __init__(self) -> None:
        self._ids: list[int] = []  # position -> member id
        self._index: dict[int, int] = {}  # member id -> position
        self._used: dict[int, set[int]] = {}  # member id -> ids it was paired with; ids may precede their `add`
        self._dim: int | None = None

    def add(self, member_id: int, vector: np.ndarray) -> None:
        """Add one member (an offspring that just landed)."""
        self.add_many([member_id], np.asarray(vector)[None, :])

    def add_many(self, member_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add a batch of members; `vectors` is (len(member_ids), d)."""
        vectors = np.asarray(vectors)
        if len(member_ids) == 0:
            return
        if vectors.ndim != 2 or len(vectors) != len(member_ids):
            raise ValueError(f"expected {len(member_ids)} vectors as a 2-D array, got shape {vectors.shape}")
        ids = [int(m) for m in member_ids]
        if len(set(ids)) != len(ids) or any(m in self._index for m in ids):
            raise ValueError("member ids must be new and distinct")
        if self._dim not in (None, vectors.shape[1]):
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, the population has {self._dim}")
        self._dim = vectors.shape[1]
        start = len(self._ids)
        self._index.update((m, start + k) for k, m in enumerate(ids))
        self._ids.extend(ids)
        self._extend(start, vectors)

    def mark_used(self, a: int, b: int) -> None:
        """Record a pair used by an earlier session (order-insensitive); members may be added before or after."""
        if a == b:
            raise ValueError(f"a pair needs two distinct members, got {a} twice")
        if self.is_used(a, b):
            return
        self._used.setdefault(a, set()).add(b)
        self._used.setdefault(b, set()).add(a)
        if a in self._index and b in self._index:
            self._on_used(self._index[a], self._index[b])

    @abstractmethod
    def select(self) -> tuple[int, int] | None:
        """The best unused pair (smaller id first), marked used; None when every pair is used or < 2 members."""

    def __len__(self) -> int:
        return len(self._ids)

    def is_used(self, a: int, b: int) -> bool:
        return b in self._used.get(a, ())

    @abstractmethod
    def _extend(self, start: int, vectors: np.ndarray) -> None:
        """Take in the vectors of the members just registered at positions start, start + 1, …"""

    @abstractmethod
    def _on_used(self, i: int, j: int) -> None:
        """Positions i and j of known members were just paired."""

    def _reserve(self, i: int, j: int) -> tuple[int, int]:
        a, b = sorted((self._ids[i], self._ids[j]))
        self.mark_used(a, b)
        return a, b

    def _used_positions(self, i: int) -> IntArray:
        """Positions of the members already paired with the member at position i."""
        partners = self._used.get(self._ids[i], ())
        return np.fromiter((self._index[p] for p in partners if p in self._index), dtype=np.int64)


class _BestPartners(ParentSelector):
    """Vector storage plus, per tracked member, its farthest unused partner among all members.

    Invariant: for a tracked member i, best_dist[i] is the largest squared distance to a member it was not paired
    with (−inf if none) and best_partner[i] reaches it; untracked members hold −inf.
    """

    def __init__(self) -> None:
        super().__init__()
        self._vec = _Vectors()
        self._best_dist: FloatArray = np.empty(0, dtype=np.float32)
        self._best_partner: IntArray = np.empty(0, dtype=np.int64)

    def _grow_best(self) -> None:
        self._best_dist = _grown(self._best_dist, self._vec.capacity, _NONE)
        self._best_partner = _grown(self._best_partner, self._vec.capacity, -1)

    def _mask_used(self, block: FloatArray, rows: Sequence[int] | IntArray, col_start: int) -> None:
        """Set −inf where a row's member was already paired with a column's member (columns from col_start)."""
        for r, i in enumerate(rows):
            if self._ids[i] in self._used:
                cols = self._used_positions(int(i)) - col_start
                block[r, cols[(cols >= 0) & (cols < block.shape[1])]] = _NONE

    def _set_rows_best(self, rows: IntArray, block: FloatArray) -> None:
        """Best partners of `rows` from their full distance rows (self and used partners already masked)."""
        arg = block.argmax(axis=1)
        best = block[np.arange(len(rows)), arg]
        self._best_dist[rows] = best
        self._best_partner[rows] = np.where(best == _NONE, -1, arg)

    def _compute_best(self, rows: IntArray) -> None:
        """Recompute the best unused partner of each member in `rows` against the whole population."""
        n = self._vec.n
        for block_rows in _row_blocks(0, len(rows), n):
            chunk = rows[block_rows]
            block = self._vec.sqdist(chunk, slice(0, n))
            block[np.arange(len(chunk)), chunk] = _NONE
            self._mask_used(block, chunk, 0)
            self._set_rows_best(chunk, block)

    def _on_used(self, i: int, j: int) -> None:
        # Losing one option cannot raise a maximum: only an endpoint whose best was the other needs recomputing.
        stale = [a for a, b in ((i, j), (j, i)) if self._best_partner[a] == b]
        if stale:
            self._compute_best(np.array(stale, dtype=np.int64))

    def _best_pair(self) -> tuple[int, int] | None:
        n = self._vec.n
        if n < 2:
            return None
        i = int(np.argmax(self._best_dist[:n]))
        if self._best_dist[i] == _NONE:
            return None
        return i, int(self._best_partner[i])


class FarthestPairSelector(_BestPartners):
    """Exact: every member keeps its farthest unused partner, so the global best is one argmax away.

    Build is O(n² d) in bounded-memory blocks (each pair computed once); adding a member costs one mat-vec, and using
    a pair recomputes at most its two endpoints (one mat-vec each).
    """

    def _extend(self, start: int, vectors: np.ndarray) -> None:
        self._vec.extend(vectors)
        self._grow_best()
        n = self._vec.n
        # Rows start..n against columns 0..e: row maxima give the new members' bests, column maxima update earlier ones.
        for rows in _row_blocks(start, n, n):
            s, e = rows.start, rows.stop
            block = self._vec.sqdist(rows, slice(0, e))
            block[np.arange(e - s), np.arange(s, e)] = _NONE
            self._mask_used(block, range(s, e), 0)
            self._set_rows_best(np.arange(s, e), block)
            if s == 0:
                continue
            col_best = block[:, :s].max(axis=0)
            improved = np.flatnonzero(col_best > self._best_dist[:s])
            if improved.size:
                self._best_dist[improved] = col_best[improved]
                self._best_partner[improved] = s + block[:, improved].argmax(axis=0)

    def select(self) -> tuple[int, int] | None:
        pair = self._best_pair()
        return None if pair is None else self._reserve(*pair)


class ApproxFarthestPairSelector(_BestPartners):
    """Approximate: only candidate endpoints keep a best partner (against all members), so no O(n²) build.

    Far pairs have endpoints at the extremes of the population, so candidates are the members with the top-k and
    bottom-k projections on random directions, plus the farthest partner of each (a far point's farthest point is
    itself extreme). A new member updates the candidates' bests and joins them when it is extreme; when every
    candidate has run out of unused partners, k doubles, until all members are candidates (then it is exact).
    """

    def __init__(self, *, seed: int | None = None, n_directions: int = 32, per_direction: int = 8) -> None:
        super().__init__()
        self._rng = np.random.default_rng(seed)
        self._n_directions = n_directions
        self._k = per_direction
        self._directions: FloatArray = np.empty((0, 0), dtype=np.float32)
        self._proj: FloatArray = np.empty((0, n_directions), dtype=np.float32)
        self._is_candidate: npt.NDArray[np.bool_] = np.empty(0, dtype=bool)
        self._candidates: list[int] = []
        self._hi = np.full(n_directions, _NONE, dtype=np.float32)  # k-th largest projection per direction
        self._lo = np.full(n_directions, np.inf, dtype=np.float32)  # k-th smallest projection per direction

    def _extend(self, start: int, vectors: np.ndarray) -> None:
        self._vec.extend(vectors)
        self._grow_best()
        n = self._vec.n
        if start == 0:
            directions = self._rng.standard_normal((self._n_directions, self._vec.data.shape[1]))
            self._directions = (directions / np.linalg.norm(directions, axis=1, keepdims=True)).astype(np.float32)
        self._proj = _grown(self._proj, self._vec.capacity, 0.0)
        self._is_candidate = _grown(self._is_candidate, self._vec.capacity, False)
        new_proj = self._vec.data[start:n] @ self._directions.T
        self._proj[start:n] = new_proj

        old = np.array(self._candidates, dtype=np.int64)
        if old.size:
            self._update_with_new_columns(old, start, n)
        # Top-k over (old candidates ∪ new rows) is top-k over all, since candidates hold every earlier top-k.
        order = np.argsort(new_proj, axis=0)
        extreme = np.concatenate([order[: self._k], order[-self._k :]]).ravel()
        extreme = np.unique(extreme)
        values = new_proj[extreme]
        entering = extreme[((values > self._hi) | (values < self._lo)).any(axis=1)]
        self._add_candidates(start + entering)

    def _update_with_new_columns(self, rows: IntArray, start: int, n: int) -> None:
        """Raise the candidates' bests with the members just added at start..n."""
        for cols in _row_blocks(start, n, len(rows)):
            block = self._vec.sqdist(rows, cols)  # (candidates, new members)
            # Mask through the new members' used sets: they are small, the candidates' can be huge.
            for c in range(cols.start, cols.stop):
                if self._ids[c] in self._used:
                    block[np.isin(rows, self._used_positions(c)), c - cols.start] = _NONE
            arg = block.argmax(axis=1)
            best = block[np.arange(len(rows)), arg]
            improved = best > self._best_dist[rows]
            self._best_dist[rows[improved]] = best[improved]
            self._best_partner[rows[improved]] = cols.start + arg[improved]

    def _add_candidates(self, positions: IntArray) -> None:
        """Make `positions` candidates (with their farthest partners), then refresh the projection thresholds."""
        fresh = positions[~self._is_candidate[positions]]
        for _ in range(2):  # the candidates, then their farthest partners
            if not fresh.size:
                break
            self._is_candidate[fresh] = True
            self._candidates.extend(int(p) for p in fresh)
            self._compute_best(fresh)
            partners = np.unique(self._best_partner[fresh])
            partners = partners[partners >= 0]
            fresh = partners[~self._is_candidate[partners]]
        proj = self._proj[np.array(self._candidates, dtype=np.int64)]
        if len(proj) >= self._k:
            self._hi = np.partition(proj, len(proj) - self._k, axis=0)[len(proj) - self._k]
            self._lo = np.partition(proj, self._k - 1, axis=0)[self._k - 1]

    def _widen(self) -> None:
        """Every candidate ran out of unused partners: double k and take the next-ranked projections."""
        n = self._vec.n
        self._k *= 2
        proj = self._proj[:n]
        if 2 * self._k >= n:
            self._add_candidates(np.arange(n, dtype=np.int64))
            return
        order = np.argpartition(proj, (self._k, n - self._k), axis=0)
        self._add_candidates(np.unique(np.concatenate([order[: self._k], order[n - self._k :]]).ravel()))

    def select(self) -> tuple[int, int] | None:
        while True:
            pair = self._best_pair()
            if pair is not None:
                return self._reserve(*pair)
            if len(self._candidates) >= self._vec.n:
                return None
            self._widen()


class RandomPairSelector(ParentSelector):
    """The paper's ablation: a uniformly random unused pair.

    Rejection sampling is O(1) while most pairs are free; once it keeps hitting used pairs, a member is drawn with
    weight equal to its number of unused partners and then one of those partners uniformly, which is still uniform
    over unused pairs and costs O(n), never O(n²).
    """

    _REJECTION_TRIES = 8

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self._rng = np.random.default_rng(seed)
        self._used_count: IntArray = np.empty(0, dtype=np.int64)  # per position: partners among current members

    def _extend(self, start: int, vectors: np.ndarray) -> None:
        n = len(self._ids)
        self._used_count = _grown(self._used_count, max(n, 2 * len(self._used_count)), 0)
        for i in range(start, n):  # pairs marked before these members arrived
            partners = self._used_positions(i)
            self._used_count[i] = len(partners)
            self._used_count[partners[partners < start]] += 1

    def _on_used(self, i: int, j: int) -> None:
        self._used_count[[i, j]] += 1

    def select(self) -> tuple[int, int] | None:
        n = len(self._ids)
        free = (n - 1) - self._used_count[:n]
        total = int(free.sum())  # twice the number of unused pairs
        if n < 2 or total == 0:
            return None
        for _ in range(self._REJECTION_TRIES):
            i = int(self._rng.integers(n))
            j = int(self._rng.integers(n - 1))
            j += j >= i
            if not self.is_used(self._ids[i], self._ids[j]):
                return self._reserve(i, j)
        i = int(np.searchsorted(np.cumsum(free), self._rng.integers(total), side="right"))
        taken = np.append(self._used_positions(i), i)
        partners = np.setdiff1d(np.arange(n), taken, assume_unique=True)
        return self._reserve(i, int(self._rng.choice(partners)))


def make_selector(
    strategy: Literal["farthest", "random"],
    *,
    seed: int | None = None,
    approx_above: int = 20_000,
    expected_size: int = 0,
) -> ParentSelector:
    """The selector for a label: exact farthest pair unless the population is expected to outgrow `approx_above`."""
    if strategy == "random":
        return RandomPairSelector(seed)
    if strategy == "farthest":
        if expected_size <= approx_above:
            return FarthestPairSelector()
        return ApproxFarthestPairSelector(seed=seed)
    raise ValueError(f"unknown parent selection strategy {strategy!r}")
