"""Reward modelling: learn the preferences as a number (InstructGPT's stage 5, step 2).

The reward model (chatforge.model.reward) is the SFT model plus a scalar head read at the
answer's end-of-turn token, beside a learned multiple of the answer's mean log-probability,
trained with the Bradley-Terry loss

    -log sigmoid(r_chosen - r_rejected - margin) + center * mean((r_chosen + r_rejected)^2)

(the centring term, as in OpenRLHF/TRL, keeps rewards near 0 so PPO's KL penalty and the
reward stay on one scale). Held-out figures: pair accuracy (r_chosen > r_rejected), mean
margin, and calibration (expected calibration error of sigmoid(r_a - r_b) as the
probability that answer a is preferred).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor

from chatforge.align.collect import safety_requests, training_preferences
from chatforge.align.pairs import (
    EncodedPair,
    encode_pair,
    greedy_replies,
    prefs_digest,
    reward_scores,
    sequences,
)
from chatforge.align.prefs import PrefStore
from chatforge.config import Config
from chatforge.corpus.safety import REFUSAL
from chatforge.device import pick_device
from chatforge.errors import InputError
from chatforge.eval.refusal import is_refusal
from chatforge.model.checkpoint import load_model, resolve_checkpoint
from chatforge.model.gpt import GPT
from chatforge.model.reward import RewardModel
from chatforge.runs import RunDir, atomic_write_json, files_digest
from chatforge.stage import StageResult
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.train.loop import TrainTask, identity, init_distributed, train


def bradley_terry_loss(r_chosen: Tensor, r_rejected: Tensor, margin: float = 0.0,
                       center: float = 0.0) -> Tensor:
    """Mean -log sigmoid(r_c - r_r - margin), plus the optional centring term."""
    loss = -F.logsigmoid(r_chosen - r_rejected - margin).mean()
    if center:
        loss = loss + center * ((r_chosen + r_rejected) ** 2).mean()
    return loss


def epoch_batch(k: int, n_items: int, batch_size: int, seed: int) -> list[int]:
    """Items of global batch `k`: each epoch a seeded permutation, cut into batches (the last
    batch of an epoch may be short), so every item is seen once per epoch at any world size."""
    per_epoch = math.ceil(n_items / batch_size)
    epoch, i = divmod(k, per_epoch)
    perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    return perm[i * batch_size : (i + 1) * batch_size].tolist()


def calibration_error(p_first: Sequence[float], first_wins: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error of predicted probabilities that the first answer wins."""
    conf = [max(p, 1 - p) for p in p_first]
    right = [(p >= 0.5) == w for p, w in zip(p_first, first_wins, strict=True)]
    total, ece = len(conf), 0.0
    for b in range(bins):
        lo, hi = 0.5 + b * 0.5 / bins, 0.5 + (b + 1) * 0.5 / bins
        idx = [i for i, c in enumerate(conf) if lo <= c < hi or (b == bins - 1 and c == hi)]
        if idx:
            acc = sum(right[i] for i in idx) / len(idx)
            mean_conf = sum(conf[i] for i in idx) / len(idx)
            ece += len(idx) / total * abs(acc - mean_conf)
    return ece


@torch.no_grad()
def pair_rewards(rm: RewardModel, pairs: Sequence[EncodedPair], pad_id: int,
                 batch_size: int = 32) -> tuple[Tensor, Tensor]:
    """(r_chosen, r_rejected) of every pair."""
    device = next(rm.parameters()).device
    chosen, rejected = [], []
    for i in range(0, len(pairs), batch_size):
        ids, targets, last = sequences(pairs[i : i + batch_size], pad_id)
        r = rm(ids.to(device), last.to(device), targets.to(device)).cpu()
        n = len(r) // 2
        chosen.append(r[:n])
        rejected.append(r[n:])
    return torch.cat(chosen), torch.cat(rejected)


def heldout_scores(rm: RewardModel, pairs: Sequence[EncodedPair], pad_id: int, seed: int = 0) -> dict:
    """Held-out pair accuracy, mean margin and calibration of a reward model."""
    if not pairs:
        return {}
    rc, rr = pair_rewards(rm, pairs, pad_id)
    gen = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(rc), generator=gen) < 0.5  # which answer is shown first
    diff = torch.where(flip, rr - rc, rc - rr)
    return {
        "heldout_accuracy": float((rc > rr).float().mean()),
        "heldout_margin": float((rc - rr).mean()),
        "heldout_ece": calibration_error(torch.sigmoid(diff).tolist(), (~flip).tolist()),
        "heldout_pairs": len(pairs),
    }


def make_task(rm: RewardModel, tok: Tokenizer, train_pairs: list[EncodedPair],
              held_pairs: list[EncodedPair], cfg: Config) -> TrainTask:
    r = cfg.reward
    t = r.train

    def train_batch(gen: torch.Generator, step: int, micro: int):
        idx = epoch_batch(step * t.grad_accum + micro, len(train_pairs), t.batch_size, cfg.run.seed)
        return sequences([train_pairs[i] for i in idx], tok.pad_id)

    def loss_fn(m, batch):
        ids, targets, last = batch
        scores = m(ids, last, targets)
        n = len(scores) // 2
        rc, rr = scores[:n], scores[n:]
        loss = bradley_terry_loss(rc, rr, r.margin, r.center)
        return loss, {"accuracy": (rc > rr).float().mean(), "margin": (rc - rr).mean().detach()}

    def evaluate(m):
        return heldout_scores(m, held_pairs, tok.pad_id)

    mean_len = sum(len(p.prompt) + (len(p.chosen) + len(p.rejected)) / 2 for p in train_pairs) / len(train_pairs)
    return TrainTask(
        model=rm, train_batch=train_batch, loss_fn=loss_fn,
        tokens_per_batch=round(2 * t.batch_size * mean_len),
        flops_per_token=rm.trunk.flops_per_token(), evaluate=evaluate if held_pairs else None,
        save_extra={"stage": "reward"},
    )


@torch.no_grad()
def refusal_preference(rm: RewardModel, sft: GPT, tok: Tokenizer, run: RunDir) -> dict[str, float]:
    """Where SFT answers a held-out harmful request of the built-in corpus without refusing, the
    share of them on which the reward model scores the corpus's refusal above SFT's answer.
    Pairs test the answers they hold; PPO can raise refusals of the wordings SFT misses only as
    far as this share is high. Empty without the corpus's held-out harmful requests."""
    prompts = safety_requests(run.corpus / "eval" / "harmful_heldout.jsonl", "refusal", split="heldout")
    if not prompts:
        return {}
    replies = greedy_replies(sft, tok, prompts)
    missed = [(p, r) for p, r in zip(prompts, replies, strict=True) if not is_refusal(r)]
    out: dict[str, float] = {"heldout_harmful": len(prompts), "heldout_harmful_sft_answered": len(missed)}
    if missed:
        asked = [p for p, _ in missed]
        own = reward_scores(rm, tok, asked, [r for _, r in missed])
        refusal = reward_scores(rm, tok, asked, [REFUSAL.get(p["lang"], REFUSAL["en"]) for p in asked])
        out["heldout_refusal_preferred"] = sum(a > b for a, b in zip(refusal, own, strict=True)) / len(missed)
    return out


def run(cfg: Config, run: RunDir, console: Console | None = None) -> StageResult:
    """Pipeline stage: prefs/prefs.db + checkpoints/sft -> checkpoints/reward."""
    console = console or Console(stderr=True)
    device = pick_device(cfg.run.device)
    tok = load_tokenizer(run.tokenizer)
    sft_dir = run.checkpoint("sft")
    sft = load_model(sft_dir, device)
    store = PrefStore(run.path("prefs", "prefs.db"))
    train_prefs, held_prefs = training_preferences(store, cfg, run)
    if len(train_prefs) < cfg.reward.train.batch_size:
        raise InputError(
            f"{store.path}: {len(train_prefs)} training preference pairs with a choice, fewer than "
            f"one batch ({cfg.reward.train.batch_size}); generate and label more (chatforge prefs ...)"
        )
    seq = sft.cfg.seq_len
    train_pairs = [encode_pair(tok, p, seq) for p in train_prefs]
    held_pairs = [encode_pair(tok, p, seq) for p in held_prefs]
    torch.manual_seed(cfg.run.seed)
    rm = RewardModel(sft.cfg).to(device)
    rm.init_from(sft)
    del sft
    task = make_task(rm, tok, train_pairs, held_pairs, cfg)
    ident = identity(cfg.reward.train, seed=cfg.run.seed, margin=cfg.reward.margin, center=cfg.reward.center)
    upstream = {"sft": files_digest([resolve_checkpoint(sft_dir) / "model.safetensors"]),
                "pairs": prefs_digest(train_prefs)}
    result = train(task, cfg.reward.train, run.checkpoint("reward"), run.metrics("reward"),
                   seed=cfg.run.seed, ident=ident, upstream=upstream, device=device,
                   console=console, stage="reward", restart=run.restart)
    if not init_distributed(device).main:
        return StageResult(device=device.type)
    rm.eval()
    scores = heldout_scores(rm, held_pairs, tok.pad_id)
    scores |= refusal_preference(rm, load_model(sft_dir, device).eval(), tok, run)
    metrics = {**scores, "train_pairs": len(train_pairs), "steps": result.steps,
               "final_loss": result.final_loss, "train_accuracy": result.metrics.get("accuracy"),
               "tokens_per_s": result.tokens_per_s, "wall_s": result.wall_s}
    atomic_write_json(run.eval("reward"), metrics)
    return StageResult(
        outputs={"checkpoint": str(run.checkpoint("reward")), "eval": str(run.eval("reward"))},
        metrics=metrics,
        summary=(f"held-out pair accuracy {scores.get('heldout_accuracy', float('nan')):.1%} of "
                 f"{len(held_pairs)}, margin {scores.get('heldout_margin', float('nan')):.2f}, "
                 f"ECE {scores.get('heldout_ece', float('nan')):.3f}; {len(train_pairs)} training pairs"
                 + (f"; a refusal preferred to {scores['heldout_refusal_preferred']:.0%} of SFT's "
                    f"{scores['heldout_harmful_sft_answered']} answers to held-out harmful requests"
                    if "heldout_refusal_preferred" in scores else "")),
        device=device.type,
    )
