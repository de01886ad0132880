"""GPU training throughput, MFU and peak memory of the d12 / d20 presets, and the engine's
decode speed at batch 1 and 32: a few minutes on one H100/H200.

Training steps run as the loop runs them: bf16 autocast (the preset's `precision`), fused
AdamW / Muon from chatforge.train.optim, torch.compile when the preset says so (compile time
reported apart), the fused loss, gradient clipping. MFU is against the GPU's dense bf16 peak
(chatforge.device.peak_flops), with FLOPs per token = 6 N + 12 L H hd T. Each figure is the
mean and spread over `--repeats` timed windows after a warm-up. A preset that does not fit is
recorded as such, not a failure of the whole script.

    python bench/bench_gpu.py [--presets d12,d20] [--steps 10] [--repeats 3] [--quick]

`--cpu` runs the same code on the CPU (with scaled-down overrides) only to check the script
itself; its figures mean nothing for a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from chatforge.config import load_config
from chatforge.device import autocast, compute_dtype, device_name, peak_flops
from chatforge.engine import Engine, SamplingParams
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.train.optim import build_optimizers

RESULTS = Path(__file__).parent / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        _sync(device)


def train_figures(preset: str, overrides: list[str], steps: int, repeats: int,
                  device: torch.device) -> tuple[dict, GPT]:
    cfg = load_config(preset, overrides)
    t = cfg.pretrain.train
    dtype = compute_dtype(device, t.precision)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_model_config(cfg.model, cfg.tokenizer.vocab_size)).to(device)
    forward = torch.compile(model) if t.compile else model
    optimizers = build_optimizers(model, t)
    seq = model.cfg.seq_len
    x = torch.randint(0, model.cfg.vocab_size, (t.batch_size, seq + 1), device=device)

    def step() -> None:
        for _ in range(t.grad_accum):
            with autocast(device, dtype):
                loss = forward(x[:, :-1], targets=x[:, 1:])
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        for o in optimizers:
            o.step()
            o.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(2):  # compilation, autotuning, allocator warm-up
        step()
    _sync(device)
    warmup_s = time.perf_counter() - t0
    tokens_per_step = t.batch_size * seq * t.grad_accum
    rates = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        rates.append(steps * tokens_per_step / (time.perf_counter() - t0))
    fpt, peak = model.flops_per_token(), peak_flops(device, dtype)
    mfus = [r * fpt / peak for r in rates]
    return {
        "params": model.num_params(), "flops_per_token": fpt, "dtype": str(dtype).replace("torch.", ""),
        "compile": t.compile, "batch_size": t.batch_size, "grad_accum": t.grad_accum, "seq_len": seq,
        "optimizer": t.optimizer, "warmup_s": warmup_s, "tokens_per_s": rates,
        "tokens_per_s_mean": statistics.mean(rates), "mfu": mfus, "mfu_mean": statistics.mean(mfus),
        "mfu_stdev": statistics.stdev(mfus) if len(mfus) > 1 else 0.0, "peak_flops": peak,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0,
    }, model


@torch.no_grad()
def decode_figures(model: GPT, batches: tuple[int, ...], new_tokens: int, repeats: int, device: torch.device) -> dict:
    """Tokens/s of the engine's KV-cache decoding (greedy, never stopping early)."""
    model.eval()
    engine = Engine(model, None)
    params = SamplingParams(max_new_tokens=new_tokens, stop_ids=(), tools=())
    out = {}
    for b in batches:
        prompts = [list(range(1 + i, 17 + i)) for i in range(b)]
        with autocast(device, compute_dtype(device)):
            engine.generate(prompts, SamplingParams(max_new_tokens=8, stop_ids=(), tools=()))  # warm-up
            rates = []
            for _ in range(repeats):
                _sync(device)
                t0 = time.perf_counter()
                done = engine.generate(prompts, params)
                _sync(device)
                generated = sum(len(c.tokens) for c in done)
                rates.append(generated / (time.perf_counter() - t0))
        out[f"batch_{b}"] = {"tokens_per_s": rates, "mean": statistics.mean(rates)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="d12,d20")
    ap.add_argument("--steps", type=int, default=10, help="optimizer steps per timed window")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=256, help="decode length per row")
    ap.add_argument("--quick", action="store_true", help="2 steps, 1 repeat, 32 new tokens")
    ap.add_argument("--cpu", action="store_true", help="check the script on the CPU (tiny overrides)")
    ap.add_argument("overrides", nargs="*", help="config overrides for every preset")
    args = ap.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA GPU: torch.cuda.is_available() is False here "
                         f"(torch {torch.__version__})")
    if args.quick:
        args.steps, args.repeats, args.new_tokens = 2, 1, 32
    device = torch.device("cpu" if args.cpu else "cuda:0")
    result: dict = {"gpu": device_name(device.type), "torch": torch.__version__, "presets": {}}
    for preset in filter(None, args.presets.split(",")):
        try:
            train, model = train_figures(preset, args.overrides, args.steps, args.repeats, device)
            train["decode"] = decode_figures(model, (1, 32), args.new_tokens, args.repeats, device)
        except torch.OutOfMemoryError as exc:
            train = {"did_not_fit": str(exc).splitlines()[0]}
        model = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
        result["presets"][preset] = train
        if "did_not_fit" in train:
            print(f"{preset}: did not fit ({train['did_not_fit']})")
            continue
        d = train["decode"]
        print(f"{preset}: {train['params'] / 1e6:.0f}M params, {train['tokens_per_s_mean']:,.0f} tok/s, "
              f"MFU {train['mfu_mean']:.1%} ± {train['mfu_stdev']:.1%} of {train['peak_flops'] / 1e12:.0f} "
              f"TFLOP/s, peak memory {train['peak_memory_gib']:.1f} GiB, warm-up {train['warmup_s']:.0f} s; "
              f"decode {d['batch_1']['mean']:,.0f} tok/s at batch 1, {d['batch_32']['mean']:,.0f} at 32")
    name = "gpu-cpu-check.json" if args.cpu else "gpu-quick.json" if args.quick else "gpu.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS / name}")


if __name__ == "__main__":
    main()
