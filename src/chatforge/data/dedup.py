"""Exact and near-duplicate detection: MinHash LSH in numpy, grouping, transitive clusters.

Near duplicates follow FineWeb: word 5-gram shingles of the canonical text (lowercase, no
punctuation, digits folded, accents removed), 64-bit MinHash with bands x rows hashes
(14 x 8 by default, estimated Jaccard threshold about 0.75), documents sharing any band bucket
are linked, links are closed transitively with union-find and the document with the smallest
order key in each cluster is kept. Everything here works on arrays, so an executor can compute
signatures per batch, shuffle (band, key, order) rows by key to partitions and group each
partition on its own: no process ever holds all buckets.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from chatforge.data.normalize import (
    canonical_words,
    hash_words,
    mix64,
    ngram_hashes,
    text_fingerprint,
)

_MAX_CHUNK_SHINGLES = 1 << 15  # bounds the (shingles x hashes) temporary to ~30 MB


class MinHasher:
    """MinHash signatures and LSH band keys with `bands * rows` seeded 64-bit permutations."""

    def __init__(self, bands: int = 14, rows: int = 8, ngram: int = 5, seed: int = 0):
        if bands < 1 or rows < 1 or ngram < 1:
            raise ValueError(f"bands, rows and ngram must be >= 1, got {bands}, {rows}, {ngram}")
        self.bands, self.rows, self.ngram = bands, rows, ngram
        rng = np.random.default_rng(seed)
        n = bands * rows
        # h -> mix64(a*h + b) with odd a is a bijection of the 64-bit space: one permutation each.
        self.a = rng.integers(1, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, size=n, dtype=np.uint64)

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def threshold(self) -> float:
        """Jaccard similarity at which a pair is caught with probability about one half."""
        return (1 / self.bands) ** (1 / self.rows)

    def shingles(self, text: str, cache: dict[str, int] | None = None) -> np.ndarray:
        """Distinct hashes of the word n-grams; a text shorter than n words is one shingle."""
        words = canonical_words(text)
        hashes = hash_words(words, cache)
        n = min(self.ngram, max(1, len(words)))
        grams = ngram_hashes(hashes, n) if len(words) else np.zeros(1, dtype=np.uint64)
        return np.unique(grams)

    def signatures(self, texts: Iterable[str]) -> np.ndarray:
        """(n_docs, bands*rows) uint64 signatures, vectorised over all shingles of a batch."""
        cache: dict[str, int] = {}
        per_doc = [self.shingles(t, cache) for t in texts]
        out = np.empty((len(per_doc), self.num_perm), dtype=np.uint64)
        start = 0
        while start < len(per_doc):
            # Take docs until the chunk holds enough shingles (always at least one doc).
            stop, total = start, 0
            while stop < len(per_doc) and (stop == start or total + len(per_doc[stop]) <= _MAX_CHUNK_SHINGLES):
                total += len(per_doc[stop])
                stop += 1
            flat = np.concatenate(per_doc[start:stop])
            offsets = np.cumsum([0] + [len(s) for s in per_doc[start : stop - 1]])
            with np.errstate(over="ignore"):
                permuted = mix64(flat[:, None] * self.a[None, :] + self.b[None, :])
            out[start:stop] = np.minimum.reduceat(permuted, offsets, axis=0)
            start = stop
        return out

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(n_docs, bands) uint64: one hash of each band's `rows` values."""
        n = len(signatures)
        sig = signatures.reshape(n, self.bands, self.rows)
        with np.errstate(over="ignore"):
            acc = np.zeros((n, self.bands), dtype=np.uint64)
            for r in range(self.rows):
                acc = acc * np.uint64(0x9E3779B97F4A7C15) + sig[:, :, r]
        return mix64(acc)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Share of equal MinHash values: an unbiased estimate of the shingle Jaccard similarity."""
    return float(np.mean(sig_a == sig_b))


def exact_keys(texts: Iterable[str]) -> np.ndarray:
    """Exact-dedup keys: 64-bit hash of each text with whitespace collapsed."""
    return np.fromiter((text_fingerprint(t) for t in texts), dtype=np.uint64)


def group_edges(bands: np.ndarray, keys: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Edges (first, other) between rows sharing (band, key); `first` is the group's min order.

    Works on any subset of rows that holds every row of its groups, i.e. one hash partition.
    """
    if len(orders) == 0:
        return np.empty((0, 2), dtype=np.int64)
    idx = np.lexsort((orders, keys, bands))
    b, k, o = bands[idx], keys[idx], orders[idx]
    new_group = np.ones(len(o), dtype=bool)
    new_group[1:] = (b[1:] != b[:-1]) | (k[1:] != k[:-1])
    group_id = np.cumsum(new_group) - 1
    first = o[new_group][group_id]  # sorted by order inside a group, so the first is the min
    mask = ~new_group & (o != first)
    return np.stack([first[mask], o[mask]], axis=1).astype(np.int64)


def partition_of(keys: np.ndarray, partitions: int) -> np.ndarray:
    """Hash partition of each key (keys are already uniform hashes)."""
    return (keys % np.uint64(partitions)).astype(np.int64)


class UnionFind:
    """Sparse union-find over order keys; a set's root is always its smallest member."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent.get(x, x)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo
            self.parent.setdefault(lo, lo)


def clusters_to_remove(edges: np.ndarray) -> dict[int, int]:
    """Close edges transitively; map every non-kept member to the kept member of its cluster."""
    uf = UnionFind()
    for a, b in np.asarray(edges, dtype=np.int64).reshape(-1, 2).tolist():
        uf.union(a, b)
    return {x: root for x in uf.parent if (root := uf.find(x)) != x}


def near_duplicates(
    texts: list[str], orders: list[int] | None = None, bands: int = 14, rows: int = 8,
    ngram: int = 5, seed: int = 0,
) -> dict[int, int]:
    """In-memory reference: removed order -> kept order for a list of texts (tests, bench)."""
    orders_arr = np.arange(len(texts), dtype=np.int64) if orders is None else np.asarray(orders, dtype=np.int64)
    hasher = MinHasher(bands, rows, ngram, seed)
    keys = hasher.band_keys(hasher.signatures(texts))
    band_idx = np.broadcast_to(np.arange(bands, dtype=np.int64), keys.shape).ravel()
    row_orders = np.repeat(orders_arr, bands)
    return clusters_to_remove(group_edges(band_idx, keys.ravel(), row_orders))
