"""The evaluation harness: log-likelihood and generation requests, batched through the model.

Every benchmark is one of two request kinds, as in lm-evaluation-harness:
- log-likelihood: the log-probability of each continuation given a context. The contexts of a
  batch of items are left-padded into one forward pass that fills a KV cache; the cache rows
  are then repeated once per choice and only the continuations are fed on top. The context of
  an item is computed once and shared by all its choices (MMLU's " A".." D" need no second
  pass at all: the first continuation token is scored from the context's last position), and
  a prefix that the items of a batch share (a subject's description and few-shot examples)
  is computed once for all of them: items are batched by shared prefix first.
- generation: greedy or sampled text through `Engine`, with stop strings.

Tasks turn their items into requests, score the replies and return a `TaskResult`: one row per
item (task, doc_id, prompt hash, pred, gold, correct, ...) and aggregates with standard errors
(the sample standard deviation over sqrt(n), lm-eval's `mean_stderr`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from chatforge.engine import Completion, Engine, SamplingParams
from chatforge.errors import InputError
from chatforge.model.gpt import GPT
from chatforge.runs import atomic_write_text
from chatforge.tokenizer.bpe import Tokenizer
from chatforge.tokenizer.chat import render_prompt

STYLES = ("base", "chat")


@dataclass
class EvalModel:
    """What every task needs: the model, its tokenizer, the prompt style and batching.

    `style` "base": few-shot plain-text prompts; "chat": zero-shot prompts in the chat template.
    """

    model: GPT
    tok: Tokenizer
    style: str = "base"
    batch_size: int = 32
    max_new_tokens: int = 256
    seed: int = 1234  # few-shot sampling seed (lm-eval's default)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style {self.style!r}: choose one of {', '.join(STYLES)}")

    @property
    def context_length(self) -> int:
        return self.model.cfg.seq_len

    def prompt(self, text: str) -> list[int]:
        """A prompt's ids: BOS + text for a base model, a user turn for a chat model."""
        if self.style == "chat":
            return render_prompt(self.tok, [{"role": "user", "content": text}])
        return [self.tok.bos_id] + self.tok.encode(text)


@dataclass
class LoglikRequest:
    """An item's context (token ids) and its continuations (token ids each, non-empty)."""

    context: list[int]
    continuations: list[list[int]]


@dataclass
class TaskResult:
    """Per-item rows and aggregate metrics (each `<m>` with its `<m>_stderr` where it has one)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def encode_pair(tok: Tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's split: trailing spaces of the context move onto the continuation, then the
    continuation's ids are those of context + continuation after the context's ids (so a
    merge across the boundary is scored as the whole text tokenizes)."""
    n_spaces = len(context) - len(context.rstrip(" "))
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tok.encode(context + continuation)
    ctx = tok.encode(context)
    return ctx, whole[len(ctx):]


def _fit_context(context: list[int], max_cont: int, seq_len: int) -> list[int]:
    """Drop the oldest context tokens so context + continuation - 1 fits the model. lm-eval
    truncates from the left too, but per choice; here an item's context is cut once, as far as
    its longest choice needs, so that all its choices share it (same result when it fits)."""
    keep = seq_len + 1 - max_cont
    if keep < 1:
        raise InputError(f"a continuation of {max_cont} tokens does not fit the context length {seq_len}")
    return context[-keep:]


# Contexts of a batch that share at least this many leading tokens (MMLU's description and
# few-shot examples of one subject) compute that prefix once; shorter shares are not worth a pass.
MIN_SHARED_PREFIX = 16


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _batches(contexts: list[list[int]], batch_size: int) -> list[list[int]]:
    """Request indices in batches: contexts sharing a long prefix together (one group per
    few-shot prefix), longest first inside each group, so padding stays small."""
    lex = sorted(range(len(contexts)), key=lambda i: contexts[i])
    groups: list[list[int]] = []
    for i in lex:
        if groups and _common_prefix(contexts[groups[-1][-1]], contexts[i]) >= MIN_SHARED_PREFIX:
            groups[-1].append(i)
        else:
            groups.append([i])
    loose = [g[0] for g in groups if len(g) == 1]
    batches = []
    for group in [g for g in groups if len(g) > 1] + [loose]:
        group.sort(key=lambda i: -len(contexts[i]))
        batches += [group[s : s + batch_size] for s in range(0, len(group), batch_size)]
    return [b for b in batches if b]


@torch.inference_mode()
def loglikelihoods(
    em: EvalModel, requests: Sequence[LoglikRequest]
) -> list[list[tuple[float, bool]]]:
    """(sum log p(continuation | context), whether it is the greedy continuation) per choice."""
    for i, r in enumerate(requests):
        if not r.context or not r.continuations or any(not c for c in r.continuations):
            raise ValueError(f"request {i}: empty context or continuation")
    seq = em.context_length
    # A choice longer than the whole context (a long answer, a tiny model) is scored on its
    # first `seq` tokens after one context token, rather than failing the whole task.
    fitted = []
    for r in requests:
        conts = [c[:seq] for c in r.continuations]
        fitted.append(LoglikRequest(_fit_context(r.context, max(len(c) for c in conts), seq), conts))
    out: list[list[tuple[float, bool]]] = [[] for _ in requests]
    for batch in _batches([r.context for r in fitted], em.batch_size):
        for i, scores in zip(batch, _loglik_batch(em.model, [fitted[i] for i in batch], em.tok.pad_id), strict=True):
            out[i] = scores
    return out


def _loglik_batch(model: GPT, reqs: list[LoglikRequest], pad_id: int) -> list[list[tuple[float, bool]]]:
    device = next(model.parameters()).device
    conts = [c for r in reqs for c in r.continuations]
    owner = [i for i, r in enumerate(reqs) for _ in r.continuations]
    lc = max(len(c) for c in conts)
    ctxs = [r.context for r in reqs]
    # The shared prefix runs once (batch 1) and its cache rows are copied to every item; each
    # item keeps at least one token of its own, whose position gives the first choice token.
    shared = min([len(c) - 1 for c in ctxs] + [min(_common_prefix(ctxs[0], c) for c in ctxs)])
    shared = shared if shared >= MIN_SHARED_PREFIX else 0
    tails = [c[shared:] for c in ctxs]
    B, P = len(reqs), max(len(t) for t in tails)
    cache = model.new_cache(1 if shared else B, shared + P + lc - 1)
    if shared:
        model.hidden_states(torch.tensor([ctxs[0][:shared]], device=device), cache)
        cache.reorder(torch.zeros(B, dtype=torch.long, device=device))
    idx = torch.full((B, P), pad_id, dtype=torch.long, device=device)
    valid = torch.zeros(B, P, dtype=torch.bool, device=device)
    for r, t in enumerate(tails):
        idx[r, P - len(t):] = torch.tensor(t, dtype=torch.long)
        valid[r, P - len(t):] = True
    # Only the last position's logits are needed: the head runs on one position per context.
    first = model.lm_head(model.hidden_states(idx, cache, valid)[:, -1]).float().log_softmax(-1)
    rows = torch.tensor(owner, device=device)
    first = first[rows]  # (R, V): one row per choice
    R = len(conts)
    targets = torch.full((R, lc), -1, dtype=torch.long, device=device)
    for j, c in enumerate(conts):
        targets[j, : len(c)] = torch.tensor(c, dtype=torch.long)
    logp = torch.zeros(R, lc, device=device)
    greedy = torch.ones(R, lc, dtype=torch.bool, device=device)
    t0 = targets[:, 0]
    logp[:, 0] = first.gather(1, t0[:, None])[:, 0]
    greedy[:, 0] = first.argmax(-1) == t0
    if lc > 1:
        cache.reorder(rows)  # each context's cache once per choice
        step = targets[:, :-1].clamp(min=0)
        step_valid = targets[:, :-1] >= 0
        nxt = model(step, cache=cache, key_valid=step_valid).float().log_softmax(-1)  # (R, lc-1, V)
        tgt = targets[:, 1:]
        real = tgt >= 0
        logp[:, 1:] = torch.where(real, nxt.gather(2, tgt.clamp(min=0)[..., None])[..., 0], 0.0)
        greedy[:, 1:] = (nxt.argmax(-1) == tgt) | ~real
    total, is_greedy = logp.sum(1).tolist(), greedy.all(1).tolist()
    out: list[list[tuple[float, bool]]] = [[] for _ in reqs]
    for j, i in enumerate(owner):
        out[i].append((total[j], bool(is_greedy[j])))
    return out


def fit_prompt(prompt: list[int], room: int, seq_len: int) -> list[int]:
    """Keep the first token (BOS) and the newest tokens so `room` new tokens still fit."""
    keep = seq_len - room
    if len(prompt) <= keep:
        return prompt
    return prompt[:1] + prompt[len(prompt) - keep + 1:]


def generate(em: EvalModel, prompts: Sequence[list[int]], params: SamplingParams) -> list[Completion]:
    """Complete every prompt through the engine (batches of `em.batch_size`); a prompt too
    long for the context keeps its newest tokens, leaving room for the reply."""
    room = min(params.max_new_tokens, em.context_length // 2)
    fitted = [fit_prompt(list(p), room, em.context_length) for p in prompts]
    return Engine(em.model, em.tok, em.batch_size).generate(fitted, params)


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std with n - 1, over sqrt(n)); NaN stderr below 2."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def add_metric(metrics: dict[str, float], name: str, values: Sequence[float]) -> None:
    """Store `name` and `name_stderr` for per-item values."""
    metrics[name], metrics[f"{name}_stderr"] = mean_stderr(values)


def prompt_hash(ids: Sequence[int]) -> str:
    """Short digest of a prompt's token ids, to tell whether two runs asked the same thing."""
    return hashlib.sha256(json.dumps(list(ids)).encode()).hexdigest()[:16]


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Per-item rows as JSONL (written atomically: other stages and the report read them)."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
