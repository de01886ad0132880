"""Language-model scores over token batches: mean loss and bits per byte.

Bits per byte divides the loss by the bytes the tokens stand for, so models with different
tokenizers (or none, like char-level nanoGPT) compare fairly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from chatforge.errors import RunDirError
from chatforge.model.gpt import GPT
from chatforge.model.loss import IGNORE_INDEX
from chatforge.tokenizer.shards import TokenShards


@torch.no_grad()
def masked_loss(model: GPT, batches: Iterable[tuple[Tensor, Tensor]]) -> float:
    """Mean cross-entropy (nats) over every target token that is not IGNORE_INDEX."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for x, y in batches:
        y = y.to(device)
        logp = model(x.to(device), targets=y, reduction="none")
        total -= float(logp.sum())
        count += int((y != IGNORE_INDEX).sum())
    return total / max(count, 1)


@torch.no_grad()
def evaluate_bpb(
    model: GPT, shards: TokenShards, seq_len: int, batch_size: int, max_batches: int | None
) -> dict[str, float]:
    """Mean validation loss (nats/token) and bits per byte over sequential windows."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for x, y in shards.iter_val_batches(batch_size, seq_len, max_batches):
        loss = model(x.to(device), targets=y.to(device))
        total += loss.item() * y.numel()
        count += y.numel()
    if count == 0:
        raise RunDirError(f"{shards.path}: validation split is shorter than one window of {seq_len + 1} tokens")
    loss = total / count
    return {"val_loss": loss, "val_bpb": loss / math.log(2) * shards.n_tokens / shards.n_bytes}
