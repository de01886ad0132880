"""Answers remembered across stages: the same frozen model, asked the same prompt the same way,
answers the same, so the second time is a lookup.

A run evaluates its SFT model in the SFT stage, again as DPO's and PPO's reference and again in
the evaluation stage; the DPO and PPO checkpoints are scored by their own stage and by the
evaluation stage. Inside `remembered(path)`, `Engine.generate` looks each prompt up by a key
that fixes its answer: the model's weights and configuration, the tokenizer, the prompt's
tokens, the sampling settings (with the prompt's own seed when sampling), and the source of
the code that generates (engine, model, tools, chat template), so a code change forgets
everything. Only the missing prompts are generated, then stored. Batch mates never change
an answer's tokens (the engine's contract), so a remembered answer is the one generation would
give, up to float ties between batch shapes.

The store is one SQLite file per run (`runs/<name>/cache/answers.db`, WAL): several processes
may read and write it, `kill -9` loses at most the batch being written, and deleting the file
only costs time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

import torch

from chatforge.errors import RunDirError
from chatforge.tokenizer.bpe import Tokenizer

_ACTIVE: ContextVar[AnswerMemo | None] = ContextVar("answer_memo", default=None)
# The source files whose code decides a generated answer.
_GENERATING = ("engine.py", "model/gpt.py", "tools.py", "tokenizer/chat.py", "tokenizer/bpe.py")


@cache
def _code_digest() -> str:
    h = hashlib.sha256()
    for name in _GENERATING:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of the model's configuration and every parameter and buffer, bytes and dtype."""
    h = hashlib.sha256(repr(getattr(model, "cfg", None)).encode())
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{t.numel()}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class AnswerMemo:
    """Completions by key in one SQLite file; see the module docstring."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, completion TEXT NOT NULL)")
        except sqlite3.DatabaseError as exc:
            raise RunDirError(f"{self.path}: not an answer store ({exc}); delete it to start afresh") from None
        # id(model) -> (each tensor's in-place version counter, digest): hashing the weights
        # once per model rather than once per call, until they change.
        self._digests: dict[int, tuple[tuple[int, ...], str]] = {}

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def _model_digest(self, model: torch.nn.Module) -> str:
        versions = tuple(t._version for t in [*model.parameters(), *model.buffers()])
        seen = self._digests.get(id(model))
        if seen is None or seen[0] != versions:
            seen = (versions, weights_digest(model))
            self._digests[id(model)] = seen
        return seen[1]

    def keys(self, model: torch.nn.Module, tok: Tokenizer | None, prompts: Sequence[Sequence[int]],
             params: Any, stop_ids: set[int]) -> list[str]:
        """One key per prompt for `params` (the engine's SamplingParams); prompt i samples with
        seed `params.seed + i` (the engine's rule), so when sampling its index is in the key."""
        settings = json.dumps({
            "code": _code_digest(), "model": self._model_digest(model),
            "tokenizer": tok.digest() if tok is not None else None,
            "params": {**asdict(params), "stop_ids": sorted(stop_ids)},
        }, sort_keys=True)
        base = hashlib.sha256(settings.encode()).hexdigest()
        sampled = params.temperature > 0
        return [hashlib.sha256(f"{base}|{i if sampled else ''}|{','.join(map(str, p))}".encode()).hexdigest()
                for i, p in enumerate(prompts)]

    def get(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored completions (as the fields of the engine's Completion) of those keys."""
        found: dict[str, dict[str, Any]] = {}
        with self._connect() as db:
            for start in range(0, len(keys), 500):  # SQLite's bound on query parameters
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                for key, blob in db.execute(f"SELECT key, completion FROM answers WHERE key IN ({marks})", chunk):
                    found[key] = json.loads(blob)
        return found

    def put(self, completions: dict[str, dict[str, Any]]) -> None:
        with self._connect() as db:  # one transaction: all of them or none
            db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?)",
                           [(k, json.dumps(c)) for k, c in completions.items()])


def active_memo() -> AnswerMemo | None:
    return _ACTIVE.get()


@contextmanager
def remembered(path: str | Path) -> Iterator[AnswerMemo]:
    """Within the block, every engine generation (without callbacks) reads and fills `path`."""
    token = _ACTIVE.set(AnswerMemo(path))
    try:
        yield _ACTIVE.get()  # type: ignore[misc]
    finally:
        _ACTIVE.reset(token)
