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


def _sqdist(x: FloatArray, x_sq: FloatArray, y: FloatArray, y_sq: FloatArray) -> FloatArray:
    """Squared distances ||x||² + ||y||² − 2x·y as a (len(x), len(y)) block, clipped at 0 against rounding."""
    block = x @ y.T
    block *= -2.0
    block += y_sq
    block += x_sq[:, None]
    np.maximum(block, 0.0, out=block)
    return block


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
        return _sqdist(self.data[rows], self.sq[rows], self.data[cols], self.sq[cols])


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
    """Vector storage plus, per tracked member, a short list of its farthest unused partners.

    Invariant: a tracked member's list holds exactly its `depth` (or fewer) farthest partners it was not paired with,
    and an empty list means it has none; best_dist / best_partner are the list's maximum (−inf / −1 if empty or
    untracked). Using a pair only removes an entry; a list is recomputed (one mat-vec) when it runs empty, so with
    depth > 1 most selections need no pass over the population.
    """

    def __init__(self, depth: int) -> None:
        super().__init__()
        self._vec = _Vectors()
        self._depth = depth
        self._top_dist: FloatArray = np.empty((0, depth), dtype=np.float32)
        self._top_partner: IntArray = np.empty((0, depth), dtype=np.int64)
        self._best_dist: FloatArray = np.empty(0, dtype=np.float32)
        self._best_partner: IntArray = np.empty(0, dtype=np.int64)

    def _grow_best(self) -> None:
        capacity = self._vec.capacity
        self._top_dist = _grown(self._top_dist, capacity, _NONE)
        self._top_partner = _grown(self._top_partner, capacity, -1)
        self._best_dist = _grown(self._best_dist, capacity, _NONE)
        self._best_partner = _grown(self._best_partner, capacity, -1)

    def _mask_used(self, block: FloatArray, rows: Sequence[int] | IntArray, col_start: int) -> None:
        """Set −inf where a row's member was already paired with a column's member (columns from col_start)."""
        for r, i in enumerate(rows):
            if self._ids[i] in self._used:
                cols = self._used_positions(int(i)) - col_start
                block[r, cols[(cols >= 0) & (cols < block.shape[1])]] = _NONE

    def _refresh_best(self, rows: IntArray) -> None:
        arg = self._top_dist[rows].argmax(axis=1)
        self._best_dist[rows] = self._top_dist[rows, arg]
        self._best_partner[rows] = self._top_partner[rows, arg]

    def _set_rows_top(self, rows: IntArray, block: FloatArray) -> None:
        """Partner lists of `rows` from their full distance rows (self and used partners already masked)."""
        if self._depth == 1:  # argmax is several times cheaper than argpartition
            top = block.argmax(axis=1)[:, None]
        elif block.shape[1] > self._depth:
            top = np.argpartition(block, block.shape[1] - self._depth, axis=1)[:, -self._depth :]
        else:
            top = np.broadcast_to(np.arange(block.shape[1]), (len(rows), block.shape[1]))
        dist = np.take_along_axis(block, top, axis=1)
        self._top_dist[rows] = _NONE
        self._top_partner[rows] = -1
        self._top_dist[rows, : top.shape[1]] = dist
        self._top_partner[rows, : top.shape[1]] = np.where(dist == _NONE, -1, top)
        self._refresh_best(rows)

    def _compute_best(self, rows: IntArray) -> None:
        """Recompute the partner lists of `rows` against the whole population."""
        n = self._vec.n
        for block_rows in _row_blocks(0, len(rows), n):
            chunk = rows[block_rows]
            block = self._vec.sqdist(chunk, slice(0, n))
            block[np.arange(len(chunk)), chunk] = _NONE
            self._mask_used(block, chunk, 0)
            self._set_rows_top(chunk, block)

    def _on_used(self, i: int, j: int) -> None:
        for a, b in ((i, j), (j, i)):
            hit = self._top_partner[a] == b
            if not hit.any():  # not among a's farthest: the list is still exact
                continue
            self._top_dist[a, hit] = _NONE
            self._top_partner[a, hit] = -1
            if self._top_partner[a].max() < 0:
                self._compute_best(np.array([a], dtype=np.int64))
            else:
                self._refresh_best(np.array([a], dtype=np.int64))

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

    def __init__(self) -> None:
        super().__init__(depth=1)  # deeper lists would need per-column top-k merges in the half-matrix build

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
            self._set_rows_top(np.arange(s, e), block)
            if s == 0:
                continue
            col_best = block[:, :s].max(axis=0)
            improved = np.flatnonzero(col_best > self._best_dist[:s])
            if improved.size:
                partners = s + block[:, improved].argmax(axis=0)
                self._top_dist[improved, 0] = self._best_dist[improved] = col_best[improved]
                self._top_partner[improved, 0] = self._best_partner[improved] = partners

    def select(self) -> tuple[int, int] | None:
        pair = self._best_pair()
        return None if pair is None else self._reserve(*pair)


class ApproxFarthestPairSelector(_BestPartners):
    """Approximate: only candidate endpoints keep partner lists (against all members), so no O(n²) build.

    A far pair has at least one eccentric endpoint, so the candidates are the k members farthest from a random
    reference sample, plus the farthest partner of each (a far point's farthest point is itself extreme). On
    clustered 384-d data this covers the best pairs far better than the extremes of random projections (measured).
    A new member is offered to the candidates' lists and joins the candidates when it is eccentric enough; when every
    candidate has run out of unused partners, k doubles, until all members are candidates (then it is exact).
    """

    def __init__(
        self, *, seed: int | None = None, n_reference: int = 256, n_candidates: int = 2048, depth: int = 16
    ) -> None:
        super().__init__(depth)
        self._rng = np.random.default_rng(seed)
        self._n_reference = n_reference
        self._k = n_candidates
        self._reference = _Vectors()  # contiguous copies: scoring a new member must not gather rows
        self._score: FloatArray = np.empty(0, dtype=np.float32)  # squared distance to the farthest reference member
        self._threshold = _NONE  # k-th largest score: the candidates hold every member scoring above it
        self._is_candidate: npt.NDArray[np.bool_] = np.empty(0, dtype=bool)
        self._candidates = _Vectors()  # contiguous copies, in the order of _candidate_pos
        self._candidate_pos: IntArray = np.empty(0, dtype=np.int64)

    @property
    def _candidate_positions(self) -> IntArray:
        return self._candidate_pos[: self._candidates.n]

    def _extend(self, start: int, vectors: np.ndarray) -> None:
        self._vec.extend(vectors)
        self._grow_best()
        n = self._vec.n
        self._score = _grown(self._score, self._vec.capacity, _NONE)
        self._is_candidate = _grown(self._is_candidate, self._vec.capacity, False)
        self._offer_new_members(start, n)
        missing = min(self._n_reference - self._reference.n, n - start)
        if missing > 0:  # the reference sample fills up from the first members: every score may change
            fresh = start + self._rng.choice(n - start, size=missing, replace=False)
            self._reference.extend(self._vec.data[fresh])
            self._rescore(0, start, self._reference.n - missing)
            self._rescore(start, n, 0)
            self._add_candidates(self._top(np.arange(n, dtype=np.int64)))
            return
        self._rescore(start, n, 0)
        new = self._top(np.arange(start, n, dtype=np.int64))
        self._add_candidates(new[self._score[new] > self._threshold])

    def _rescore(self, start: int, stop: int, first_reference: int) -> None:
        """Raise the scores of members start..stop with their distances to the reference members from the given one."""
        ref = slice(first_reference, self._reference.n)
        for rows in _row_blocks(start, stop, ref.stop - ref.start):
            block = _sqdist(
                self._vec.data[rows], self._vec.sq[rows], self._reference.data[ref], self._reference.sq[ref]
            )
            np.maximum(self._score[rows], block.max(axis=1), out=self._score[rows])

    def _top(self, positions: IntArray) -> IntArray:
        """The k highest-scoring of `positions`."""
        if len(positions) <= self._k:
            return positions
        return positions[np.argpartition(self._score[positions], len(positions) - self._k)[-self._k :]]

    def _offer_new_members(self, start: int, n: int) -> None:
        """Offer the members just added at start..n to the candidates' partner lists."""
        rows = self._candidate_positions
        if not rows.size:
            return
        cand = slice(0, self._candidates.n)
        for cols in _row_blocks(start, n, len(rows)):
            block = _sqdist(
                self._candidates.data[cand], self._candidates.sq[cand], self._vec.data[cols], self._vec.sq[cols]
            )
            # Mask through the new members' used sets: they are small, the candidates' can be huge.
            for c in range(cols.start, cols.stop):
                if self._ids[c] in self._used:
                    block[np.isin(rows, self._used_positions(c)), c - cols.start] = _NONE
            # A list is the exact top of its unused partners, so only distances above its smallest entry may join;
            # an empty list means no partner was left, so anything may join it.
            lists = self._top_dist[rows]
            floor = np.where(lists > _NONE, lists, np.inf).min(axis=1)
            floor[np.isinf(floor)] = _NONE
            offered = block > floor[:, None]
            hit = np.flatnonzero(offered.any(axis=1))
            if not hit.size:
                continue
            dist = np.concatenate([lists[hit], np.where(offered[hit], block[hit], _NONE)], axis=1)
            new_partners = np.broadcast_to(np.arange(cols.start, cols.stop), (len(hit), cols.stop - cols.start))
            partner = np.concatenate([self._top_partner[rows[hit]], new_partners], axis=1)
            top = np.argpartition(dist, dist.shape[1] - self._depth, axis=1)[:, -self._depth :]
            dist = np.take_along_axis(dist, top, axis=1)
            targets = rows[hit]
            self._top_dist[targets] = dist
            self._top_partner[targets] = np.where(dist == _NONE, -1, np.take_along_axis(partner, top, axis=1))
            self._refresh_best(targets)

    def _add_candidates(self, positions: IntArray) -> None:
        """Make `positions` candidates, with their farthest partners, then move the entry threshold."""
        fresh = positions[~self._is_candidate[positions]]
        for _ in range(2):  # the candidates, then their farthest partners
            if not fresh.size:
                break
            self._is_candidate[fresh] = True
            count = self._candidates.n
            self._candidates.extend(self._vec.data[fresh])
            self._candidate_pos = _grown(self._candidate_pos, self._candidates.capacity, -1)
            self._candidate_pos[count : self._candidates.n] = fresh
            self._compute_best(fresh)
            partners = np.unique(self._best_partner[fresh])
            partners = partners[partners >= 0]
            fresh = partners[~self._is_candidate[partners]]
        scores = self._score[self._candidate_positions]
        if len(scores) >= self._k:
            self._threshold = float(np.partition(scores, len(scores) - self._k)[len(scores) - self._k])

    def select(self) -> tuple[int, int] | None:
        while True:
            pair = self._best_pair()
            if pair is not None:
                return self._reserve(*pair)
            n = self._vec.n
            if self._candidates.n >= n:
                return None
            self._k *= 2  # every candidate ran out of unused partners: take the next-ranked members too
            self._add_candidates(self._top(np.arange(n, dtype=np.int64)))


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
