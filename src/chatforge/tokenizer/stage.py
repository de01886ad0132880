"""Pipeline stages `tokenizer` (train BPE, measure it) and `tokens` (encode documents into shards).

Both read the same documents: those of `pretrain.inputs` when it is set (chatforge.tokenizer.inputs;
it names the whole pre-training corpus, so the data stage's documents and the built-in corpus
are then left out: add runs/NAME/corpus/pretrain.jsonl to the list to keep them), else the
cleaned documents of the data stage (run/data/documents-*.parquet, when that stage ran)
followed by the built-in corpus's pre-training text (run/corpus/pretrain.jsonl); at most
`pretrain.max_chars` characters of them. The tokenizer never trains on validation documents: it uses the
same seeded content-hash split as the shards, so validation bits per byte are not flattered by
a vocabulary fitted to the validation text, and its statistics are measured on that held-out text.

`pretrain.tokenizer` names a tokenizer to use instead of training one; a token-shard input is
checked against it and used in place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from chatforge.config import Config
from chatforge.errors import RunDirError
from chatforge.runs import RunDir, atomic_write_json
from chatforge.stage import StageResult
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer, train_bpe
from chatforge.tokenizer.inputs import (
    InputDocuments,
    builtin_readers,
    given_tokenizer,
    link_shards,
    resolve,
)
from chatforge.tokenizer.shards import SPLITS, split_of_doc, write_shards

# Held-out text measured for stats.json: enough for stable ratios, quick to encode.
STATS_MAX_CHARS = 4_000_000
# The config keys that choose the documents: both stages' cache keys hash them.
INPUT_KEYS = ("pretrain.inputs", "pretrain.max_chars", "pretrain.tokenizer")


def input_files(cfg: Config) -> list[str]:
    """The local files `pretrain.inputs` reads, checked at once (for the stages' cache keys)."""
    return [str(f) for f in resolve(cfg.pretrain).files]


def documents(cfg: Config, run: RunDir) -> InputDocuments:
    """The documents of both stages, in a fixed order (see the module docstring)."""
    readers = resolve(cfg.pretrain).readers if cfg.pretrain.inputs else builtin_readers(run.root)
    if not readers:
        raise RunDirError(
            f"{run.root}: neither data/documents-*.parquet nor corpus/pretrain.jsonl; run the corpus stage"
        )
    return InputDocuments(readers, cfg.pretrain.max_chars)


def _skipped(docs: InputDocuments) -> str:
    reasons = docs.skipped
    if not reasons:
        return ""
    return "; skipped: " + ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items()))


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


def _save(tok: Tokenizer, run: RunDir) -> Path:
    """Save the run's tokenizer, first dropping one an earlier run left (load_tokenizer would
    read a stale tokenizer.json before a new .tiktoken file)."""
    for old in [run.tokenizer / "tokenizer.json", *run.tokenizer.glob("*.tiktoken")]:
        old.unlink(missing_ok=True)
    return tok.save(run.tokenizer)


def _train_texts(docs: InputDocuments, cfg: Config, heldout: list[dict[str, Any]],
                 counts: dict[str, int]) -> Iterator[str]:
    """The training documents' texts; the first STATS_MAX_CHARS of held-out ones go to `heldout`."""
    for doc in docs:
        if split_of_doc(doc, cfg.pretrain.val_fraction, cfg.run.seed) == "val":
            if counts["heldout_chars"] < STATS_MAX_CHARS:
                heldout.append(doc)
                counts["heldout_chars"] += len(doc["text"])
            continue
        counts["train_docs"] += 1
        counts["train_chars"] += len(doc["text"])
        yield doc["text"]


def run_train(cfg: Config, run: RunDir) -> StageResult:
    """The run's tokenizer, trained on the training documents or `pretrain.tokenizer` as given;
    write it and stats.json (bytes per token on held-out documents)."""
    given = given_tokenizer(cfg.pretrain)
    if given is not None and resolve(cfg.pretrain).shards is not None:
        path = _save(given, run)  # token shards hold no text to measure it on
        atomic_write_json(run.tokenizer / "stats.json", {"vocab_size": given.vocab_size,
                                                         "tokenizer": cfg.pretrain.tokenizer})
        return StageResult(
            outputs={"tokenizer": str(path.relative_to(run.root)), "stats": "tokenizer/stats.json"},
            metrics={"vocab_size": given.vocab_size}, summary=f"vocab {given.vocab_size}, from {cfg.pretrain.tokenizer}",
        )
    docs = documents(cfg, run)
    heldout: list[dict[str, Any]] = []
    counts = {"train_docs": 0, "train_chars": 0, "heldout_chars": 0}
    texts = _train_texts(docs, cfg, heldout, counts)
    if given is None:
        Console(stderr=True).print(f"training BPE to {cfg.tokenizer.vocab_size} ids", highlight=False)
        tok = train_bpe(texts, cfg.tokenizer.vocab_size, min_frequency=cfg.tokenizer.min_frequency,
                        max_chars=cfg.tokenizer.max_train_chars)
        if counts["train_docs"] == 0:
            raise RunDirError(f"{run.root}: no training documents for the tokenizer")
        # train_chars counts what the generator handed over; max_chars may have cut the tail.
        counts["train_chars"] = min(counts["train_chars"], cfg.tokenizer.max_train_chars)
        trained = {"target_vocab_size": cfg.tokenizer.vocab_size, "train_docs": counts["train_docs"],
                   "train_chars": counts["train_chars"]}
    else:
        tok, trained = given, {"tokenizer": cfg.pretrain.tokenizer}
        for _ in texts:  # read only as far as the held-out sample needs
            if counts["heldout_chars"] >= STATS_MAX_CHARS:
                break
    path = _save(tok, run)
    stats = {"vocab_size": tok.vocab_size, **trained, "heldout": bytes_per_token(tok, heldout),
             "skipped": dict(docs.skipped)}
    atomic_write_json(run.tokenizer / "stats.json", stats)
    bpt = stats["heldout"]["bytes_per_token"]
    langs = ", ".join(
        f"{k} {v['bytes_per_token']}" for k, v in stats["heldout"]["by_lang"].items()
    )
    return StageResult(
        outputs={"tokenizer": str(path.relative_to(run.root)), "stats": "tokenizer/stats.json"},
        metrics={"vocab_size": tok.vocab_size, "bytes_per_token": bpt, "skipped": docs.skipped.total(),
                 **{k: v for k, v in trained.items() if k.startswith("train_")}},
        summary=f"vocab {tok.vocab_size}, held-out bytes/token {bpt} ({langs}){_skipped(docs)}",
    )


def run_shards(cfg: Config, run: RunDir) -> StageResult:
    """Encode every document into run/tokens/{train,val}.bin with the run's tokenizer, or point
    run/tokens/index.json at a token-shard input after checking it against that tokenizer."""
    tok = load_tokenizer(run.tokenizer)
    shards = resolve(cfg.pretrain).shards
    if shards is not None:
        index, skipped, note = link_shards(shards, tok, run.tokens), 0, f", the shards in {shards} in place"
        hint = f"write the shards in {shards} with a validation split"
        files = {s: index["splits"][s]["file"] for s in SPLITS}
    else:
        docs = documents(cfg, run)
        index = write_shards(docs, tok, run.tokens, cfg.pretrain.val_fraction, cfg.run.seed, show_progress=True)
        skipped, note = docs.skipped.total(), _skipped(docs)
        hint = "add documents or change pretrain.val_fraction"
        files = {s: f"tokens/{s}.bin" for s in SPLITS}
    splits = index["splits"]
    for name, split in splits.items():
        if split["docs"] == 0:
            raise RunDirError(
                f"{run.tokens}/index.json: the {name} split has no documents "
                f"({splits['train']['docs'] + splits['val']['docs']} in all, "
                f"val_fraction={index['val_fraction']}); {hint}"
            )
    metrics = {
        f"{name}_{key}": split[key] for name, split in splits.items() for key in ("tokens", "docs", "bytes")
    }
    return StageResult(
        outputs={"index": "tokens/index.json", **files},
        metrics={"dtype": index["dtype"], **metrics, "skipped": skipped},
        summary=(
            f"{splits['train']['tokens']:,} train / {splits['val']['tokens']:,} val tokens "
            f"({index['dtype']}), {splits['train']['docs']} / {splits['val']['docs']} docs{note}"
        ),
    )
