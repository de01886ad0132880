"""Decontamination: find documents that share a long n-gram with an evaluation item.

Every evaluation item (all its text fields joined, so n-grams across the question/answer
boundary count, as in datatrove) is cut into word n-grams (13 by default, GPT-3 and
lm-evaluation-harness) of the canonical form used by dedup. Items shorter than n words but at
least `min_words` long are indexed whole, so short questions are not silently ignored. The
index is a sorted uint64 array, small enough to ship to every worker; a match names the
benchmark and item, so the funnel says which items leaked where, not only how many.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from chatforge.data.normalize import ngram_hashes, word_hashes
from chatforge.errors import InputError

_ID_FIELDS = ("id", "task_id", "question_id", "idx", "uid")
# Fields that hold an item's text in the common benchmark formats (MMLU, GSM8K, HumanEval,
# TruthfulQA, ...); when a record has any of them, its other fields (language codes, relation
# names, metadata) are left out so that they cannot break an n-gram of the text.
_TEXT_FIELDS = {
    "question", "prompt", "input", "context", "passage", "text", "choices", "options", "answer",
    "answers", "target", "canonical_solution", "best_answer", "correct_answers", "incorrect_answers",
    "mc0_targets", "mc1_targets", "mc2_targets", "choice0", "choice1", "choice2", "choice3",
    "a", "b", "c", "d", 0, 1, 2, 3, 4, 5,
}
_GENERIC_STEMS = {"test", "train", "validation", "val", "dev", "data", "eval"}


@dataclass(frozen=True)
class Match:
    benchmark: str
    item: str
    coverage: float = 1.0  # share of the item's n-grams found in the document


class ContaminationIndex:
    """N-gram hashes of evaluation items -> the items they come from."""

    def __init__(self, n: int = 13, min_words: int = 8):
        self.n, self.min_words = n, min_words
        self.items: list[Match] = []
        self._sizes: list[int] = []  # distinct n-grams per item
        self._hashes: list[np.ndarray] = []
        self._owners: list[np.ndarray] = []
        self.sizes: set[int] = set()
        self.skipped_short = 0
        self._frozen: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def add(self, benchmark: str, item: str, text: str) -> None:
        """Index one evaluation item; items under `min_words` words are counted and skipped."""
        words = word_hashes([text])[0]
        if len(words) < self.min_words:
            self.skipped_short += 1
            return
        size = min(self.n, len(words))
        grams = np.unique(ngram_hashes(words, size))
        self.sizes.add(size)
        self._hashes.append(grams)
        self._owners.append(np.full(len(grams), len(self.items), dtype=np.int64))
        self.items.append(Match(benchmark, item))
        self._sizes.append(len(grams))
        self._frozen = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._frozen is None:
            hashes = np.concatenate(self._hashes) if self._hashes else np.empty(0, np.uint64)
            owners = np.concatenate(self._owners) if self._owners else np.empty(0, np.int64)
            order = np.argsort(hashes, kind="stable")
            self._frozen = (hashes[order], owners[order])
        return self._frozen

    def __getstate__(self) -> dict[str, Any]:
        # Ship the sorted arrays to workers, not the per-item lists.
        state = dict(self.__dict__)
        state["_frozen"] = self._arrays()
        state["_hashes"], state["_owners"] = [], []
        return state

    def find(self, text: str) -> list[Match]:
        """Evaluation items sharing an indexed n-gram with `text`, in index order.

        Each match carries its coverage: 1.0 when the whole item is quoted, a small share
        when only a phrase it has in common with the document was found.
        """
        hashes, owners = self._arrays()
        if not len(hashes):
            return []
        words = word_hashes([text])[0]
        hits: Counter[int] = Counter()
        for size in sorted(self.sizes):
            grams = np.unique(ngram_hashes(words, size))
            if not len(grams):
                continue
            lo = np.searchsorted(hashes, grams, side="left")
            hi = np.searchsorted(hashes, grams, side="right")
            for start, stop in zip(lo[hi > lo].tolist(), hi[hi > lo].tolist(), strict=True):
                hits.update(owners[start:stop].tolist())
        return [
            dataclasses.replace(self.items[i], coverage=round(hits[i] / self._sizes[i], 4))
            for i in sorted(hits)
        ]


def benchmark_name(path: Path) -> str:
    """Name of a benchmark file: its stem, with the folder when the stem is generic."""
    stem = path.name.split(".")[0]
    return f"{path.parent.name}/{stem}" if stem.lower() in _GENERIC_STEMS else stem


def _records(path: Path) -> list[Any]:
    """The records of an evaluation file (gzip/bzip2 allowed), by its format."""
    from chatforge.data.sources.base import open_binary, strip_compression_suffix

    suffix = Path(strip_compression_suffix(path.name)).suffix.lower()
    if suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if suffix not in (".jsonl", ".json", ".csv"):
        raise InputError(f"{path}: unsupported decontamination set format (jsonl, json, csv, parquet)")
    with open_binary(path) as raw:
        text = raw.read().decode("utf-8-sig")
    if suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if suffix == ".json":
        data = json.loads(text)
        return data if isinstance(data, list) else list(data.values()) if isinstance(data, dict) else []
    rows = list(csv.reader(io.StringIO(text, newline="")))
    # MMLU's HF layout and TruthfulQA have a header row, the original hendrycks files do not.
    if rows and csv.Sniffer().has_header(text[:4096]):
        return [dict(zip(rows[0], row, strict=False)) for row in rows[1:]]
    return [dict(enumerate(row)) for row in rows]


def iter_eval_items(path: Path) -> list[tuple[str, str]]:
    """(item id, text) of every record of a JSONL, JSON, CSV or Parquet evaluation file."""
    if not path.is_file():
        raise InputError(f"{path}: decontamination set not found")
    try:
        records = _records(path)
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot parse decontamination set: {exc}") from None
    out = []
    for i, record in enumerate(records):
        if isinstance(record, str):
            out.append((str(i), record))
            continue
        if not isinstance(record, dict):
            continue
        item_id = next((str(record[k]) for k in _ID_FIELDS if k in record), str(i))
        fields = [k for k in record if _field_name(k) in _TEXT_FIELDS] or list(record)
        text = "\n".join(_strings({k: record[k] for k in fields}))
        out.append((item_id, text))
    return out


def _field_name(key: Any) -> Any:
    return key.strip().lower().replace(" ", "_") if isinstance(key, str) else key


def _strings(value: Any) -> list[str]:
    """All string leaves of a record (question, choices, answers), in field order.

    A mapping from answer texts to scores (TruthfulQA's mc targets) contributes its keys.
    """
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        if value and all(isinstance(v, int | float) for v in value.values()):
            return [k for k in value if isinstance(k, str)]
        return [s for k, v in value.items() if k not in _ID_FIELDS for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def build_index(paths: list[str | Path], n: int = 13, min_words: int = 8) -> ContaminationIndex:
    """Index every item of the given evaluation files."""
    index = ContaminationIndex(n, min_words)
    for p in paths:
        path = Path(p)
        name = benchmark_name(path)
        for item_id, text in iter_eval_items(path):
            index.add(name, item_id, text)
    return index
