"""Pipeline stages `tokenizer` (train BPE, measure it) and `tokens` (encode documents into shards).

Both read the same documents: the cleaned documents of the data stage
(run/data/documents-*.parquet, when that stage ran) followed by the built-in corpus's
pre-training text (run/corpus/pretrain.jsonl). The tokenizer never trains on validation documents: it uses the
same seeded content-hash split as the shards, so validation bits per byte are not flattered by
a vocabulary fitted to the validation text, and its statistics are measured on that held-out text.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from rich.console import Console

from chatforge.config import Config
from chatforge.errors import InputError, RunDirError
from chatforge.runs import RunDir, atomic_write_json
from chatforge.stage import StageResult
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer, train_bpe
from chatforge.tokenizer.shards import is_val, write_shards

# Held-out text measured for stats.json: enough for stable ratios, quick to encode.
STATS_MAX_CHARS = 4_000_000


def _iter_parquet(path: Path) -> Iterator[dict[str, Any]]:
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    if "text" not in names:
        raise InputError(f"{path}: no 'text' column (columns: {sorted(names)})")
    columns = [c for c in ("text", "language", "source") if c in names]
    for batch in pf.iter_batches(batch_size=4096, columns=columns):
        cols = batch.to_pydict()
        for i, text in enumerate(cols["text"]):
            if text:
                yield {
                    "text": text,
                    "lang": cols["language"][i] if "language" in cols else None,
                    "source": cols["source"][i] if "source" in cols else "data",
                }


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                text = doc["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{path}:{lineno}: not a JSON object with a 'text' field") from None
            if text:
                yield {"text": text, "lang": doc.get("lang"), "source": doc.get("source", "corpus")}


def iter_documents(run: RunDir) -> Iterator[dict[str, Any]]:
    """Documents for the tokenizer and the shards, in a fixed order: data parquet, then corpus."""
    parquet = sorted(run.data.glob("documents-*.parquet"))
    corpus = run.corpus / "pretrain.jsonl"
    if not parquet and not corpus.exists():
        raise RunDirError(
            f"{run.root}: neither data/documents-*.parquet nor corpus/pretrain.jsonl; run the corpus stage"
        )
    for path in parquet:
        yield from _iter_parquet(path)
    if corpus.exists():
        yield from _iter_jsonl(corpus)


def bytes_per_token(tokenizer: Tokenizer, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """UTF-8 bytes per token over `docs`, in total and per language and per source."""
    encoded = tokenizer.encode_batch([d["text"] for d in docs])
    groups: dict[str, dict[str, dict[str, int]]] = {
        "lang": defaultdict(lambda: {"docs": 0, "bytes": 0, "tokens": 0}),
        "source": defaultdict(lambda: {"docs": 0, "bytes": 0, "tokens": 0}),
    }
    total = {"docs": 0, "bytes": 0, "tokens": 0}
    for doc, ids in zip(docs, encoded, strict=True):
        n_bytes = len(doc["text"].encode("utf-8"))
        rows = [total] + [groups[key][str(doc.get(key) or "unknown")] for key in groups]
        for row in rows:
            row["docs"] += 1
            row["bytes"] += n_bytes
            row["tokens"] += len(ids)

    def finish(row: dict[str, int]) -> dict[str, Any]:
        return {**row, "bytes_per_token": round(row["bytes"] / row["tokens"], 4) if row["tokens"] else None}

    return {
        **finish(total),
        "by_lang": {k: finish(v) for k, v in sorted(groups["lang"].items())},
        "by_source": {k: finish(v) for k, v in sorted(groups["source"].items())},
    }


def run_train(cfg: Config, run: RunDir) -> StageResult:
    """Train the run's tokenizer on the training documents; write tokenizer.json and stats.json."""
    val_fraction, seed = cfg.pretrain.val_fraction, cfg.run.seed
    heldout: list[dict[str, Any]] = []
    heldout_chars = 0
    counts = {"train_docs": 0, "train_chars": 0}

    def train_texts() -> Iterator[str]:
        nonlocal heldout_chars
        for doc in iter_documents(run):
            if is_val(doc["text"], val_fraction, seed):
                if heldout_chars < STATS_MAX_CHARS:
                    heldout.append(doc)
                    heldout_chars += len(doc["text"])
                continue
            counts["train_docs"] += 1
            counts["train_chars"] += len(doc["text"])
            yield doc["text"]

    Console(stderr=True).print(f"training BPE to {cfg.tokenizer.vocab_size} ids", highlight=False)
    tok = train_bpe(
        train_texts(), cfg.tokenizer.vocab_size, min_frequency=cfg.tokenizer.min_frequency,
        max_chars=cfg.tokenizer.max_train_chars,
    )
    if counts["train_docs"] == 0:
        raise RunDirError(f"{run.root}: no training documents for the tokenizer")
    path = tok.save(run.tokenizer)
    # train_chars counts what the generator handed over; max_chars may have cut the tail.
    counts["train_chars"] = min(counts["train_chars"], cfg.tokenizer.max_train_chars)
    stats = {
        "vocab_size": tok.vocab_size,
        "target_vocab_size": cfg.tokenizer.vocab_size,
        **counts,
        "heldout": bytes_per_token(tok, heldout),
    }
    atomic_write_json(run.tokenizer / "stats.json", stats)
    bpt = stats["heldout"]["bytes_per_token"]
    langs = ", ".join(
        f"{k} {v['bytes_per_token']}" for k, v in stats["heldout"]["by_lang"].items()
    )
    return StageResult(
        outputs={"tokenizer": str(path.relative_to(run.root)), "stats": "tokenizer/stats.json"},
        metrics={"vocab_size": tok.vocab_size, "bytes_per_token": bpt, **counts},
        summary=f"vocab {tok.vocab_size}, held-out bytes/token {bpt} ({langs})",
    )


def run_shards(cfg: Config, run: RunDir) -> StageResult:
    """Encode every document into run/tokens/{train,val}.bin with the run's tokenizer."""
    tok = load_tokenizer(run.tokenizer)
    index = write_shards(
        iter_documents(run), tok, run.tokens, cfg.pretrain.val_fraction, cfg.run.seed,
        show_progress=True,
    )
    splits = index["splits"]
    for name, split in splits.items():
        if split["docs"] == 0:
            raise RunDirError(
                f"{run.tokens}/index.json: the {name} split has no documents "
                f"({splits['train']['docs'] + splits['val']['docs']} in all, "
                f"val_fraction={cfg.pretrain.val_fraction}); add documents or change pretrain.val_fraction"
            )
    metrics = {
        f"{name}_{key}": split[key] for name, split in splits.items() for key in ("tokens", "docs", "bytes")
    }
    return StageResult(
        outputs={"index": "tokens/index.json", "train": "tokens/train.bin", "val": "tokens/val.bin"},
        metrics={"dtype": index["dtype"], **metrics},
        summary=(
            f"{splits['train']['tokens']:,} train / {splits['val']['tokens']:,} val tokens "
            f"({index['dtype']}), {splits['train']['docs']} / {splits['val']['docs']} docs"
        ),
    )
