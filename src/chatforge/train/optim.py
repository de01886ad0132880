"""Optimizers and learning-rate schedules shared by every training stage.

AdamW for everything, or Muon for the 2-D weight matrices inside the blocks (momentum
orthogonalised by a Newton-Schulz iteration) with AdamW for embeddings, the output head and
norm weights, as in modded-nanogpt and nanochat.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor, distribute_tensor

from chatforge.config import TrainConfig
from chatforge.device import fast_bf16_matmul


def orthogonalize(g: Tensor, steps: int = 5, dtype: torch.dtype = torch.float32) -> Tensor:
    """Approximate U V^T of each matrix's SVD with a quintic Newton-Schulz iteration.

    g is one matrix or a stack (..., m, n). The coefficients (3.4445, -4.7750, 2.0315) push
    singular values towards 1 fast; the result is not exactly orthogonal, which Muon's authors
    found does not hurt, and it is why the reference Muon iterates in bf16. `baddbmm` folds
    the polynomial's scalings into the matmuls.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.to(dtype)
    single = x.dim() == 2
    if single:
        x = x[None]
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b G + c G^2
        x = torch.baddbmm(x, poly, x, beta=a)  # a X + (b G + c G^2) X
    if tall:
        x = x.mT
    return (x[0] if single else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """SGD with Nesterov momentum whose update is orthogonalised per matrix.

    Matrices of one shape are orthogonalised together as a batch: at width 256 a lone
    Newton-Schulz matmul is too small to run the CPU near its peak. `ns_dtype` is bf16 where
    bf16 matmuls are fast (as in the reference Muon), which took the iteration from about
    15% of a default CPU training step to about 5%.
    """

    def __init__(
        self,
        params,
        lr: float = 0.02,
        momentum: float = 0.95,
        ns_steps: int = 5,
        ns_dtype: torch.dtype = torch.float32,
    ):
        super().__init__(params, dict(lr=lr, momentum=momentum, ns_steps=ns_steps))
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            by_shape: dict[torch.Size, list[tuple[Tensor, Tensor]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - group["momentum"])
                update = p.grad.lerp(buf, group["momentum"])  # Nesterov look-ahead
                by_shape.setdefault(p.shape, []).append((p, update))
            for shape, items in by_shape.items():
                # An FSDP shard holds some rows of a matrix; orthogonalising needs all of them,
                # so each rank gathers the whole update, orthogonalises and keeps its rows.
                stacked = torch.stack([_full(u) for _, u in items])
                updates = orthogonalize(stacked, group["ns_steps"], self.ns_dtype)
                # Scale so the update's RMS does not shrink for wide-but-short matrices.
                scale = max(1.0, shape[0] / shape[1]) ** 0.5
                for (p, _), update in zip(items, updates, strict=True):
                    p.add_(_like(update, p), alpha=-group["lr"] * scale)


def _full(t: Tensor) -> Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def _like(full: Tensor, p: Tensor) -> Tensor:
    """`full` laid out as `p`: this rank's shard of it (cut locally) when p is an FSDP shard."""
    if not isinstance(p, DTensor):
        return full
    return distribute_tensor(full, p.device_mesh, p.placements, src_data_rank=None)


def build_optimizers(model: nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """One or two optimizers; each param group remembers its base lr as `initial_lr`."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    fused = {"fused": True} if all(p.device.type in ("cuda", "cpu") for _, p in params) else {}
    if cfg.optimizer == "muon":
        matrices = [p for n, p in params if p.dim() == 2 and ".layers." in f".{n}"]
        ids = {id(p) for p in matrices}
        rest = [p for _, p in params if id(p) not in ids]
        ns_dtype = torch.bfloat16 if matrices and fast_bf16_matmul(matrices[0].device) else torch.float32
        opts: list[torch.optim.Optimizer] = [Muon(matrices, lr=cfg.matrix_lr, ns_dtype=ns_dtype)]
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
