"""Perplexity and bits per byte of any UTF-8 text file.

The text (after a BOS) is cut into disjoint windows of the model's context length; every token
is predicted once, from the window it falls in. Bits per byte divide the total loss by the
file's UTF-8 bytes, so models with different tokenizers compare (as lm-eval's wikitext reports).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from chatforge.errors import InputError
from chatforge.eval.harness import EvalModel, TaskResult
from chatforge.model.loss import IGNORE_INDEX


@torch.inference_mode()
def score(em: EvalModel, path: Path, *, limit: int | None = None, name: str = "ppl") -> TaskResult:
    """Token perplexity, word perplexity and bits per byte; `limit` caps the windows scored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read as UTF-8 text: {e}") from e
    if not text.strip():
        raise InputError(f"{path}: empty text file")
    seq = em.context_length
    ids = [em.tok.bos_id] + em.tok.encode(text)
    starts = list(range(0, len(ids) - 1, seq))[:limit]
    device = next(em.model.parameters()).device
    nats, n_tokens = 0.0, 0
    for s in range(0, len(starts), em.batch_size):
        chunk = starts[s : s + em.batch_size]
        width = max(min(seq, len(ids) - 1 - a) for a in chunk)
        x = torch.full((len(chunk), width), em.tok.pad_id, dtype=torch.long)
        y = torch.full((len(chunk), width), IGNORE_INDEX, dtype=torch.long)
        for r, a in enumerate(chunk):
            n = min(seq, len(ids) - 1 - a)
            x[r, :n] = torch.tensor(ids[a : a + n])
            y[r, :n] = torch.tensor(ids[a + 1 : a + n + 1])
        nats -= float(em.model(x.to(device), targets=y.to(device), reduction="none").sum())
        n_tokens += int((y != IGNORE_INDEX).sum())
    # Bytes and words of the part scored (all of it unless `limit` cut it short).
    scored = em.tok.decode(ids[1 : 1 + n_tokens])
    n_bytes, n_words = len(scored.encode("utf-8")), max(1, len(scored.split()))
    metrics = {"bits_per_byte": nats / math.log(2) / n_bytes, "token_perplexity": math.exp(nats / n_tokens),
               "word_perplexity": math.exp(nats / n_words), "tokens": n_tokens, "bytes": n_bytes}
    row = {"task": f"{name}/{path.name}", "doc_id": 0, "pred": metrics["bits_per_byte"], "gold": None,
           "correct": None, "loglik": -nats}
    return TaskResult([row], metrics)
