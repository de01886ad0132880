"""Token shards: documents encoded into flat train/val token files that training memory-maps.

Layout of a shard directory:
- `train.bin`, `val.bin`: raw token ids (uint16 when the vocabulary fits, else uint32), every
  document preceded by the bos token (nanochat style), so a window that crosses a document
  boundary sees where one ends and the next begins;
- `index.json`: dtype, vocabulary size, and per split the counts of tokens, documents and
  UTF-8 bytes of text (bits per byte = loss in bits * tokens / bytes), also by language/source.

The split is by document and by content: a seeded hash of the text decides, so the split does
not depend on document order and exact duplicates always land in the same split (a duplicate
can never put training text into validation).

A document with `messages` (a conversation) is encoded in the chat template, special tokens
included, and always trains: pre-training on conversations (nanochat's mid-training) teaches
the chat format while the knowledge is being learnt. Validation stays plain text, whose bytes
the bits-per-byte figure divides by.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from chatforge.errors import RunDirError
from chatforge.runs import atomic_path, atomic_write_json, read_json
from chatforge.tokenizer.bpe import Tokenizer
from chatforge.tokenizer.chat import render_conversation

SPLITS = ("train", "val")
INDEX_VERSION = 1
_BATCH_CHARS = 4 << 20  # characters encoded per encode_batch call


def doc_unit(text: str, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, text): the document's place in the split."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=seed.to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest(), "little") / 2**64


def is_val(text: str, val_fraction: float, seed: int) -> bool:
    """Whether a document belongs to the validation split (see the module docstring)."""
    return doc_unit(text, seed) < val_fraction


def split_of_doc(doc: dict[str, Any], val_fraction: float, seed: int) -> str:
    """"train" or "val" for a document: conversations always train, text by its hash."""
    if doc.get("messages"):
        return "train"
    return "val" if is_val(doc["text"], val_fraction, seed) else "train"


def encode_docs(tokenizer: Tokenizer, docs: list[dict[str, Any]]) -> list[list[int]]:
    """Ids of each document, bos first: text encoded plainly (a "<|bos|>" in it stays text),
    a conversation rendered in the chat template."""
    texts = tokenizer.encode_batch([d["text"] for d in docs if not d.get("messages")])
    plain = iter(texts)
    return [render_conversation(tokenizer, d["messages"])[0] if d.get("messages")
            else [tokenizer.bos_id, *next(plain)] for d in docs]


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


class _SplitStats:
    def __init__(self) -> None:
        self.tokens = self.docs = self.bytes = 0
        self.by: dict[str, dict[str, dict[str, int]]] = {
            "lang": defaultdict(lambda: {"docs": 0, "tokens": 0, "bytes": 0}),
            "source": defaultdict(lambda: {"docs": 0, "tokens": 0, "bytes": 0}),
        }

    def add(self, doc: dict[str, Any], n_tokens: int, n_bytes: int) -> None:
        self.tokens += n_tokens
        self.docs += 1
        self.bytes += n_bytes
        for key, table in self.by.items():
            row = table[str(doc.get(key) or "unknown")]
            row["docs"] += 1
            row["tokens"] += n_tokens
            row["bytes"] += n_bytes

    def to_json(self, file: str) -> dict[str, Any]:
        return {
            "file": file, "tokens": self.tokens, "docs": self.docs, "bytes": self.bytes,
            "by_lang": dict(sorted(self.by["lang"].items())),
            "by_source": dict(sorted(self.by["source"].items())),
        }


def _batches(docs: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    chars = 0
    for doc in docs:
        batch.append(doc)
        chars += len(doc["text"])
        if chars >= _BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def write_shards(
    docs: Iterable[dict[str, Any]],
    tokenizer: Tokenizer,
    out_dir: str | Path,
    val_fraction: float,
    seed: int,
    show_progress: bool = False,
    split_of: Callable[[dict[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Encode documents ({"text", optional "lang", "source", "messages"}) into train/val shards;
    return the index.

    `split_of` overrides the hash split, e.g. for one file cut into a head and a held-out tail.

    Files appear atomically; index.json is written last, so a directory whose index exists
    holds complete shards.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction}: must be in [0, 1)")
    out_dir = Path(out_dir)
    dtype = token_dtype(tokenizer.vocab_size)
    stats = {s: _SplitStats() for s in SPLITS}
    progress = Progress(
        TextColumn("encoding"), BarColumn(), TextColumn("{task.fields[docs]} docs"),
        TextColumn("{task.fields[tokens]:,} tokens"), TimeElapsedColumn(),
        console=Console(stderr=True), disable=not show_progress,  # stdout is for results
    )
    with ExitStack() as stack:
        stack.enter_context(progress)
        task = progress.add_task("encode", total=None, docs=0, tokens=0)
        paths = {s: stack.enter_context(atomic_path(out_dir / f"{s}.bin")) for s in SPLITS}
        files = {s: stack.enter_context(open(paths[s], "wb")) for s in SPLITS}
        for batch in _batches(docs):
            parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
            for doc, ids in zip(batch, encode_docs(tokenizer, batch), strict=True):
                if split_of is not None:
                    split = split_of(doc)
                    if split not in SPLITS:
                        raise ValueError(f"split_of returned {split!r}; expected one of {SPLITS}")
                else:
                    split = split_of_doc(doc, val_fraction, seed)
                parts[split].append(np.array(ids, dtype=dtype))
                stats[split].add(doc, len(ids), len(doc["text"].encode("utf-8")))
            for split, arrays in parts.items():
                if arrays:
                    files[split].write(np.concatenate(arrays).tobytes())
            progress.update(
                task, docs=sum(s.docs for s in stats.values()),
                tokens=sum(s.tokens for s in stats.values()),
            )
    index = {
        "version": INDEX_VERSION,
        "dtype": dtype.name,
        "vocab_size": tokenizer.vocab_size,
        "bos_id": tokenizer.bos_id,
        "val_fraction": val_fraction,
        "seed": seed,
        "splits": {s: stats[s].to_json(f"{s}.bin") for s in SPLITS},
    }
    atomic_write_json(out_dir / "index.json", index)
    return index


class TokenShards:
    """One split of a shard directory, memory-mapped; random training windows, ordered val batches."""

    def __init__(self, directory: str | Path, split: str = "train"):
        self.directory = Path(directory)
        index_path = self.directory / "index.json"
        if not index_path.exists():
            raise RunDirError(f"{index_path}: missing; run the tokens stage (chatforge run --only tokens)")
        self.index = read_json(index_path)
        if split not in self.index["splits"]:
            raise RunDirError(f"{index_path}: no split {split!r} (has {sorted(self.index['splits'])})")
        meta = self.index["splits"][split]
        self.split = split
        self.dtype = np.dtype(self.index["dtype"])
        self.n_tokens: int = meta["tokens"]
        self.n_bytes: int = meta["bytes"]
        self.n_docs: int = meta["docs"]
        self.path = path = self.directory / meta["file"]
        size = path.stat().st_size if path.exists() else -1
        if size != self.n_tokens * self.dtype.itemsize:
            raise RunDirError(
                f"{path}: {size} bytes, index.json says {self.n_tokens} tokens of {self.dtype.name}; "
                "re-run the tokens stage"
            )
        # np.memmap cannot map an empty file; an empty split is a valid (if useless) state.
        self.tokens = (
            np.memmap(path, dtype=self.dtype, mode="r") if self.n_tokens else np.zeros(0, self.dtype)
        )

    @property
    def vocab_size(self) -> int:
        return int(self.index["vocab_size"])

    def _check_len(self, seq_len: int) -> None:
        if self.n_tokens < seq_len + 1:
            raise RunDirError(
                f"{self.path}: {self.n_tokens} tokens, fewer than "
                f"seq_len + 1 = {seq_len + 1}; use more data, a shorter seq_len or another val_fraction"
            )

    def _windows(self, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.stack([np.asarray(self.tokens[s : s + seq_len + 1]) for s in starts])
        rows_t = torch.from_numpy(rows.astype(np.int64))
        return rows_t[:, :-1], rows_t[:, 1:]

    def get_batch(
        self, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows: x[b] = tokens[s:s+T], y[b] = tokens[s+1:s+T+1], int64, on CPU.

        Starts are drawn from `generator` alone, so a saved generator state resumes the exact
        data order.
        """
        self._check_len(seq_len)
        high = self.n_tokens - seq_len  # last valid start is n - seq_len - 1
        starts = torch.randint(0, high, (batch_size,), generator=generator).numpy()
        return self._windows(starts, seq_len)

    def n_val_windows(self, seq_len: int) -> int:
        """How many non-overlapping windows of `seq_len` the split holds."""
        return max(0, (self.n_tokens - 1) // seq_len)

    def iter_val_batches(
        self, batch_size: int, seq_len: int, max_batches: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive non-overlapping windows from the start, the same on every call.

        The last batch may hold fewer rows; `max_batches=None` covers the whole split.
        """
        self._check_len(seq_len)
        n_windows = self.n_val_windows(seq_len)
        if max_batches is not None:
            n_windows = min(n_windows, max_batches * batch_size)
        for first in range(0, n_windows, batch_size):
            count = min(batch_size, n_windows - first)
            starts = (np.arange(first, first + count) * seq_len).astype(np.int64)
            yield self._windows(starts, seq_len)
