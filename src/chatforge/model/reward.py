"""A scalar head on the GPT trunk: the reward model (score read at the last token) and, for
PPO, the value model (a score at every token). The trunk is the same `GPT` as the policy's,
without its output head, so it starts from the SFT checkpoint's weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from chatforge.model.gpt import GPT, GPTConfig


class RewardModel(nn.Module):
    """GPT trunk + linear head to one number per position (the reward model)."""

    kind = "reward"

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.trunk = GPT(cfg, lm_head=False)
        self.score = nn.Linear(cfg.n_embd, 1, bias=True)
        nn.init.normal_(self.score.weight, std=1 / (cfg.n_embd + 1) ** 0.5)
        nn.init.zeros_(self.score.bias)

    def forward(self, idx: Tensor, last: Tensor | None = None) -> Tensor:
        """Scores (B, T); with `last` (B,) the index of each row's last real token, (B,)."""
        scores = self.score(self.trunk.hidden_states(idx)).squeeze(-1).float()
        if last is None:
            return scores
        return scores.gather(1, last[:, None]).squeeze(1)

    @torch.no_grad()
    def init_trunk_from(self, policy: GPT) -> None:
        """Copy a policy's trunk weights (its output head is not part of the trunk)."""
        own = self.trunk.state_dict()
        self.trunk.load_state_dict({k: v for k, v in policy.state_dict().items() if k in own})


class ValueModel(RewardModel):
    """PPO's critic: the same module, saved under its own kind."""

    kind = "value"


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
