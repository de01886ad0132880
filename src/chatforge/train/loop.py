"""The one training loop, shared by pre-training, SFT and reward modelling.

A stage supplies a `TrainTask` (model, batches, loss, evaluation, samples); the loop owns the
optimizer, schedule, gradient accumulation, clipping, distributed data parallelism,
checkpoints with exact resume, metrics JSONL and the progress bar.

Exact resume: a checkpoint holds the weights, the optimizer state, the data generator's RNG
state and the step, so a run killed after a checkpoint and started again ends with the same
final loss as one that never stopped (same seed, same machine).
"""

from __future__ import annotations

import base64
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from chatforge.config import TrainConfig
from chatforge.device import autocast, keep_cpu_memory_mapped, peak_flops
from chatforge.errors import ChatforgeError, ConfigError, RunDirError
from chatforge.model.checkpoint import save_model
from chatforge.runs import MetricsWriter, atomic_path, atomic_write_json, read_json
from chatforge.train.optim import build_optimizers, lr_multiplier, set_lr

Batch = tuple[Tensor, ...]


@dataclass
class TrainTask:
    """What a stage gives the loop."""

    model: nn.Module
    train_batch: Callable[[torch.Generator, int], Batch]  # (data rng, step) -> micro-batch
    loss_fn: Callable[[nn.Module, Batch], Tensor]
    tokens_per_batch: int  # tokens in one micro-batch, for throughput
    flops_per_token: float
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None
    sample: Callable[[nn.Module], list[str]] | None = None
    save_extra: dict = field(default_factory=dict)  # stored in model.json


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    tokens: int
    wall_s: float
    tokens_per_s: float
    mfu: float
    eval: dict[str, float]
    samples: list[str]
    resumed_from: int


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> _Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size())


def _rng_to_str(state: Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode()


def _rng_from_str(s: str) -> Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def _optimizer_tensors(optimizers: list[torch.optim.Optimizer]) -> tuple[dict, list]:
    """Flatten optimizer states to named tensors (safetensors) + JSON-able groups."""
    tensors, groups = {}, []
    for i, opt in enumerate(optimizers):
        sd = opt.state_dict()
        for pid, st in sd["state"].items():
            for name, value in st.items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"{i}.{pid}.{name}"] = t.detach().cpu().contiguous()
        groups.append(sd["param_groups"])
    return tensors, groups


def _load_optimizer_tensors(optimizers, tensors: dict[str, Tensor], groups: list) -> None:
    for i, opt in enumerate(optimizers):
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            o, pid, name = key.split(".", 2)
            if int(o) == i:
                state.setdefault(int(pid), {})[name] = value
        opt.load_state_dict({"state": state, "param_groups": groups[i]})


def _keep_previous(path: Path) -> None:
    """Move the last save aside (a rename, not a copy) before writing the next one."""
    if path.exists():
        os.replace(path, path.with_name(path.stem + ".prev" + path.suffix))


def _saved_step(path: Path) -> int | None:
    if not path.exists():
        return None
    with safe_open(str(path), "pt") as f:
        step = (f.metadata() or {}).get("step")
    return int(step) if step is not None else None


def _file_at_step(out_dir: Path, name: str, step: int) -> Path:
    """The current or previous save of `name` written at `step` (a crash mid-checkpoint
    leaves a newer file next to an older trainer.json; the previous one then matches)."""
    for candidate in (out_dir / name, out_dir / name.replace(".safetensors", ".prev.safetensors")):
        if _saved_step(candidate) == step:
            return candidate
    raise RunDirError(f"{out_dir}: no {name} saved at step {step}; delete the directory to restart")


def save_checkpoint(
    out_dir: Path,
    model: nn.Module,
    optimizers: list[torch.optim.Optimizer],
    trainer_state: dict,
    extra: dict,
) -> None:
    """Weights, optimizer and trainer state. trainer.json is written last and names the step;
    the previous weights and optimizer are kept until then, so a kill at any moment leaves a
    consistent checkpoint to resume from."""
    step = trainer_state["step"]
    _keep_previous(out_dir / "model.safetensors")
    save_model(model, out_dir, extra=extra, step=step)
    tensors, groups = _optimizer_tensors(optimizers)
    _keep_previous(out_dir / "optimizer.safetensors")
    with atomic_path(out_dir / "optimizer.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"step": str(step)})
    atomic_write_json(out_dir / "trainer.json", {**trainer_state, "optimizer_groups": groups})


def _resume(
    out_dir: Path, key: str, model: nn.Module, optimizers, data_gen: torch.Generator
) -> dict | None:
    path = out_dir / "trainer.json"
    if not path.exists():
        return None
    state = read_json(path)
    if state.get("key") != key:
        return None  # a different configuration wrote it: start afresh
    weights = load_file(str(_file_at_step(out_dir, "model.safetensors", state["step"])))
    if getattr(model, "cfg", None) is not None and model.cfg.tie_embeddings:
        weights["lm_head.weight"] = weights["embed_tokens.weight"]
    model.load_state_dict(weights)
    optimizer_file = _file_at_step(out_dir, "optimizer.safetensors", state["step"])
    _load_optimizer_tensors(optimizers, load_file(str(optimizer_file)), state["optimizer_groups"])
    data_gen.set_state(_rng_from_str(state["data_rng"]))
    torch.set_rng_state(_rng_from_str(state["torch_rng"]))
    return state


def train(
    task: TrainTask,
    cfg: TrainConfig,
    out_dir: Path,
    metrics_path: Path,
    seed: int,
    key: str,
    device: torch.device | None = None,
    console: Console | None = None,
    stage: str = "train",
) -> TrainResult:
    """Train until max_steps or the time budget, whichever comes first; resume if possible."""
    console = console or Console(stderr=True)
    device = device or next(task.model.parameters()).device
    ddp = init_distributed(device)
    if cfg.grad_accum % ddp.world:
        raise ConfigError(
            f"grad_accum={cfg.grad_accum} must be a multiple of the world size {ddp.world} "
            "so the global batch stays fixed"
        )
    accum = cfg.grad_accum // ddp.world
    if device.type == "cpu":
        keep_cpu_memory_mapped()
    torch.manual_seed(seed)
    model = task.model
    optimizers = build_optimizers(model, cfg)
    # One data stream for all ranks: every rank draws all grad_accum micro-batches of a step and
    # trains on its own share, so DDP over k ranks equals gradient accumulation in one process.
    data_gen = torch.Generator().manual_seed(seed * 1009)
    out_dir = Path(out_dir)
    resumed = _resume(out_dir, key, model, optimizers, data_gen)
    step = resumed["step"] if resumed else 0
    elapsed = resumed["elapsed"] if resumed else 0.0
    tokens = resumed["tokens"] if resumed else 0
    last_loss = resumed["last_loss"] if resumed else float("nan")
    resumed_tokens = tokens
    if resumed:
        console.print(f"[cyan]resuming {stage} from step {step} ({elapsed:.0f}s trained)[/cyan]")
    metrics = MetricsWriter(metrics_path, truncate_after_step=step if resumed else None)

    wrapped: nn.Module = model
    if ddp.world > 1:
        wrapped = nn.parallel.DistributedDataParallel(model)
    compiled = torch.compile(wrapped) if cfg.compile else wrapped
    if cfg.compile and ddp.main:
        # The time budget includes compiling: it pays off only for runs of minutes.
        console.print(f"[dim]{stage}: torch.compile on; the first step compiles (10-60 s)[/dim]")
    peak = peak_flops(device)
    tokens_per_step = task.tokens_per_batch * cfg.grad_accum
    budget = cfg.time_budget

    def progress_of(step: int, elapsed: float) -> float:
        p = step / cfg.max_steps
        return max(p, elapsed / budget) if budget > 0 else p

    def state_dict() -> dict:
        return {
            "key": key, "step": step, "elapsed": elapsed, "tokens": tokens,
            "last_loss": last_loss, "seed": seed,
            "data_rng": _rng_to_str(data_gen.get_state()),
            "torch_rng": _rng_to_str(torch.get_rng_state()),
        }

    eval_result: dict[str, float] = {}
    evaluated_step, saved_step = -1, step

    def evaluate() -> None:
        nonlocal eval_result, evaluated_step
        model.eval()
        eval_result = task.evaluate(model)
        model.train()
        evaluated_step = step
        metrics.write({"step": step, **eval_result})
        console.print(f"  step {step}: " + " ".join(f"{k} {v:.4f}" for k, v in eval_result.items()))

    def checkpoint(final: bool) -> None:
        nonlocal saved_step
        save_checkpoint(out_dir, model, optimizers, state_dict(), task.save_extra)
        saved_step = step
        if final:
            for prev in out_dir.glob("*.prev.safetensors"):
                prev.unlink()

    window_tokens, window_time = 0, 0.0
    bar = Progress(
        TextColumn(f"[bold]{stage}[/bold]"), BarColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not ddp.main,
        transient=False,
    )
    resumed_from = step
    train_time = 0.0  # optimizer-step time of this process, for throughput
    with bar:
        bar_task = bar.add_task("", total=1000)
        model.train()
        while progress_of(step, elapsed) < 1.0:
            t0 = time.perf_counter()
            set_lr(optimizers, lr_multiplier(progress_of(step, elapsed), cfg))
            loss_sum = 0.0
            for micro in range(cfg.grad_accum):
                drawn = task.train_batch(data_gen, step)
                if micro // accum != ddp.rank:
                    continue
                batch = tuple(t.to(device) for t in drawn)
                sync = ddp.world == 1 or micro % accum == accum - 1
                ctx = wrapped.no_sync() if not sync and ddp.world > 1 else nullcontext()
                with ctx, autocast(device):
                    loss = task.loss_fn(compiled, batch) / accum
                loss.backward()
                loss_sum += loss.item()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            for opt in optimizers:
                opt.step()
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            if ddp.world > 1:
                t = torch.tensor([loss_sum], device=device)
                dist.all_reduce(t)
                loss_sum = t.item() / ddp.world
            dt = time.perf_counter() - t0
            step += 1
            elapsed += dt
            train_time += dt
            tokens += tokens_per_step
            last_loss = loss_sum
            window_tokens += tokens_per_step
            window_time += dt
            if not math.isfinite(loss_sum):
                raise ChatforgeError(f"{stage}: loss became {loss_sum} at step {step}; lower the lr")
            done = progress_of(step, elapsed) >= 1.0
            if ddp.main and (step % cfg.log_every == 0 or done):
                tps = window_tokens / max(window_time, 1e-9)
                mfu = tps * task.flops_per_token / peak
                record = {
                    "step": step, "loss": loss_sum, "lr_mult": lr_multiplier(progress_of(step, elapsed), cfg),
                    "tokens": tokens, "tokens_per_s": tps, "mfu": mfu, "elapsed_s": elapsed,
                }
                metrics.write(record)
                bar.update(
                    bar_task, completed=1000 * min(1.0, progress_of(step, elapsed)),
                    description=f"step {step} loss {loss_sum:.3f} {tps:,.0f} tok/s mfu {mfu:.0%}",
                )
                window_tokens, window_time = 0, 0.0
            if task.evaluate and ddp.main and (step % cfg.eval_every == 0 or done):
                evaluate()
            if task.sample and ddp.main and cfg.sample_every and step % cfg.sample_every == 0:
                model.eval()
                for s in task.sample(model):
                    console.print(f"  [dim]sample:[/dim] {s!r}")
                model.train()
            if ddp.main and (step % cfg.checkpoint_every == 0 or done):
                checkpoint(final=done)
            if ddp.world > 1:
                dist.barrier()
            elapsed += time.perf_counter() - t0 - dt  # eval and checkpoint time count as wall time
    # The time budget can run out during an evaluation or a save of a step that was not the
    # last by its own time: evaluate and save that last step all the same.
    if ddp.main and task.evaluate and evaluated_step != step:
        evaluate()
    if ddp.main and saved_step != step:
        checkpoint(final=True)
    model.eval()
    samples = task.sample(model) if task.sample and ddp.main else []
    tps = (tokens - resumed_tokens) / max(train_time, 1e-9)
    return TrainResult(
        steps=step, final_loss=last_loss, tokens=tokens, wall_s=elapsed, tokens_per_s=tps,
        mfu=tps * task.flops_per_token / peak, eval=eval_result, samples=samples,
        resumed_from=resumed_from,
    )

