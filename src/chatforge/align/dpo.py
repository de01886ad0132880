"""Direct preference optimisation: learn the preferences without a reward model (Rafailov et
al. 2023), on the same pairs and the same training loop.

With log-probabilities summed over each answer's tokens, for the policy (pi) and the frozen
SFT reference (ref):

    h = (log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))
    sigmoid loss: -log sigmoid(beta * h)        IPO loss: (h - 1 / (2 beta))^2

plus, with `sft_weight` alpha > 0, alpha times the chosen answers' mean per-token negative
log-likelihood (RPO, Pang et al. 2024; TRL's `rpo_alpha`). Pure DPO can raise the margin by
lowering both answers: when a benign pair rejects a refusal whose opening the harmful pairs'
chosen answers share, the opening falls everywhere, harmful prompts included. The NLL term
holds the chosen answers up.

The reference never changes, so its log-probabilities are computed once before training.
Logged per step (TRL's names): loss, reward accuracy (beta * h > 0), chosen and rejected
implicit rewards beta * (log pi - log ref), and their margin.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor

from chatforge.align.collect import training_preferences
from chatforge.align.pairs import (
    EncodedPair,
    encode_pair,
    greedy_replies,
    prefs_digest,
    sequence_logprobs,
    sequences,
)
from chatforge.align.prefs import PrefStore
from chatforge.align.reward import epoch_batch
from chatforge.answer_memo import remembered
from chatforge.config import Config
from chatforge.device import pick_device
from chatforge.engine import length_batches
from chatforge.errors import InputError
from chatforge.eval.facts import read_fact_questions, score_facts
from chatforge.eval.refusal import is_refusal
from chatforge.model.checkpoint import load_model, resolve_checkpoint
from chatforge.model.gpt import GPT
from chatforge.model.loss import IGNORE_INDEX
from chatforge.runs import RunDir, atomic_write_json, files_digest, read_jsonl
from chatforge.stage import StageResult
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.train.loop import TrainTask, identity, init_distributed, train


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
             ref_rejected: Tensor, beta: float, kind: str = "sigmoid", chosen_tokens: Tensor | None = None,
             sft_weight: float = 0.0) -> tuple[Tensor, dict]:
    """The DPO (or IPO) loss of summed answer log-probabilities, and its metrics; with
    `sft_weight`, plus that times the chosen answers' per-token NLL (`chosen_tokens` long)."""
    chosen_reward = beta * (policy_chosen - ref_chosen)
    rejected_reward = beta * (policy_rejected - ref_rejected)
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    if kind == "sigmoid":
        loss = -F.logsigmoid(beta * h).mean()
    elif kind == "ipo":
        loss = ((h - 1 / (2 * beta)) ** 2).mean()
    else:
        raise ValueError(f"unknown DPO loss {kind!r}")
    metrics = {}
    if sft_weight:
        nll = (-policy_chosen / chosen_tokens.clamp(min=1)).mean()
        loss = loss + sft_weight * nll
        metrics["chosen_nll"] = nll.detach()
    metrics |= {
        "reward_accuracy": (chosen_reward > rejected_reward).float().mean(),
        "chosen_reward": chosen_reward.detach().mean(),
        "rejected_reward": rejected_reward.detach().mean(),
        "reward_margin": (chosen_reward - rejected_reward).detach().mean(),
    }
    return loss, metrics


@torch.no_grad()
def answer_logprobs(model: GPT, pairs: Sequence[EncodedPair], pad_id: int,
                    batch_size: int = 32) -> tuple[Tensor, Tensor]:
    """Summed log-probabilities of every pair's chosen and rejected answer, in the pairs'
    order. Batches hold pairs of similar length: consecutive pairs would pad a short one to
    a long one's width (about a fifth of the work on the built-in pairs)."""
    device = next(model.parameters()).device
    chosen, rejected = torch.zeros(len(pairs)), torch.zeros(len(pairs))
    width = [len(p.prompt) + max(len(p.chosen), len(p.rejected)) for p in pairs]
    for batch in length_batches(range(len(pairs)), width.__getitem__, batch_size):
        rows = torch.tensor(batch)
        ids, targets, _ = sequences([pairs[r] for r in rows], pad_id)
        lp = sequence_logprobs(model, ids.to(device), targets.to(device)).float().cpu()
        chosen[rows], rejected[rows] = lp[: len(rows)], lp[len(rows) :]
    return chosen, rejected


def refusal_rate(model: GPT, tok: Tokenizer, prompts: Sequence[dict], max_new_tokens: int = 48) -> float:
    """Share of (harmful) prompts the model refuses, greedy. A prompt too long for the context
    keeps its end (the request), leaving room for the reply."""
    if not prompts:
        return float("nan")
    replies = greedy_replies(model, tok, prompts, max_new_tokens)
    return sum(map(is_refusal, replies)) / len(replies)


def harmful_heldout(run: RunDir) -> list[dict]:
    """Held-out harmful requests of the built-in corpus: its own file when the corpus writes
    one, else the held-out refusal conversations' requests."""
    path = run.corpus / "eval" / "harmful_heldout.jsonl"
    if path.is_file():
        return read_jsonl(path)
    rows = read_jsonl(run.corpus / "sft_heldout.jsonl")
    return [{"prompt": r["messages"][-2]["content"]} for r in rows if r.get("kind") == "refusal"]


def make_task(policy: GPT, tok: Tokenizer, pairs: list[EncodedPair], ref: tuple[Tensor, Tensor],
              held: list[EncodedPair], held_ref: tuple[Tensor, Tensor], cfg: Config) -> TrainTask:
    d = cfg.dpo
    t = d.train

    def train_batch(gen: torch.Generator, step: int, micro: int):
        idx = epoch_batch(step * t.grad_accum + micro, len(pairs), t.batch_size, cfg.run.seed)
        ids, targets, _ = sequences([pairs[i] for i in idx], tok.pad_id)
        return ids, targets, ref[0][idx], ref[1][idx]

    def loss_fn(m, batch):
        ids, targets, ref_c, ref_r = batch
        lp = sequence_logprobs(m, ids, targets)
        n = len(lp) // 2
        chosen_tokens = (targets[:n] != IGNORE_INDEX).sum(dim=1)
        return dpo_loss(lp[:n], lp[n:], ref_c, ref_r, d.beta, d.loss, chosen_tokens, d.sft_weight)

    def evaluate(m):
        pc, pr = answer_logprobs(m, held, tok.pad_id)
        _, metrics = dpo_loss(pc, pr, *held_ref, d.beta, d.loss)
        return {f"heldout_{k}": float(v) for k, v in metrics.items()}

    mean_len = sum(len(p.prompt) + (len(p.chosen) + len(p.rejected)) / 2 for p in pairs) / len(pairs)
    return TrainTask(
        model=policy, train_batch=train_batch, loss_fn=loss_fn,
        tokens_per_batch=round(2 * t.batch_size * mean_len), flops_per_token=policy.flops_per_token(),
        evaluate=evaluate if held else None, save_extra={"stage": "dpo"},
    )


def run(cfg: Config, run: RunDir, console: Console | None = None) -> StageResult:
    """Pipeline stage: prefs/prefs.db + checkpoints/sft -> checkpoints/dpo, eval/dpo.json."""
    console = console or Console(stderr=True)
    device = pick_device(cfg.run.device)
    tok = load_tokenizer(run.tokenizer)
    sft_dir = run.checkpoint("sft")
    reference = load_model(sft_dir, device).eval()
    store = PrefStore(run.path("prefs", "prefs.db"))
    train_prefs, held_prefs = training_preferences(store, cfg, run)
    if len(train_prefs) < cfg.dpo.train.batch_size:
        raise InputError(f"{run.path('prefs', 'prefs.db')}: {len(train_prefs)} training preference "
                         f"pairs with a choice, fewer than one batch ({cfg.dpo.train.batch_size})")
    seq = reference.cfg.seq_len
    pairs = [encode_pair(tok, p, seq) for p in train_prefs]
    held = [encode_pair(tok, p, seq) for p in held_prefs]
    ref, held_ref = answer_logprobs(reference, pairs, tok.pad_id), answer_logprobs(reference, held, tok.pad_id)
    policy = load_model(sft_dir, device)
    task = make_task(policy, tok, pairs, ref, held, held_ref, cfg)
    ident = identity(cfg.dpo.train, seed=cfg.run.seed, beta=cfg.dpo.beta, loss=cfg.dpo.loss,
                     sft_weight=cfg.dpo.sft_weight)
    upstream = {"sft": files_digest([resolve_checkpoint(sft_dir) / "model.safetensors"]),
                "pairs": prefs_digest(train_prefs)}
    result = train(task, cfg.dpo.train, run.checkpoint("dpo"), run.metrics("dpo"), seed=cfg.run.seed,
                   ident=ident, upstream=upstream, device=device, console=console, stage="dpo",
                   restart=run.restart)
    if not init_distributed(device).main:
        return StageResult(device=device.type)
    policy.eval()
    with remembered(run.answers):
        report = compare_with_reference(policy, reference, tok, held, held_ref, run)
    report.update(steps=result.steps, final_loss=result.final_loss, train_pairs=len(pairs),
                  tokens_per_s=result.tokens_per_s, wall_s=result.wall_s,
                  train_reward_accuracy=result.metrics.get("reward_accuracy"))
    atomic_write_json(run.eval("dpo"), report)
    return StageResult(
        outputs={"checkpoint": str(run.checkpoint("dpo")), "eval": str(run.eval("dpo"))},
        metrics=report,
        summary=(f"held-out margin {report['sft_heldout_margin']:.2f} -> {report['heldout_margin']:.2f}, "
                 f"refusals {report['sft_refusal_rate']:.0%} -> {report['refusal_rate']:.0%}, "
                 f"facts {report['sft_exact_match']:.1%} -> {report['exact_match']:.1%}"),
        device=device.type,
    )


def compare_with_reference(policy: GPT, reference: GPT, tok: Tokenizer, held: list[EncodedPair],
                           held_ref: tuple[Tensor, Tensor], run: RunDir) -> dict:
    """DPO against SFT on held-out data: the chosen-over-rejected log-probability margin,
    the refusal rate on harmful requests, and fact exact match."""
    out: dict = {}
    if held:
        pc, pr = answer_logprobs(policy, held, tok.pad_id)
        out["heldout_margin"] = float((pc - pr).mean())
        out["sft_heldout_margin"] = float((held_ref[0] - held_ref[1]).mean())
        out["heldout_pair_accuracy"] = float((pc - pr > held_ref[0] - held_ref[1]).float().mean())
    else:
        out["heldout_margin"] = out["sft_heldout_margin"] = float("nan")
    harmful = harmful_heldout(run)
    out["refusal_rate"] = refusal_rate(policy, tok, harmful)
    out["sft_refusal_rate"] = refusal_rate(reference, tok, harmful)
    questions = read_fact_questions(run.corpus / "facts_heldout.jsonl")
    out["exact_match"] = score_facts(policy, tok, questions, "chat")["exact_match"]
    out["sft_exact_match"] = score_facts(reference, tok, questions, "chat")["exact_match"]
    out["harmful_prompts"] = len(harmful)
    return out
