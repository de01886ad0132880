"""Training throughput and MFU of a preset's model against this CPU's matmul peak, same run.

MFU = achieved FLOP/s / peak, with FLOPs per token = 6 N + 12 L H hd T (PaLM appendix B).
The peak is measured here, interleaved with the training repeats, so both see the same machine
state; spread over repeats is reported (modded-nanogpt's rule: no figure without its spread).
Steps run as the training loop runs them: compiled when the preset says `pretrain.train.compile`
(compile time reported apart), autocast to the dtype `pretrain.train.precision` picks (bf16 on
CPUs with AMX / AVX512-BF16), the same optimizers, clipping, fused loss and allocator setting;
the peak is measured in that dtype.

    python bench/bench_throughput.py [--preset cpu] [--repeats 10] [--steps 20]   # ~2.5 min
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from chatforge.config import load_config
from chatforge.device import (
    autocast,
    compute_dtype,
    keep_cpu_memory_mapped,
    measure_cpu_matmul_peak,
)
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.train.optim import build_optimizers

RESULTS = Path(__file__).parent / "results"


class Stepper:
    """Full optimizer steps (forward, backward, clip, update) on random tokens."""

    def __init__(self, model: GPT, cfg):
        keep_cpu_memory_mapped()  # as the training loop does on a CPU
        self.model, self.cfg = model, cfg
        self.dtype = compute_dtype(torch.device("cpu"), cfg.pretrain.train.precision)
        self.forward = torch.compile(model) if cfg.pretrain.train.compile else model
        self.optimizers = build_optimizers(model, cfg.pretrain.train)
        b, t = cfg.pretrain.train.batch_size, model.cfg.seq_len
        self.x = torch.randint(0, model.cfg.vocab_size, (b, t + 1), generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        for _ in range(2):  # warm-up: compilation, allocator and kernel selection
            self.step()
        self.warmup_s = time.perf_counter() - t0

    def step(self) -> None:
        for _ in range(self.cfg.pretrain.train.grad_accum):
            with autocast(torch.device("cpu"), self.dtype):
                loss = self.forward(self.x[:, :-1], targets=self.x[:, 1:])
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.pretrain.train.grad_clip)
        for o in self.optimizers:
            o.step()
            o.zero_grad(set_to_none=True)

    def tokens_per_s(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        return steps * self.cfg.pretrain.train.grad_accum * self.x[:, 1:].numel() / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--repeats", type=int, default=10, help="MFU moves +-3 points with turbo jitter")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--name", default="", help="results file suffix (default: the preset)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    cfg = load_config(args.preset, args.overrides)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_model_config(cfg.model, cfg.tokenizer.vocab_size))
    fpt = model.flops_per_token()
    stepper = Stepper(model, cfg)
    peaks, tps, mfus = [], [], []
    for _ in range(args.repeats):
        peak = measure_cpu_matmul_peak(dtype=stepper.dtype)
        rate = stepper.tokens_per_s(args.steps)
        peaks.append(peak)
        tps.append(rate)
        mfus.append(rate * fpt / peak)
    result = {
        "preset": args.preset,
        "overrides": args.overrides,
        "threads": torch.get_num_threads(),
        "params": model.num_params(),
        "flops_per_token": fpt,
        "batch_tokens": cfg.pretrain.train.batch_size * cfg.model.seq_len,
        "optimizer": cfg.pretrain.train.optimizer,
        "compile": cfg.pretrain.train.compile,
        "dtype": str(stepper.dtype).replace("torch.", ""),
        "warmup_s": stepper.warmup_s,
        "matmul_peak_gflops": [p / 1e9 for p in peaks],
        "tokens_per_s": tps,
        "mfu": mfus,
        "mfu_mean": statistics.mean(mfus),
        "mfu_stdev": statistics.stdev(mfus) if len(mfus) > 1 else 0.0,
        "target_mfu": 0.60,
    }
    out = RESULTS / f"throughput-{args.name or args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.preset}: {model.num_params() / 1e6:.2f}M params, "
          f"{statistics.mean(tps):,.0f} ± {statistics.pstdev(tps):,.0f} tokens/s, "
          f"peak {statistics.mean(peaks) / 1e9:.0f} GFLOP/s, "
          f"MFU {result['mfu_mean']:.1%} ± {result['mfu_stdev']:.1%} (target 60%); "
          f"warm-up{' incl. compile' if cfg.pretrain.train.compile else ''} {stepper.warmup_s:.1f} s")


if __name__ == "__main__":
    main()
