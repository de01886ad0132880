"""The pieces PPO and GRPO share: rollouts from the engine, the RL arithmetic (KL estimators,
GAE, whitening, clipped losses, group advantages), the adaptive KL coefficient, running
reward statistics, and the alarms for reward hacking and collapse.

Conventions ("The N Implementation Details of RLHF with PPO", TRL, OpenRLHF): tensors are
(rows, T) over whole sequences (prompt + response); `mask` is True on the response tokens the
policy sampled (a tool's forced output and padding excluded); log-probabilities at position t
are those of token t + 1, from logits divided by the sampling temperature, so the policy
that is scored is the one that sampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from chatforge.align.pairs import prompt_messages
from chatforge.engine import Engine, SamplingParams
from chatforge.model.gpt import GPT
from chatforge.model.loss import IGNORE_INDEX
from chatforge.tokenizer.bpe import Tokenizer
from chatforge.tokenizer.chat import render_prompt

# ---- arithmetic ----


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / m.sum().clamp(min=1)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1)


def kl_estimate(logp: Tensor, ref_logp: Tensor, kind: str = "k1") -> Tensor:
    """Per-token KL(policy || reference) from samples of the policy (Schulman's estimators):
    k1 = log p - log q (unbiased, can be negative); k3 = (r - 1) - log r with r = q / p
    (unbiased and never negative)."""
    log_ratio = logp - ref_logp
    if kind == "k1":
        return log_ratio
    if kind == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {kind!r}: choose k1 or k3")


def whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """(x - mean) / std over the masked entries (the mean is kept when shift_mean is False)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over each row's masked tokens (advantages, returns).

    The value after a row's last masked token is 0 (the answer has ended); unmasked
    positions are skipped, so a tool's forced output does not break the chain.
    """
    adv = torch.zeros_like(rewards)
    rows, width = rewards.shape
    for r in range(rows):
        positions = mask[r].nonzero().flatten().tolist()
        running, next_value = 0.0, 0.0
        for t in reversed(positions):
            delta = rewards[r, t] + gamma * next_value - values[r, t]
            running = delta + gamma * lam * running
            adv[r, t] = running
            next_value = values[r, t]
    return adv, adv + values


def clipped_policy_loss(logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, clip: float,
                        token_level: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """PPO's clipped surrogate (loss, clip fraction, approximate KL to the sampling policy).

    Averaged per answer then over answers, or with `token_level` over all tokens of the batch
    (DAPO), so long answers weigh by their length.
    """
    ratio = torch.exp(logp - old_logp)
    losses = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
    loss = masked_mean(losses, mask) if token_level else masked_mean(losses, mask, dim=1).mean()
    clipfrac = masked_mean(((ratio - 1).abs() > clip).float(), mask)
    approx_kl = masked_mean((ratio - 1) - (logp - old_logp), mask)
    return loss, clipfrac.detach(), approx_kl.detach()


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
                       clip: float) -> tuple[Tensor, Tensor]:
    """0.5 * max((v - R)^2, (v_clipped - R)^2), and the share of tokens where clipping won."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    a, b = (values - returns) ** 2, (clipped - returns) ** 2
    return 0.5 * masked_mean(torch.maximum(a, b), mask), masked_mean((b > a).float(), mask).detach()


def group_advantages(rewards: Tensor, group: int, scale: bool = True) -> Tensor:
    """GRPO: each reward minus its group's mean, divided by the group's std unless
    `scale` is False (Dr. GRPO). Rows are grouped consecutively, `group` per prompt."""
    r = rewards.view(-1, group)
    centred = r - r.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (r.std(dim=1, keepdim=True, unbiased=True) + 1e-4)
    return centred.flatten()


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    var = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    return float(1 - masked_mean((returns - values) ** 2, mask) / var.clamp(min=1e-8))


def entropy_from_logits(logits: Tensor) -> Tensor:
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


@dataclass
class AdaptiveKL:
    """Ziegler et al.'s controller: beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon."""

    value: float
    target: float = 0.0  # 0 = a fixed coefficient
    horizon: float = 10000.0

    def update(self, kl: float, n_steps: int) -> None:
        if self.target > 0:
            err = max(-0.2, min(0.2, kl / self.target - 1))
            self.value *= 1 + err * n_steps / self.horizon


@dataclass
class RunningMoments:
    """Mean and std of all rewards seen so far (Chan et al.'s parallel update)."""

    count: float = 0.0
    mean: float = 0.0
    var: float = 1.0

    def update(self, x: Tensor) -> None:
        n, m = float(x.numel()), float(x.mean())
        v = float(x.var(unbiased=False)) if x.numel() > 1 else 0.0
        total = self.count + n
        delta = m - self.mean
        self.var = (self.count * self.var + n * v + delta**2 * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 1e-8))


# ---- rollouts ----


def minibatch_rows(step: int, micro: int, *, rows: int, cycle: int, minibatches: int, mb_size: int,
                   micro_size: int, local_accum: int, seed: int) -> Tensor:
    """Rollout rows of one micro-batch: each rollout feeds `cycle` steps (epochs x
    minibatches); every epoch is a seeded permutation of the rollout's rows cut into
    minibatches of `mb_size`, and each rank's k-th micro-batch is the k-th `micro_size` slice."""
    epoch, mb = divmod(step % cycle, minibatches)
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed + (step // cycle) * 1009 + epoch))
    chosen = order[mb * mb_size : (mb + 1) * mb_size]
    k = micro % local_accum
    return chosen[k * micro_size : (k + 1) * micro_size]


@dataclass
class Rollout:
    """Sampled answers as model inputs: ids (rows, T), `targets` (token t + 1 at response
    positions, IGNORE_INDEX elsewhere), `mask` (targets the policy sampled), the index of each
    row's last token, whether the answer ended its turn, and the answers' text."""

    ids: Tensor
    targets: Tensor
    mask: Tensor
    last: Tensor
    ended: Tensor
    texts: list[str]
    lengths: Tensor  # sampled response tokens per row


def rollout(policy: GPT, tok: Tokenizer, prompts: Sequence[dict], temperature: float,
            max_new_tokens: int, seed: int) -> Rollout:
    """Sample one answer per prompt with the engine (batched, KV cache) and lay them out."""
    engine = Engine(policy, tok)
    ids = [render_prompt(tok, prompt_messages(p)) for p in prompts]
    room = policy.cfg.seq_len - max_new_tokens
    ids = [x[-room:] for x in ids]  # a long prompt loses its start, never the answer's room
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_k=0,
                            top_p=1.0, seed=seed)
    done = engine.generate(ids, params)
    rows = [p + c.tokens for p, c in zip(ids, done, strict=True)]
    width = max(map(len, rows))
    out_ids = torch.full((len(rows), width), tok.pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for r, (p, c) in enumerate(zip(ids, done, strict=True)):
        row = rows[r]
        out_ids[r, : len(row)] = torch.tensor(row)
        start = len(p)
        if c.tokens:
            targets[r, start - 1 : len(row) - 1] = torch.tensor(c.tokens)
            forced = c.forced or [False] * len(c.tokens)
            mask[r, start - 1 : len(row) - 1] = ~torch.tensor(forced, dtype=torch.bool)
    return Rollout(
        ids=out_ids, targets=targets, mask=mask,
        last=torch.tensor([len(r) - 1 for r in rows]),
        ended=torch.tensor([c.finish_reason == "stop" for c in done]),
        texts=[c.text for c in done],
        lengths=torch.tensor([len(c.tokens) for c in done]),
    )


def scaled_logprobs(model: GPT, ids: Tensor, targets: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Per-token log-probabilities of `targets` under logits / temperature, and entropies."""
    logits = model(ids)
    if temperature > 0:
        logits = logits / temperature
    logp = -F.cross_entropy(logits.transpose(1, 2), targets.clamp(min=0), reduction="none")
    return logp * (targets != IGNORE_INDEX), entropy_from_logits(logits)


# ---- alarms ----


FLAT_WINDOW = 5  # rollouts the flat-group alarm averages over


@dataclass
class Alarms:
    """Warnings none of the common libraries raise: KL past a bound, entropy collapse, answer
    length running away, the score rising while held-out accuracy falls, and GRPO groups
    without a learning signal. Each fires once per kind and stays in the stage's summary."""

    kl_bound: float
    entropy_floor: float  # share of the first rollout's entropy
    length_factor: float  # times the first rollout's mean length
    flat_group_share: float = 0.9  # of the groups of the last FLAT_WINDOW rollouts
    first: dict = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)
    recent_flat: list[float] = field(default_factory=list)

    def _fire(self, kind: str, message: str) -> str | None:
        if any(f.startswith(kind + ":") for f in self.fired):
            return None
        self.fired.append(f"{kind}: {message}")
        return self.fired[-1]

    def check_rollout(self, step: int, stats: dict) -> list[str]:
        """Alarms raised by one rollout's statistics (kl, entropy, response_len, flat_groups)."""
        if not self.first:
            self.first = {k: stats[k] for k in ("entropy", "response_len") if k in stats}
        out = []
        if stats.get("kl", 0.0) > self.kl_bound:
            out.append(self._fire("kl", f"KL to the reference {stats['kl']:.2f} > {self.kl_bound} at step {step}"))
        if "entropy" in stats and stats["entropy"] < self.entropy_floor * self.first.get("entropy", 0.0):
            out.append(self._fire("entropy", f"entropy collapsed to {stats['entropy']:.3f} "
                                  f"(from {self.first['entropy']:.3f}) at step {step}"))
        if "response_len" in stats and stats["response_len"] > self.length_factor * max(self.first.get("response_len", 1.0), 1.0):
            out.append(self._fire("length", f"answers grew to {stats['response_len']:.1f} tokens "
                                  f"(from {self.first['response_len']:.1f}) at step {step}"))
        if "flat_groups" in stats:
            # over a few rollouts: with 8 prompts a rollout, all flat now and then is chance
            self.recent_flat = [*self.recent_flat, stats["flat_groups"]][-FLAT_WINDOW:]
            flat = sum(self.recent_flat) / len(self.recent_flat)
            if flat > self.flat_group_share:
                out.append(self._fire("flat", f"{flat:.0%} of GRPO groups got one reward for every "
                                      f"answer (no learning signal) over the rollouts up to step {step}"))
        return [m for m in out if m]

    def check_heldout(self, step: int, history: list[dict]) -> list[str]:
        """Score up while held-out accuracy down, between the first and the latest evaluation
        ({"score", "accuracy", "n": items judged}). The fall must exceed two standard errors of
        a difference of two accuracies on n items each: on PPO's 48 held-out items one answer
        is 2 points, and a fixed 2-point bound fired on a one-answer fall in 3 of 7 PPO trials."""
        if len(history) < 2:
            return []
        a, b = history[0], history[-1]
        pooled = (a["accuracy"] + b["accuracy"]) / 2
        noise = 2 * math.sqrt(2 * pooled * (1 - pooled) / max(min(a["n"], b["n"]), 1))
        if b["score"] > a["score"] and a["accuracy"] - b["accuracy"] > max(noise, 0.02):
            m = self._fire("hacking", f"score rose {a['score']:.2f} -> {b['score']:.2f} while held-out "
                           f"accuracy fell {a['accuracy']:.1%} -> {b['accuracy']:.1%} at step {step}")
            return [m] if m else []
        return []

    def state(self) -> dict:
        return {"first": self.first, "fired": self.fired, "recent_flat": self.recent_flat}

    def load(self, d: dict) -> None:
        self.first, self.fired = dict(d["first"]), list(d["fired"])
        self.recent_flat = list(d.get("recent_flat", []))
