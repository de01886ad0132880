"""Optimizers and learning-rate schedules shared by every training stage.

AdamW for everything, or Muon for the 2-D weight matrices inside the blocks (momentum
orthogonalised by a Newton-Schulz iteration) with AdamW for embeddings, the output head and
norm weights, as in modded-nanogpt and nanochat.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from chatforge.config import TrainConfig


def orthogonalize(g: Tensor, steps: int = 5) -> Tensor:
    """Approximate U V^T of g's SVD with a quintic Newton-Schulz iteration.

    The coefficients (3.4445, -4.7750, 2.0315) push singular values towards 1 fast; the
    result is not exactly orthogonal, which Muon's authors found does not hurt.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.float()
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """SGD with Nesterov momentum whose update is orthogonalised per matrix."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, ns_steps: int = 5):
        super().__init__(params, dict(lr=lr, momentum=momentum, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - group["momentum"])
                update = p.grad.lerp(buf, group["momentum"])  # Nesterov look-ahead
                update = orthogonalize(update, group["ns_steps"])
                # Scale so the update's RMS does not shrink for wide-but-short matrices.
                scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
                p.add_(update, alpha=-group["lr"] * scale)


def build_optimizers(model: nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """One or two optimizers; each param group remembers its base lr as `initial_lr`."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    fused = {"fused": True} if all(p.device.type in ("cuda", "cpu") for _, p in params) else {}
    if cfg.optimizer == "muon":
        matrices = [p for n, p in params if p.dim() == 2 and ".layers." in f".{n}"]
        ids = {id(p) for p in matrices}
        rest = [p for _, p in params if id(p) not in ids]
        opts: list[torch.optim.Optimizer] = [Muon(matrices, lr=cfg.matrix_lr)]
        if rest:
            opts.append(_adamw(rest, cfg, fused))
    else:
        opts = [_adamw([p for _, p in params], cfg, fused)]
    for opt in opts:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return opts


def _adamw(params: list[Tensor], cfg: TrainConfig, fused: dict) -> torch.optim.AdamW:
    # Weight decay on matrices only: decaying norm gains and embeddings hurts small models.
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, **fused)


def lr_multiplier(progress: float, cfg: TrainConfig) -> float:
    """LR factor at training progress in [0, 1]: warmup, then WSD or cosine decay."""
    if cfg.warmup_frac > 0 and progress < cfg.warmup_frac:
        return (progress + 1e-9) / cfg.warmup_frac
    floor = cfg.min_lr_ratio
    if cfg.schedule == "cosine":
        span = max(1e-9, 1 - cfg.warmup_frac)
        t = min(1.0, (progress - cfg.warmup_frac) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    decay_start = 1 - cfg.cooldown_frac
    if progress < decay_start:
        return 1.0
    t = min(1.0, (progress - decay_start) / max(1e-9, cfg.cooldown_frac))
    return 1.0 - (1.0 - floor) * t


def set_lr(optimizers: list[torch.optim.Optimizer], multiplier: float) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * multiplier
