"""Scalar heads on the GPT trunk: the reward model (one score per answer) and, for PPO, the
value model (a score at every token). The trunk is the same `GPT` as the policy's, so both
start from the SFT checkpoint's weights.

The reward model's score of an answer is a linear head read at its last token plus a learned
multiple of the answer's mean per-token log-probability under the trunk's own output head:

    r(x, y) = w . h_last + b + s * (1/|y|) sum_t log p(y_t | x, y_<t)

The second term is SimPO's length-normalised likelihood reward (Meng et al., 2024), here a
feature the Bradley-Terry loss weighs and sharpens beside the head. On the built-in corpus the
SFT model's own likelihood, untrained, ranked 81% of one run's 161 held-out pairs right,
where the head alone reached 62% in the stage's budget and both trained together 87%; so
the reward model starts from what the language model knows instead of relearning it
through one linear read-out. Averaging over tokens keeps the feature from paying for length.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from chatforge.model.gpt import GPT, GPTConfig, token_logprobs
from chatforge.model.loss import IGNORE_INDEX


class _ScalarHead(nn.Module):
    """GPT trunk + linear head to one number per position."""

    def __init__(self, cfg: GPTConfig, lm_head: bool):
        super().__init__()
        self.cfg = cfg
        self.trunk = GPT(cfg, lm_head=lm_head)
        self.score = nn.Linear(cfg.n_embd, 1, bias=True)
        nn.init.normal_(self.score.weight, std=1 / (cfg.n_embd + 1) ** 0.5)
        nn.init.zeros_(self.score.bias)

    @torch.no_grad()
    def init_from(self, model: nn.Module) -> None:
        """Start from `model`: a policy (GPT) gives the trunk, a reward model the trunk and
        the head (PPO's critic). Every weight it covers must come from `model`."""
        target = self.trunk if isinstance(model, GPT) else self
        own = target.state_dict()
        missing = target.load_state_dict({k: v for k, v in model.state_dict().items() if k in own},
                                         strict=False).missing_keys
        if missing:
            raise ValueError(f"{type(model).__name__} lacks {', '.join(missing[:3])} of this {self.kind} model")

    @torch.no_grad()
    def zero_head(self) -> None:
        """Every position's output 0 until trained (the trunk keeps its weights)."""
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)


class RewardModel(_ScalarHead):
    """The reward model: head at the last token + scale x mean answer log-probability."""

    kind = "reward"

    def __init__(self, cfg: GPTConfig):
        super().__init__(cfg, lm_head=True)
        self.likelihood_scale = nn.Parameter(torch.ones(1))  # 1-d: FSDP2 shards no 0-d tensors

    def forward(self, idx: Tensor, last: Tensor, targets: Tensor) -> Tensor:
        """Scores (B,) of rows `idx` (B, T): `last` (B,) is each row's last real token and
        `targets` (B, T) holds token t + 1 at the answer's positions, IGNORE_INDEX elsewhere."""
        h = self.trunk.hidden_states(idx)
        head = self.score(h.gather(1, last[:, None, None].expand(-1, 1, h.size(-1)))).squeeze((1, 2))
        # The output head only at the answer's positions: prompts are most of a row.
        rows, cols = (targets != IGNORE_INDEX).nonzero(as_tuple=True)
        logp = token_logprobs(self.trunk.lm_head(h[rows, cols]).float(), targets[rows, cols])
        total = torch.zeros(len(idx), device=idx.device).index_add(0, rows, logp)
        count = torch.zeros(len(idx), device=idx.device).index_add(0, rows, torch.ones_like(logp))
        return head.float() + self.likelihood_scale * total / count.clamp(min=1)


class ValueModel(_ScalarHead):
    """PPO's critic: a value at every token, no output head; it starts from the reward model."""

    kind = "value"

    def __init__(self, cfg: GPTConfig):
        super().__init__(cfg, lm_head=False)

    def forward(self, idx: Tensor) -> Tensor:
        """Values (B, T)."""
        return self.score(self.trunk.hidden_states(idx)).squeeze(-1).float()


class PolicyValueModel(nn.Module):
    """PPO's trained pair: the policy (a GPT) and its critic, one module so one optimizer,
    one DDP wrapper and one checkpoint hold both. Readers of language models get `.policy`."""

    kind = "policy_value"

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.policy = GPT(cfg)
        self.value = ValueModel(cfg)

    @property
    def language_model(self) -> GPT:
        return self.policy

    def forward(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Policy logits (B, T, vocab) and values (B, T)."""
        return self.policy(idx), self.value(idx)
