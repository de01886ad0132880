"""Tokenizer benchmark: our byte-level BPE against GPT-4's cl100k (tiktoken), same text, same run.

Reports, as ratios to cl100k measured in the same process:
- encode throughput (MB/s of UTF-8) with the parallel batch encoders, and with one call on the
  whole text; mean and spread over repeats; our model is also timed on the `tokenizers`
  library, the engine tiktoken replaced for encoding;
- compression (UTF-8 bytes per token) per language on the lingua language-id sentences and on
  held-out Turkish news (turkish-text), where our tokenizer is trained on English + Turkish
  text from ../shared/data that excludes every evaluation line.

    python bench/bench_tokenizer.py            # 32k vocab, 5 MB encode, 5 repeats
    python bench/bench_tokenizer.py --quick    # 4k vocab, 1 MB, 2 repeats: checks it runs
Results go to bench/results/tokenizer.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

from chatforge.runs import atomic_write_json
from chatforge.tokenizer.bpe import Tokenizer, iter_text_files, load_tokenizer, train_bpe

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TURKISH_NEWS = "turkish-text/cnn-turk-10k.txt"
NEWS_HELDOUT = 0.2  # last fifth of the news lines is evaluation text, never trained on


def training_text(data: Path, max_chars: int) -> list[str]:
    """English + Turkish training text, an equal share of `max_chars` from each source."""
    files = [data / "gutenberg" / f"pg{n}.txt" for n in (11, 1342, 1513)] + [
        data / "tinystories" / "tinystories_train_head.txt",
        data / "llamafactory-demo" / "wiki_demo.txt",
        data / "llamafactory-demo" / "c4_demo.jsonl",
        data / "turkish-text" / "Sentence-Boundary-Train.txt",
    ]
    sources = ["".join(iter_text_files([f])) for f in files if f.exists()]
    news = (data / TURKISH_NEWS).read_text(encoding="utf-8").splitlines(keepends=True)
    sources.append("".join(news[: int(len(news) * (1 - NEWS_HELDOUT))]))
    share = max_chars // len(sources)
    return [text[:share] for text in sources]


def eval_sets(data: Path) -> dict[str, list[str]]:
    """Evaluation lines per set: one per lingua language, plus held-out Turkish news."""
    sets = {
        f"lingua-{p.stem}": p.read_text(encoding="utf-8").splitlines()
        for p in sorted((data / "lingua-langid-sentences").glob("*.txt"))
    }
    news = (data / TURKISH_NEWS).read_text(encoding="utf-8").splitlines()
    sets["tr-news-heldout"] = news[int(len(news) * (1 - NEWS_HELDOUT)) :]
    return sets


def bytes_per_token(tok: Tokenizer, lines: list[str]) -> float:
    n_tokens = sum(map(len, tok.encode_batch(lines)))
    return sum(len(s.encode("utf-8")) for s in lines) / n_tokens


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm up: thread pools, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def throughput(
    batch_fn: Callable[[list[str]], object], single_fn: Callable[[str], object], docs: list[str], repeats: int
) -> dict[str, float]:
    mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    whole = "".join(docs)
    batch = timed(lambda: batch_fn(docs), repeats)
    single = timed(lambda: single_fn(whole), repeats)
    return {
        "batch_mb_s": mb / statistics.mean(batch),
        "batch_mb_s_std": statistics.pstdev([mb / t for t in batch]),
        "single_mb_s": mb / statistics.mean(single),
        "single_mb_s_std": statistics.pstdev([mb / t for t in single]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--vocab-size", type=int, default=0, help="our vocabulary (default 32768, quick 4096)")
    parser.add_argument("--train-mb", type=float, default=0, help="training characters, millions (default 8, quick 2)")
    parser.add_argument("--encode-mb", type=float, default=0, help="text encoded for speed (default 5, quick 1)")
    parser.add_argument("--repeats", type=int, default=0, help="timed repeats (default 5, quick 2)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tokenizer.json")
    args = parser.parse_args()
    vocab = args.vocab_size or (4096 if args.quick else 32768)
    train_chars = int((args.train_mb or (2 if args.quick else 8)) * 1e6)
    encode_bytes = int((args.encode_mb or (1 if args.quick else 5)) * 1e6)
    repeats = args.repeats or (2 if args.quick else 5)
    cl100k_path = args.data / "tokenizer-reference" / "cl100k_base.tiktoken"
    if not cl100k_path.exists():
        sys.exit(f"{cl100k_path}: missing; this benchmark needs ../shared/data")

    start = time.perf_counter()
    texts = training_text(args.data, train_chars)
    train_chars = sum(map(len, texts))  # sources shorter than their share give less
    ours = train_bpe(texts, vocab_size=vocab)
    train_s = time.perf_counter() - start
    ref = load_tokenizer(cl100k_path)
    print(f"trained {ours.vocab_size} ids on {train_chars / 1e6:.1f}M chars in {train_s:.1f}s", file=sys.stderr)

    sets = eval_sets(args.data)
    compression = {}
    for name, lines in sets.items():
        a, b = bytes_per_token(ours, lines), bytes_per_token(ref, lines)
        compression[name] = {"ours": round(a, 3), "cl100k": round(b, 3), "ratio": round(a / b, 3)}
        print(f"{name:18s} bytes/token ours {a:5.2f}  cl100k {b:5.2f}  ratio {a / b:4.2f}", file=sys.stderr)

    # Speed text: the evaluation lines grouped into documents of 20 lines (a few KB, like web
    # pages), repeated until the requested size.
    lines = [line + "\n" for group in sets.values() for line in group]
    pool = ["".join(lines[i : i + 20]) for i in range(0, len(lines), 20)]
    docs, size = [], 0
    while size < encode_bytes:
        doc = pool[len(docs) % len(pool)]
        docs.append(doc)
        size += len(doc.encode("utf-8"))
    # Our model encoded by the tokenizers library too: the engine we replaced with tiktoken.
    hf = HFTokenizer.from_str(ours.to_json())
    hf.encode_special_tokens = True
    speed = {
        "ours": throughput(ours.encode_batch, ours.encode, docs, repeats),
        "cl100k": throughput(ref.encode_batch, ref.encode, docs, repeats),
        "ours_via_tokenizers_lib": throughput(
            lambda d: hf.encode_batch_fast(d, add_special_tokens=False),
            lambda t: hf.encode(t, add_special_tokens=False), docs, repeats,
        ),
    }
    ratios = {k: speed["ours"][k] / speed["cl100k"][k] for k in ("batch_mb_s", "single_mb_s")}
    for name, row in speed.items():
        print(
            f"encode {size / 1e6:.1f} MB {name:24s} batch {row['batch_mb_s']:6.2f} ± {row['batch_mb_s_std']:.2f} MB/s"
            f"   single call {row['single_mb_s']:6.2f} ± {row['single_mb_s_std']:.2f} MB/s",
            file=sys.stderr,
        )
    print(f"ours / cl100k: batch {ratios['batch_mb_s']:.2f}x, single call {ratios['single_mb_s']:.2f}x", file=sys.stderr)
    result = {
        "config": {
            "quick": args.quick, "vocab_size": ours.vocab_size, "train_chars": train_chars,
            "encode_bytes": size, "repeats": repeats, "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "train_s": round(train_s, 2),
        "throughput": speed,
        "throughput_ratio_vs_cl100k": ratios,
        "bytes_per_token": compression,
    }
    atomic_write_json(args.out, result)
    print(json.dumps({"out": str(args.out), **ratios}))


if __name__ == "__main__":
    main()
