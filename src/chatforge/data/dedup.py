"""Exact and near-duplicate detection: MinHash LSH in numpy, grouping, transitive clusters.

Near duplicates follow FineWeb: word 5-gram shingles of the canonical text (lowercase, no
punctuation, digits folded, accents removed), 32-bit MinHash with bands x rows hashes
(14 x 8 by default, estimated Jaccard threshold about 0.75), documents sharing any band bucket
are linked, links are closed transitively with union-find and the document with the smallest
order key in each cluster is kept. Everything here works on arrays, so an executor can compute
signatures per batch, shuffle (band, key, order) rows by key to partitions and group each
partition on its own: no process ever holds all buckets.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from chatforge.data.normalize import mix64, text_fingerprint, text_ngrams

_MAX_CHUNK_SHINGLES = 1 << 15  # bounds the (hashes x shingles) temporary to ~30 MB
_CHUNK_CHARS = 1 << 20  # characters shingled per numpy pass


class MinHasher:
    """MinHash signatures and LSH band keys with `bands * rows` seeded 32-bit permutations."""

    def __init__(self, bands: int = 14, rows: int = 8, ngram: int = 5, seed: int = 0):
        if bands < 1 or rows < 1 or ngram < 1:
            raise ValueError(f"bands, rows and ngram must be >= 1, got {bands}, {rows}, {ngram}")
        self.bands, self.rows, self.ngram = bands, rows, ngram
        rng = np.random.default_rng(seed)
        n = bands * rows
        # h -> a*h + b (mod 2**32) with odd a is a bijection of the 32-bit space. Signatures
        # are 32-bit (as datasketch's): half the memory traffic of 64-bit, and a spurious
        # equal minimum has odds of about shingles / 2**32.
        self.a = rng.integers(0, 2**31, size=n, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        self.b = rng.integers(0, 2**32, size=n, dtype=np.uint32)

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def threshold(self) -> float:
        """Jaccard similarity at which a pair is caught with probability about one half."""
        return (1 / self.bands) ** (1 / self.rows)

    def shingles(self, texts: list[str]) -> list[np.ndarray]:
        """Per text, 32-bit hashes of its word n-grams (the top half of the 64-bit ones).

        Repeats are kept: they cannot change a minimum. A text shorter than n words is one
        shingle; an empty text is one fixed shingle.
        """
        return [
            (g >> np.uint64(32)).astype(np.uint32) if len(g) else np.zeros(1, dtype=np.uint32)
            for g in text_ngrams(texts, self.ngram)
        ]

    def signatures(self, texts: Iterable[str]) -> np.ndarray:
        """(n_docs, bands*rows) uint32 signatures; each a vectorised min over (hashes x shingles).

        Texts are shingled in chunks of about a million characters (one numpy pass each);
        the (hashes, shingles) layout makes each document's min a contiguous reduction.
        """
        rows = []
        a, b = self.a[:, None], self.b[:, None]
        with np.errstate(over="ignore"):
            for chunk in _chunks(texts, _CHUNK_CHARS):
                for sh in self.shingles(chunk):
                    sig = None
                    for start in range(0, len(sh), _MAX_CHUNK_SHINGLES):  # bounds the temporary
                        # (a*h + b) mod 2**32 with odd a: a permutation whose high bits, which
                        # decide the minimum, are well mixed (multiply-shift hashing).
                        m = (a * sh[None, start : start + _MAX_CHUNK_SHINGLES] + b).min(axis=1)
                        sig = m if sig is None else np.minimum(sig, m)
                    rows.append(sig)
        return np.stack(rows) if rows else np.empty((0, self.num_perm), dtype=np.uint32)

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(n_docs, bands) uint64: one hash of each band's `rows` values."""
        n = len(signatures)
        sig = signatures.reshape(n, self.bands, self.rows).astype(np.uint64)
        with np.errstate(over="ignore"):
            acc = np.zeros((n, self.bands), dtype=np.uint64)
            for r in range(self.rows):
                acc = acc * np.uint64(0x9E3779B97F4A7C15) + sig[:, :, r]
        return mix64(acc)


def _chunks(texts: Iterable[str], max_chars: int) -> Iterable[list[str]]:
    """Consecutive lists of texts holding about `max_chars` characters (at least one text)."""
    chunk: list[str] = []
    size = 0
    for text in texts:
        chunk.append(text)
        size += len(text)
        if size >= max_chars:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


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
