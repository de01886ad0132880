"""Near-duplicate removal: chatforge's numpy MinHash LSH against datasketch's MinHashLSH.

Both start from the same texts and the same shingles (word 5-grams of the canonical form),
use 14 bands x 8 rows (112 permutations) and end with the documents to remove (union-find,
smallest index kept), so the comparison is end to end at equal LSH parameters. Recall and
precision are measured against planted near duplicates (copies of a document with 1-3 words
changed, Jaccard about 0.85-0.95). Datasketch is used the fast way it documents
(`MinHash.bulk`, an insertion session). Each side runs `--repeats` times, interleaved; the
mean and spread are reported. Results go to bench/results/bench_dedup.json.

    python bench/bench_dedup.py            # 20k documents
    python bench/bench_dedup.py --quick    # 2k documents, one repeat
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

from chatforge.data.dedup import clusters_to_remove, near_duplicates
from chatforge.data.normalize import canonical_bytes

RESULTS = Path(__file__).parent / "results" / "bench_dedup.json"
BANDS, ROWS, NGRAM = 14, 8, 5


def make_corpus(n_docs: int, dup_share: float, seed: int) -> tuple[list[str], set[int]]:
    """Random Zipf-vocabulary documents; the last `dup_share` are edited copies of earlier ones."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(20_000)]
    weights = [1 / (r + 1) for r in range(len(vocab))]
    n_dups = int(n_docs * dup_share)
    docs = [" ".join(rng.choices(vocab, weights, k=rng.randint(120, 400))) for _ in range(n_docs - n_dups)]
    copies = set()
    for _ in range(n_dups):
        words = rng.choice(docs[: n_docs - n_dups]).split()
        for _ in range(rng.randint(1, 3)):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        copies.add(len(docs))
        docs.append(" ".join(words))
    return docs, copies


def run_ours(docs: list[str], seed: int) -> set[int]:
    return set(near_duplicates(docs, bands=BANDS, rows=ROWS, ngram=NGRAM, seed=seed))


def run_datasketch(docs: list[str], seed: int) -> set[int]:
    from datasketch import MinHash, MinHashLSH

    shingles = []
    for text in docs:  # the same canonical form, through its fast path
        w = canonical_bytes(text).split()
        n = min(NGRAM, max(1, len(w)))
        shingles.append({b" ".join(w[i : i + n]) for i in range(len(w) - n + 1)})
    hashes = MinHash.bulk(shingles, num_perm=BANDS * ROWS, seed=seed)
    lsh = MinHashLSH(num_perm=BANDS * ROWS, params=(BANDS, ROWS))
    with lsh.insertion_session() as session:
        for i, m in enumerate(hashes):
            session.insert(i, m)
    edges = [(min(i, j), max(i, j)) for i, m in enumerate(hashes) for j in lsh.query(m) if j != i]
    return set(clusters_to_remove(np.array(edges, dtype=np.int64).reshape(-1, 2)))


def score(removed: set[int], truth: set[int]) -> dict[str, float]:
    hit = len(removed & truth)
    return {"precision": hit / len(removed) if removed else 1.0, "recall": hit / len(truth) if truth else 1.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dup-share", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="2k documents, one repeat")
    args = ap.parse_args()
    if args.quick:
        args.docs, args.repeats = 2000, 1
    docs, truth = make_corpus(args.docs, args.dup_share, args.seed)
    times: dict[str, list[float]] = {"chatforge": [], "datasketch": []}
    scores = {}
    for _ in range(args.repeats):
        for name, fn in (("chatforge", run_ours), ("datasketch", run_datasketch)):
            start = time.perf_counter()
            removed = fn(docs, args.seed)
            times[name].append(time.perf_counter() - start)
            scores[name] = score(removed, truth)
    result = {"docs": len(docs), "planted": len(truth), "bands": BANDS, "rows": ROWS, "repeats": args.repeats}
    for name, ts in times.items():
        result[name] = {
            "seconds_mean": statistics.mean(ts),
            "seconds_stdev": statistics.stdev(ts) if len(ts) > 1 else 0.0,
            "docs_per_s": len(docs) / statistics.mean(ts),
            **scores[name],
        }
    ratios = [d / c for c, d in zip(times["chatforge"], times["datasketch"], strict=True)]
    result["speedup_mean"] = statistics.mean(ratios)
    result["speedup_min"] = min(ratios)
    print(json.dumps(result, indent=2))
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
