"""The one training loop, shared by every trained stage (pre-training, SFT, reward model,
DPO, PPO, GRPO).

A stage supplies a `TrainTask`; the loop owns the optimizer, schedule, gradient accumulation,
clipping, distributed data parallelism, checkpoints with exact resume, metrics JSONL and the
progress bar. The task contract:

- `train_batch(rng, step, micro)`: micro-batch `micro` (0 <= micro < grad_accum) of optimizer
  step `step`, drawn with `rng`, a generator seeded from (seed, step, micro) alone. Each rank
  draws only its own micro-batches, so k ranks see exactly what one process accumulating
  grad_accum micro-batches sees.
- `loss_fn(model, batch) -> (loss, metrics)`: the model is the wrapped module (DDP,
  torch.compile), so everything that trains goes through its `forward`; the metrics (floats or
  0-d tensors, the same names on every rank) are averaged over micro-batches and ranks and
  logged with the loss.
- `between_steps(model, step)`: optional work that is not a micro-batch (PPO's rollouts), run
  on every rank before each step with the unwrapped model in eval mode; each rank does its own
  share.
- `state()` / `load_state(dict)`: optional task state saved in the checkpoint's trainer.json
  (an adaptive KL coefficient, a rollout buffer), so exact resume holds for every stage.

Distributed: under torchrun (gloo on CPU, NCCL on GPU) `train.parallel = "ddp"` keeps a full
replica per process; `"fsdp"` shards parameters, gradients and optimizer state with FSDP2
(`fully_shard` on every transformer block, then the root; the optimizer is built after
sharding). Either way the global batch is grad_accum micro-batches, whatever the world size,
and a save holds the full (gathered) weights and optimizer state in one layout, so a run
resumes at another world size or under the other kind of parallelism. Under FSDP every rank
takes part in each forward, so evaluation and sampling run on every rank (rank 0 alone
logs), `between_steps` must make the same forward calls on every rank, and when training ends
the model is left gathered (full weights on each rank), so the stage's rank-0 code after
`train` can use it alone. Matmuls run in `train.precision` (bf16 autocast where bf16 is fast,
see chatforge.device); weights and optimizer state stay fp32.

Checkpoints: each save is written into a fresh directory, then one pointer file (`LATEST`) is
switched to it with an atomic rename, and older saves are deleted after that. A kill at any
moment leaves LATEST naming a complete save; what a kill left half-written is removed on the
next start. A checkpoint remembers the settings that decide what is trained (its identity):
a resume with other such settings (model shape, the user's data, optimizer) is refused in one
line unless `restart` is set, while settings that only say how long or how visibly to train
(RESUMABLE: max steps, time budget, intervals) may change between runs. What earlier stages
made (token shards, the base checkpoint) is tracked apart: when it changed, the pipeline has
re-run those stages on purpose, and training starts afresh, saying so.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from chatforge.config import RESUMABLE, TrainConfig
from chatforge.cost.hardware import get_device
from chatforge.device import (
    autocast,
    compute_dtype,
    device_name,
    keep_cpu_memory_mapped,
    peak_flops,
)
from chatforge.errors import ChatforgeError, ConfigError, RunDirError
from chatforge.model.checkpoint import LATEST, load_weights, save_model
from chatforge.model.gpt import Block
from chatforge.runs import MetricsWriter, atomic_write_json, atomic_write_text, fsync_dir, read_json
from chatforge.train.optim import build_optimizers, lr_multiplier, set_lr

Batch = tuple[Tensor, ...]
Metrics = dict[str, float | Tensor]


@dataclass
class TrainTask:
    """What a stage gives the loop (see the module docstring for the contract)."""

    model: nn.Module
    train_batch: Callable[[torch.Generator, int, int], Batch]
    loss_fn: Callable[[nn.Module, Batch], tuple[Tensor, Metrics]]
    tokens_per_batch: int  # tokens in one micro-batch, for throughput
    flops_per_token: float
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None
    sample: Callable[[nn.Module], list[str]] | None = None
    between_steps: Callable[[nn.Module, int], None] | None = None
    state: Callable[[], dict[str, Any]] | None = None
    load_state: Callable[[dict[str, Any]], None] | None = None
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
    metrics: dict[str, float] = field(default_factory=dict)  # the task's, at the last step


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device | None = None) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


PLANNING_MFU = 0.4  # assumed for the estimate printed at the start (nanochat-level on H100s)


def expected_run(steps: int, tokens_per_step: int, flops_per_token: float, peak: float,
                 devices: int, gpu_name: str | None) -> str:
    """The expected wall time (and, on a GPU in the cost table, its rental cost) of a run of
    `steps`, at PLANNING_MFU of the peak on every device: printed before training starts."""
    tokens = steps * tokens_per_step
    hours = tokens * flops_per_token / (PLANNING_MFU * peak * devices) / 3600
    line = (f"{steps:,} steps x {tokens_per_step:,} tokens = {tokens / 1e9:.3g}B tokens; at "
            f"{PLANNING_MFU:.0%} MFU of {peak / 1e12:.3g} TFLOP/s x {devices}: expected {hours:.3g} h")
    if gpu_name:
        spec = get_device(gpu_name)
        line += f", about ${hours * devices * spec.usd_per_hour:,.0f} ({spec.key} at ${spec.usd_per_hour:.2f}/h)"
    return line


def barrier(ddp: Dist) -> None:
    if ddp.world > 1:
        dist.barrier()


def micro_rng(seed: int, step: int, micro: int) -> torch.Generator:
    """The generator of one micro-batch: a function of (seed, step, micro) alone, so any rank
    can draw any micro-batch and a resumed run draws what the uninterrupted one drew."""
    digest = hashlib.blake2b(f"{seed}/{step}/{micro}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def rank_micros(rank: int, world: int, grad_accum: int) -> range:
    """The micro-batch indices of a step that one rank draws and trains on (its share)."""
    per_rank = grad_accum // world
    return range(rank * per_rank, (rank + 1) * per_rank)


def identity(cfg: TrainConfig, **inputs: Any) -> dict[str, Any]:
    """What decides a checkpoint's weights: the training settings outside RESUMABLE, plus the
    stage's inputs (model shape, seed, data digests, ...)."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUMABLE}
    return json.loads(json.dumps({"train": settings, **inputs}, sort_keys=True, default=str))


def weights_layout(model: nn.Module) -> str:
    """A digest of the model's kind and its parameters' names and shapes."""
    layout = [getattr(model, "kind", type(model).__name__)]
    layout += [f"{name}:{tuple(p.shape)}" for name, p in model.named_parameters()]
    return hashlib.sha256("\n".join(layout).encode()).hexdigest()[:16]


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} {_short(a)} -> {_short(b)}")
    return out


def _short(v: Any) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= 24 else s[:21] + "..."


# ---- checkpoints ----


def _rng_to_str(state: Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode()


def _rng_from_str(s: str) -> Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def _full(t: Tensor) -> Tensor:
    """The whole tensor of an FSDP shard (a collective: every rank calls it in turn)."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def _optimizer_tensors(optimizers: list[torch.optim.Optimizer]) -> tuple[dict, list]:
    """Flatten optimizer states to named tensors (safetensors) + JSON-able groups; sharded
    states are gathered, so the layout is the same under DDP and FSDP at any world size."""
    tensors, groups = {}, []
    for i, opt in enumerate(optimizers):
        sd = opt.state_dict()
        for pid, st in sd["state"].items():
            for name, value in st.items():
                t = _full(value) if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"{i}.{pid}.{name}"] = t.detach().cpu().contiguous()
        groups.append(sd["param_groups"])
    return tensors, groups


def _load_optimizer_tensors(optimizers, tensors: dict[str, Tensor], groups: list) -> None:
    for i, opt in enumerate(optimizers):
        params = [p for g in opt.param_groups for p in g["params"]]
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            o, pid, name = key.split(".", 2)
            if int(o) == i:
                p = params[int(pid)]
                if isinstance(p, DTensor) and value.shape == p.shape:
                    # This rank's shard of the saved full tensor, cut locally (no collective).
                    value = distribute_tensor(value.to(p.device), p.device_mesh, p.placements,
                                              src_data_rank=None)
                state.setdefault(int(pid), {})[name] = value
        opt.load_state_dict({"state": state, "param_groups": groups[i]})


def shard_model(model: nn.Module, dtype: torch.dtype) -> list[FSDPModule]:
    """FSDP2 in place: each transformer block is one unit (gathered just before it runs),
    then the root holds the rest (embeddings, final norm, heads). Parameters are gathered in
    the compute dtype and gradients reduced in fp32."""
    policy = MixedPrecisionPolicy(param_dtype=dtype if dtype != torch.float32 else None,
                                  reduce_dtype=torch.float32)
    for block in [m for m in model.modules() if isinstance(m, Block)]:
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def _fault_point(name: str) -> None:
    """Die here as `kill -9` would, when CHATFORGE_FAULT names this point (tests only)."""
    if os.environ.get("CHATFORGE_FAULT") == name:
        os._exit(137)


SAVE_POINTS = ("model", "optimizer", "trainer", "renamed", "switched")


def save_checkpoint(
    out_dir: Path, model: nn.Module, optimizer_state: tuple[dict, list], trainer_state: dict,
    extra: dict, weights: dict[str, Tensor] | None = None,
) -> Path:
    """Write a complete save into a new directory, then switch LATEST to it in one rename.
    `optimizer_state` is `_optimizer_tensors(...)`; `weights` the gathered state of a
    sharded model (else the model's own)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"step-{trainer_state['step']:07d}-{time.time_ns():x}"
    tmp = out_dir / f".{name}.tmp"
    tmp.mkdir()
    save_model(model, tmp, extra=extra, step=trainer_state["step"], state=weights)
    _fault_point("model")
    tensors, groups = optimizer_state
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    _fault_point("optimizer")
    atomic_write_json(tmp / "trainer.json", {**trainer_state, "optimizer_groups": groups})
    _fault_point("trainer")
    fsync_dir(tmp)
    os.replace(tmp, out_dir / name)
    fsync_dir(out_dir)
    _fault_point("renamed")
    atomic_write_text(out_dir / LATEST, name + "\n")
    _fault_point("switched")
    clean_checkpoint_dir(out_dir)
    return out_dir / name


def clean_checkpoint_dir(out_dir: Path) -> None:
    """Delete every save but the one LATEST names, and whatever a kill left half-written."""
    if not out_dir.is_dir():
        return
    keep = (out_dir / LATEST).read_text().strip() if (out_dir / LATEST).is_file() else None
    for entry in out_dir.iterdir():
        stale_save = entry.is_dir() and entry.name.startswith(("step-", ".step-")) and entry.name != keep
        if stale_save:
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.endswith(".tmp"):
            entry.unlink(missing_ok=True)


def latest_save(out_dir: Path) -> Path | None:
    pointer = out_dir / LATEST
    if not pointer.is_file():
        return None
    save = out_dir / pointer.read_text().strip()
    if not (save / "trainer.json").is_file():
        raise RunDirError(f"{pointer}: names {save.name}, which is not a complete save")
    return save


def check_writable(out_dir: Path) -> None:
    """Fail now, not at the first save minutes later, when the output cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"{out_dir}: cannot write checkpoints here ({exc.strerror})") from None


def _check_identity(out_dir: Path, ident: dict, upstream: dict, restart: bool, stage: str,
                    console: Console) -> None:
    """Refuse, in one line, to resume or overwrite a save trained with other settings (unless
    `restart`); train afresh, saying so, when only what upstream stages made has changed.
    Run by rank 0 alone, before any rank loads."""
    save = latest_save(out_dir)
    if save is None:
        return
    state = read_json(save / "trainer.json")
    if state.get("identity") != ident and not restart:
        changes = _differences(state.get("identity") or {}, ident)
        raise ChatforgeError(
            f"{stage}: {out_dir} holds a checkpoint (step {state.get('step')}) trained with other "
            f"settings ({'; '.join(changes[:4]) or 'unknown'}); pass --restart to train afresh "
            "and replace it"
        )
    if state.get("identity") == ident and state.get("upstream", {}) == upstream:
        return
    if state.get("identity") == ident:
        changed = ", ".join(k for k in upstream if state.get("upstream", {}).get(k) != upstream[k])
        console.print(f"[yellow]{stage}: its inputs changed ({changed}); training afresh[/yellow]")
    (out_dir / LATEST).unlink()
    clean_checkpoint_dir(out_dir)


def _resume_weights(out_dir: Path, model: nn.Module) -> tuple[dict, Path] | None:
    """(trainer state, save) of the latest save after loading its full weights into the
    (not yet sharded) model, or None to start afresh."""
    save = latest_save(out_dir)
    if save is None:
        return None
    state = read_json(save / "trainer.json")
    load_weights(model, load_file(str(save / "model.safetensors")), save / "model.safetensors")
    torch.set_rng_state(_rng_from_str(state["torch_rng"]))
    return state, save


def _resume_optimizers(save: Path, state: dict, optimizers) -> None:
    _load_optimizer_tensors(
        optimizers, load_file(str(save / "optimizer.safetensors")), state["optimizer_groups"]
    )


# ---- the loop ----


@dataclass
class _Run:
    """The loop's mutable state, saved in trainer.json."""

    step: int = 0
    elapsed: float = 0.0
    tokens: int = 0
    last_loss: float = float("nan")
    last_metrics: dict[str, float] = field(default_factory=dict)


class Trainer:
    """One stage's training: resume, then steps (draw, forward/backward, optimizer), logging,
    evaluation and saving, until max_steps or the time budget, whichever comes first."""

    def __init__(self, task: TrainTask, cfg: TrainConfig, out_dir: Path, metrics_path: Path,
                 seed: int, ident: dict, upstream: dict, device: torch.device, console: Console,
                 stage: str, restart: bool):
        self.task, self.cfg, self.out_dir, self.seed = task, cfg, Path(out_dir), seed
        self.ident, self.upstream = ident, upstream
        self.device, self.console, self.stage = device, console, stage
        self.ddp = init_distributed(device)
        if cfg.grad_accum % self.ddp.world:
            raise ConfigError(
                f"{stage}.train.grad_accum={cfg.grad_accum} must be a multiple of the world size "
                f"{self.ddp.world} so the global batch stays fixed"
            )
        self.accum = cfg.grad_accum // self.ddp.world  # micro-batches of this rank per step
        if self.ddp.main:
            check_writable(self.out_dir)
            clean_checkpoint_dir(self.out_dir)
            _check_identity(self.out_dir, ident, upstream, restart, stage, console)
        barrier(self.ddp)
        if device.type == "cpu":
            keep_cpu_memory_mapped()
        elif device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # what fp32 matmuls remain
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(seed)
        self.model = task.model
        self.dtype = compute_dtype(device, cfg.precision)
        self.sharded = self.ddp.world > 1 and cfg.parallel == "fsdp"
        self.run = _Run()
        found = _resume_weights(self.out_dir, self.model)  # full weights, before sharding
        self.fsdp_units = shard_model(self.model, self.dtype) if self.sharded else []
        self.optimizers = build_optimizers(self.model, cfg)  # after sharding: over the shards
        resumed = found[0] if found else None
        if found:
            _resume_optimizers(found[1], found[0], self.optimizers)
            self.run = _Run(resumed["step"], resumed["elapsed"], resumed["tokens"],
                            resumed["last_loss"], resumed.get("last_metrics", {}))
            if task.load_state and "task_state" in resumed:
                task.load_state(resumed["task_state"])
            if self.ddp.main:
                console.print(f"[cyan]resuming {stage} from step {self.run.step} "
                              f"({self.run.elapsed:.0f}s trained)[/cyan]")
        self.resumed_from, self.resumed_tokens = self.run.step, self.run.tokens
        self.metrics = MetricsWriter(metrics_path, truncate_after_step=self.run.step if resumed else None) \
            if self.ddp.main else None
        wrapped: nn.Module = self.model
        if self.ddp.world > 1 and not self.sharded:
            wrapped = nn.parallel.DistributedDataParallel(self.model)
        self.wrapped = wrapped
        self.compiled = torch.compile(wrapped) if cfg.compile else wrapped
        if cfg.compile and self.ddp.main:
            # The time budget includes compiling: it pays off only for runs of minutes.
            console.print(f"[dim]{stage}: torch.compile on; the first step compiles (10-60 s)[/dim]")
        self.peak = peak_flops(device, self.dtype)  # of the dtype the matmuls run in
        if self.ddp.main and cfg.time_budget == 0 and self.run.step < cfg.max_steps:
            gpu = device_name("cuda") if device.type == "cuda" else None
            plan = expected_run(cfg.max_steps - self.run.step, task.tokens_per_batch * cfg.grad_accum,
                                task.flops_per_token, self.peak, self.ddp.world, gpu)
            console.print(f"[dim]{stage}: {plan}[/dim]")
        self.eval_result: dict[str, float] = {}
        self.evaluated_step, self.saved_step = -1, self.run.step
        self.train_time = 0.0
        self.window_tokens, self.window_time = 0, 0.0

    def progress(self) -> float:
        p = self.run.step / self.cfg.max_steps
        budget = self.cfg.time_budget
        return max(p, self.run.elapsed / budget) if budget > 0 else p

    # -- phases --

    def step(self) -> None:
        """One optimizer step: this rank's micro-batches, averaged metrics, clip, update."""
        task, cfg, ddp = self.task, self.cfg, self.ddp
        if task.between_steps:
            self.model.eval()
            task.between_steps(self.model, self.run.step)
            self.model.train()
        set_lr(self.optimizers, lr_multiplier(self.progress(), cfg))
        sums: dict[str, float] = {"loss": 0.0}
        for i, micro in enumerate(rank_micros(ddp.rank, ddp.world, cfg.grad_accum)):
            drawn = task.train_batch(micro_rng(self.seed, self.run.step, micro), self.run.step, micro)
            batch = self._to_device(drawn)
            sync = ddp.world == 1 or i == self.accum - 1  # reduce gradients once per step
            if self.sharded:
                self.model.set_requires_gradient_sync(sync)
            ctx = self.wrapped.no_sync() if not sync and not self.sharded else nullcontext()
            with ctx, autocast(self.device, self.dtype):
                loss, metrics = task.loss_fn(self.compiled, batch)
            (loss / self.accum).backward()
            sums["loss"] += loss.item() / self.accum
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v) / self.accum
        if cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            sums["grad_norm"] = float(_full(norm))
        for opt in self.optimizers:
            opt.step()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        if ddp.world > 1:
            names = sorted(sums)
            t = torch.tensor([sums[n] for n in names], dtype=torch.float64, device=self.device)
            dist.all_reduce(t)
            sums = {n: v / ddp.world for n, v in zip(names, t.tolist(), strict=True)}
        loss_value = sums.pop("loss")
        if not math.isfinite(loss_value):
            raise ChatforgeError(f"{self.stage}: loss became {loss_value} at step {self.run.step + 1}; lower the lr")
        self.run.step += 1
        self.run.tokens += task.tokens_per_batch * cfg.grad_accum
        self.run.last_loss, self.run.last_metrics = loss_value, sums

    def _to_device(self, drawn: Batch) -> Batch:
        """Pinned host memory and an asynchronous copy on CUDA: the copy overlaps the work
        already queued; a plain move elsewhere."""
        if self.device.type != "cuda":
            return tuple(t.to(self.device) for t in drawn)
        return tuple(t.pin_memory().to(self.device, non_blocking=True) for t in drawn)

    def log(self, bar: Progress, bar_task: Any, done: bool) -> None:
        if not (self.ddp.main and (self.run.step % self.cfg.log_every == 0 or done)):
            return
        tps = self.window_tokens / max(self.window_time, 1e-9)
        mfu = tps * self.task.flops_per_token / self.peak
        record = {
            "step": self.run.step, "loss": self.run.last_loss, "lr_mult": lr_multiplier(self.progress(), self.cfg),
            "tokens": self.run.tokens, "tokens_per_s": tps, "mfu": mfu, "elapsed_s": self.run.elapsed,
            **self.run.last_metrics,
        }
        self.metrics.write(record)
        shown = " ".join(f"{k} {v:.3g}" for k, v in self.run.last_metrics.items() if k != "grad_norm")
        bar.update(
            bar_task, completed=1000 * min(1.0, self.progress()),
            description=f"step {self.run.step} loss {self.run.last_loss:.3f} {shown} "
                        f"{tps:,.0f} tok/s mfu {mfu:.0%}".replace("  ", " "),
        )
        self.window_tokens, self.window_time = 0, 0.0

    @property
    def evaluates(self) -> bool:
        """Whether this rank runs evaluation and sampling: rank 0, or every rank under FSDP
        (each forward gathers the shards, so every rank must make it)."""
        return self.ddp.main or self.sharded

    def evaluate(self) -> None:
        self.model.eval()
        with autocast(self.device, self.dtype):
            self.eval_result = self.task.evaluate(self.model)
        self.model.train()
        self.evaluated_step = self.run.step
        if self.ddp.main:
            self.metrics.write({"step": self.run.step, **self.eval_result})
            self.console.print(f"  step {self.run.step}: " + " ".join(f"{k} {v:.4f}" for k, v in self.eval_result.items()))

    def save(self) -> None:
        """Rank 0 writes; under FSDP every rank first takes part in gathering the state."""
        optimizer_state = _optimizer_tensors(self.optimizers) if self.sharded or self.ddp.main else None
        weights = {k: _full(v) for k, v in self.model.state_dict().items()} if self.sharded else None
        if not self.ddp.main:
            self.saved_step = self.run.step
            return
        r = self.run
        state = {
            "identity": self.ident, "upstream": self.upstream, "step": r.step, "elapsed": r.elapsed, "tokens": r.tokens,
            "last_loss": r.last_loss, "last_metrics": r.last_metrics, "seed": self.seed,
            "torch_rng": _rng_to_str(torch.get_rng_state()),
        }
        if self.task.state:
            state["task_state"] = self.task.state()
        save_checkpoint(self.out_dir, self.model, optimizer_state, state, self.task.save_extra, weights)
        self.saved_step = r.step

    def sample(self) -> list[str]:
        self.model.eval()
        out = self.task.sample(self.model)
        self.model.train()
        return out

    def gather(self) -> None:
        """Leave the FSDP model whole on every rank (all-gathered once, never resharded), so
        that code after `train` runs its forwards on one rank without collectives."""
        for unit in self.fsdp_units:
            unit.set_reshard_after_forward(False)
        for unit in self.fsdp_units:
            unit.unshard()

    def _follow_rank0_clock(self) -> None:
        """Every rank takes rank 0's trained seconds: under a time budget they set the learning
        rate and decide the last step, and ranks whose clocks drift apart would train replicas
        with different learning rates and stop at different steps (the others then wait in a
        collective forever)."""
        elapsed = torch.tensor([self.run.elapsed], dtype=torch.float64, device=self.device)
        dist.broadcast(elapsed, src=0)
        self.run.elapsed = float(elapsed)

    def fit(self) -> TrainResult:
        task, cfg, ddp = self.task, self.cfg, self.ddp
        bar = Progress(
            TextColumn(f"[bold]{self.stage}[/bold]"), BarColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, disable=not ddp.main,
            transient=False,
        )
        with bar:
            bar_task = bar.add_task("", total=1000)
            self.model.train()
            while self.progress() < 1.0:
                t0 = time.perf_counter()
                self.step()
                dt = time.perf_counter() - t0
                self.run.elapsed += dt
                self.train_time += dt
                self.window_tokens += task.tokens_per_batch * cfg.grad_accum
                self.window_time += dt
                done = self.progress() >= 1.0
                self.log(bar, bar_task, done)
                step = self.run.step
                if task.evaluate and self.evaluates and (step % cfg.eval_every == 0 or done):
                    self.evaluate()
                if task.sample and self.evaluates and cfg.sample_every and step % cfg.sample_every == 0:
                    samples = self.sample()
                    if ddp.main:  # kept in the metrics too: the report shows them by step
                        self.metrics.write({"step": step, "samples": samples})
                    for s in samples if ddp.main else []:
                        self.console.print(f"  [dim]sample:[/dim] {s!r}")
                if (ddp.main or self.sharded) and (step % cfg.checkpoint_every == 0 or done):
                    self.save()
                barrier(ddp)
                self.run.elapsed += time.perf_counter() - t0 - dt  # eval and save count as wall time
                if ddp.world > 1 and cfg.time_budget > 0:
                    self._follow_rank0_clock()
        # The time budget can run out during an evaluation or a save of a step that was not the
        # last by its own time: evaluate and save that last step all the same.
        if self.evaluates and task.evaluate and self.evaluated_step != self.run.step:
            self.evaluate()
        if (ddp.main or self.sharded) and self.saved_step != self.run.step:
            self.save()
        barrier(ddp)
        self.model.eval()
        if self.sharded:
            self.gather()
        samples = task.sample(self.model) if task.sample and ddp.main else []
        tps = (self.run.tokens - self.resumed_tokens) / max(self.train_time, 1e-9)
        return TrainResult(
            steps=self.run.step, final_loss=self.run.last_loss, tokens=self.run.tokens,
            wall_s=self.run.elapsed, tokens_per_s=tps, mfu=tps * task.flops_per_token / self.peak,
            eval=self.eval_result, samples=samples, resumed_from=self.resumed_from,
            metrics=self.run.last_metrics,
        )


def train(
    task: TrainTask,
    cfg: TrainConfig,
    out_dir: Path,
    metrics_path: Path,
    seed: int,
    ident: dict,
    device: torch.device | None = None,
    console: Console | None = None,
    stage: str = "train",
    restart: bool = False,
    upstream: dict | None = None,
) -> TrainResult:
    """Train until max_steps or the time budget, whichever comes first; resume if possible.

    `ident` holds the stage's own settings and the user's inputs (a change is refused unless
    `restart`); `upstream` the digests of what earlier stages made (a change trains afresh).
    """
    device = device or next(task.model.parameters()).device
    # The weights' layout joins the identity: a save made by another version of the model's
    # code is refused in one line (with --restart to train afresh), not loaded half-way.
    ident = {**ident, "weights": weights_layout(task.model)}
    trainer = Trainer(task, cfg, Path(out_dir), Path(metrics_path), seed, ident, upstream or {},
                      device, console or Console(stderr=True), stage, restart)
    return trainer.fit()
