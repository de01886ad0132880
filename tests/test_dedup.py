"""MinHash LSH, grouping and clustering: fast paths pinned to naive references."""

from __future__ import annotations

import random
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatforge.data.dedup import (
    MinHasher,
    UnionFind,
    clusters_to_remove,
    estimated_jaccard,
    exact_keys,
    group_edges,
    near_duplicates,
)
from chatforge.data.executor import LocalExecutor
from chatforge.data.normalize import canonical_words


def random_doc(rng: random.Random, n: int = 200) -> str:
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(3000)]
    return " ".join(rng.choices(vocab, k=n))


def shingle_jaccard(a: str, b: str, n: int = 5) -> float:
    grams = [{tuple(w[i : i + n]) for i in range(len(w) - n + 1)} for w in map(canonical_words, (a, b))]
    return len(grams[0] & grams[1]) / len(grams[0] | grams[1])


def edit(rng: random.Random, text: str, k: int) -> str:
    words = text.split()
    for _ in range(k):
        words[rng.randrange(len(words))] = "zzedit"
    return " ".join(words)


def test_signature_is_deterministic_and_normalised():
    h = MinHasher(seed=3)
    a = h.signatures(["The Café opened in 1953, near the river!"])
    b = h.signatures(["the cafe opened in 2071 near the RIVER"])  # case, accents, digits, punctuation
    assert a.shape == (1, 112) and a.dtype == np.uint32
    assert (a == b).all()
    assert (a == MinHasher(seed=3).signatures(["The Café opened in 1953, near the river!"])).all()
    assert not (a == MinHasher(seed=4).signatures(["The Café opened in 1953, near the river!"])).all()


def test_estimated_jaccard_tracks_true_jaccard():
    rng = random.Random(0)
    h = MinHasher(bands=32, rows=8)  # 256 hashes: standard error about 0.03
    for k in (1, 5, 15, 40):
        a = random_doc(rng)
        b = edit(rng, a, k)
        sig = h.signatures([a, b])
        assert abs(estimated_jaccard(sig[0], sig[1]) - shingle_jaccard(a, b)) < 0.1


def test_batched_signatures_equal_one_by_one():
    rng = random.Random(1)
    docs = [random_doc(rng, rng.randint(1, 400)) for _ in range(40)] + ["", "one", "two words"]
    h = MinHasher()
    batch = h.signatures(docs)
    single = np.stack([h.signatures([d])[0] for d in docs])
    assert (batch == single).all()


def test_lsh_catch_probability_follows_the_s_curve():
    """Pairs well above the ~0.72 threshold are caught, pairs well below are not."""
    rng = random.Random(2)
    h = MinHasher()
    caught = {"high": 0, "low": 0}
    for _ in range(40):
        a = random_doc(rng)
        for name, k in (("high", 2), ("low", 25)):
            keys = h.band_keys(h.signatures([a, edit(rng, a, k)]))
            caught[name] += bool((keys[0] == keys[1]).any())
    assert caught["high"] >= 38 and caught["low"] <= 2
    assert h.threshold() == pytest.approx((1 / 14) ** (1 / 8))


def naive_edges(bands, keys, orders) -> set[tuple[int, int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for b, k, o in zip(bands.tolist(), keys.tolist(), orders.tolist(), strict=True):
        groups.setdefault((b, k), []).append(o)
    return {(min(m), o) for m in groups.values() for o in m if o != min(m)}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5)), min_size=0, max_size=60), st.randoms())
def test_group_edges_matches_naive(rows, rnd):
    orders = np.array(rnd.sample(range(1000), len(rows)), dtype=np.int64)
    bands = np.array([r[0] for r in rows], dtype=np.int64)
    keys = np.array([r[1] for r in rows], dtype=np.uint64)
    edges = group_edges(bands, keys, orders)
    assert {tuple(e) for e in edges.tolist()} == naive_edges(bands, keys, orders)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=40))
def test_clusters_are_transitive_and_keep_the_smallest(edges):
    removed = clusters_to_remove(np.array(edges, dtype=np.int64).reshape(-1, 2))
    # Naive: connected components by repeated merging.
    comps: list[set[int]] = []
    for a, b in edges:
        hit = [c for c in comps if a in c or b in c]
        merged = {a, b}.union(*hit)
        comps = [c for c in comps if c not in hit] + [merged]
    expected = {x: min(c) for c in comps for x in c if x != min(c)}
    assert removed == expected


def test_union_find_chain():
    uf = UnionFind()
    for a, b in [(5, 9), (9, 2), (7, 8)]:
        uf.union(a, b)
    assert uf.find(5) == uf.find(9) == 2 and uf.find(8) == 7


def test_near_duplicates_planted():
    rng = random.Random(4)
    originals = [random_doc(rng, 250) for _ in range(300)]
    copies = [edit(rng, originals[i], rng.randint(1, 3)) for i in range(100)]
    removed = near_duplicates(originals + copies)
    assert removed == {300 + i: i for i in range(100)}


def test_exact_keys_ignore_whitespace_only():
    keys = exact_keys(["a  b\nc", "a b c", "a b c.", "A b c"])
    assert keys[0] == keys[1] and len(set(keys.tolist())) == 3


def test_partitioned_shuffle_equals_one_grouping(tmp_path):
    def rows(i: int) -> dict[str, np.ndarray]:
        n = 200
        r = np.random.default_rng(i)
        return {"band": r.integers(0, 4, n), "key": r.integers(0, 50, n).astype(np.uint64),
                "order": np.arange(n, dtype=np.int64) + 1000 * i}

    items = list(range(5))
    every = {k: np.concatenate([rows(i)[k] for i in items]) for k in ("band", "key", "order")}
    reference = naive_edges(every["band"], every["key"], every["order"])
    for partitions in (1, 3, 8):
        edges = LocalExecutor(workers=1).group_edges(rows, items, partitions, tmp_path / f"p{partitions}")
        assert {tuple(e) for e in edges.tolist()} == reference


@pytest.mark.parametrize("bands,rows", [(14, 8), (20, 13), (9, 13)])
def test_bands_and_rows_are_configurable(bands, rows):
    h = MinHasher(bands, rows)
    docs = [random_doc(random.Random(b), 100) for b in range(2)]
    keys = h.band_keys(h.signatures([docs[0], docs[1], docs[0]]))
    assert keys.shape == (3, bands)
    assert (keys[0] == keys[2]).all() and not (keys[0] == keys[1]).any()
