"""Generation speed: chatforge's Engine against transformers `generate` on the same weights.

The model is exported with `chatforge.model.hf.export_hf` and loaded back with
`AutoModelForCausalLM` (Llama or Qwen3, nothing downloaded). For each weight dtype (fp32, and
bf16 for both sides: on a CPU with bf16 matrix units, or a GPU, that is how one serves) and
batch 1 and 8 (equal-length random prompts, greedy, no early stop) it measures time to first
token (a one-token generation) and decode tokens/s after it, for both, repeats interleaved, and
reports mean and spread, the speed ratio (aim: chatforge >= 2x) and whether the greedy tokens
are identical (in bf16 the two sides round differently, so they may part after a while).
Results go to bench/results/hf_generate.json.

    python bench/bench_hf_generate.py [--run-dir runs/latest] [--new-tokens 256] [--repeats 3]
    python bench/bench_hf_generate.py --quick
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers loads: never reach the Hub

import torch
import transformers

from chatforge.engine import Engine, SamplingParams
from chatforge.model.checkpoint import load_model
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.model.hf import export_hf
from chatforge.runs import atomic_write_json
from chatforge.serve.chat_cli import find_checkpoint
from chatforge.tokenizer.bpe import load_tokenizer, train_bpe

RESULTS = Path(__file__).parent / "results" / "hf_generate.json"


def engine_generate(engine: Engine, prompts: torch.Tensor, new_tokens: int) -> tuple[list, float, float]:
    """Greedy tokens from the engine, time to first token, total time."""
    rows = prompts.tolist()
    t0 = time.perf_counter()
    engine.generate(rows, SamplingParams(max_new_tokens=1, stop_ids=()))
    ttft = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = engine.generate(rows, SamplingParams(max_new_tokens=new_tokens, stop_ids=()))
    return [c.tokens for c in out], ttft, time.perf_counter() - t0


@torch.no_grad()
def hf_generate(hf, prompts: torch.Tensor, new_tokens: int) -> tuple[list, float, float]:
    """Greedy tokens from transformers `generate` (its default dynamic KV cache), same timing."""
    mask = torch.ones_like(prompts)
    kwargs = dict(attention_mask=mask, do_sample=False, eos_token_id=None)
    t0 = time.perf_counter()
    hf.generate(prompts, max_new_tokens=1, **kwargs)
    ttft = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = hf.generate(prompts, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
    return out[:, prompts.size(1):].tolist(), ttft, time.perf_counter() - t0


def _stats(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0}


def _first_difference(a: list[list[int]], b: list[list[int]]) -> int | None:
    """Earliest position (over rows) where two greedy outputs part, or None when identical."""
    where = [next((i for i, (x, y) in enumerate(zip(r, s, strict=True)) if x != y), None) for r, s in zip(a, b, strict=True)]
    found = [w for w in where if w is not None]
    return min(found) if found else None


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build(args, workdir: Path, dtypes: list[str]) -> tuple[dict[str, GPT], dict]:
    """chatforge's model and the same weights as a transformers model, per weight dtype."""
    if args.run_dir:
        ckpt, _ = find_checkpoint(args.run_dir)
        model, tok = load_model(ckpt), load_tokenizer(args.run_dir / "tokenizer")
    else:
        # The cpu preset's shape (depth 4, width 256, 4096 ids); a small tokenizer suffices,
        # the prompts are random ids.
        torch.manual_seed(0)
        tok = train_bpe(["generation benchmark text, nothing more " * 50], vocab_size=300)
        model = GPT(GPTConfig(vocab_size=4096, n_layer=4, n_embd=256, n_head=4, n_kv_head=4,
                              seq_len=max(512, args.prompt_tokens + args.new_tokens),
                              qk_norm=not args.llama))
    model.eval()
    export_hf(model, tok, workdir)
    models, hfs = {}, {}
    for name in dtypes:
        models[name] = copy.deepcopy(model).to(DTYPES[name])
        hf = transformers.AutoModelForCausalLM.from_pretrained(workdir, dtype=DTYPES[name]).eval()
        hf.generation_config.eos_token_id = None  # every row runs the full length, as the engine's
        hfs[name] = hf
    return models, hfs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, help="use this run's newest checkpoint (default: random cpu-preset model)")
    ap.add_argument("--llama", action="store_true", help="random model without QK-norm (Llama) instead of Qwen3")
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--dtypes", default="fp32,bf16", help="weight dtypes, both sides alike")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small check: 32 new tokens, 1 repeat")
    args = ap.parse_args()
    if args.quick:
        args.new_tokens, args.repeats = 32, 1
    dtypes = args.dtypes.split(",")
    if unknown := [d for d in dtypes if d not in DTYPES]:
        raise SystemExit(f"--dtypes: unknown {', '.join(unknown)} (choose from {', '.join(DTYPES)})")
    with tempfile.TemporaryDirectory() as tmp:
        models, hfs = build(args, Path(tmp), dtypes)
    seq_len = next(iter(models.values())).cfg.seq_len
    if args.prompt_tokens + args.new_tokens > seq_len:
        raise SystemExit(f"prompt + new tokens exceed the model's context of {seq_len}")
    results: dict[str, dict] = {}
    for dtype in dtypes:
        engine, hf = Engine(models[dtype]), hfs[dtype]
        for b in (int(x) for x in args.batches.split(",")):
            row = measure(engine, hf, b, args)
            results[f"{dtype}/batch_{b}"] = row
            c, t, differs = row["chatforge"], row["transformers"], row["first_difference_at"]
            print(
                f"{dtype} batch {b}: chatforge {c['tokens_per_s']['mean']:,.0f} ± {c['tokens_per_s']['stdev']:,.0f} tok/s, "
                f"TTFT {c['ttft_s']['mean'] * 1e3:.1f} ms | transformers {t['tokens_per_s']['mean']:,.0f} ± "
                f"{t['tokens_per_s']['stdev']:,.0f} tok/s, TTFT {t['ttft_s']['mean'] * 1e3:.1f} ms | "
                f"speed-up {row['speedup']:.2f}x, identical greedy tokens: {differs is None}"
                + ("" if differs is None else f" (first difference at token {differs})")
            )
    model = next(iter(models.values()))
    report = {
        "architecture": type(next(iter(hfs.values()))).__name__, "transformers": transformers.__version__,
        "new_tokens": args.new_tokens, "prompt_tokens": args.prompt_tokens, "repeats": args.repeats,
        "params": model.num_params(), "threads": torch.get_num_threads(),
        "device": "cpu", "dtypes": dtypes, "results": results,
        # Other work on the machine skews both sides; a 1-minute load above the core count
        # means the ratios are noise more than measurement.
        "load_average_1min_at_end": os.getloadavg()[0], "cores": os.cpu_count(),
    }
    atomic_write_json(RESULTS if not args.quick else RESULTS.with_name("hf_generate_quick.json"), report)


def measure(engine: Engine, hf, batch: int, args) -> dict:
    """Both sides at one batch size, repeats interleaved so drift hits them alike."""
    gen = torch.Generator().manual_seed(batch)
    prompts = torch.randint(0, engine.model.cfg.vocab_size, (batch, args.prompt_tokens), generator=gen)
    runs = {k: {"ttft_s": [], "tokens_per_s": []} for k in ("chatforge", "transformers")}
    differs: int | None = None
    for _ in range(args.repeats):
        out = {}
        for name, fn, obj in (("transformers", hf_generate, hf), ("chatforge", engine_generate, engine)):
            tokens, ttft, total = fn(obj, prompts, args.new_tokens)
            runs[name]["ttft_s"].append(ttft)
            runs[name]["tokens_per_s"].append(batch * (args.new_tokens - 1) / max(total - ttft, 1e-9))
            out[name] = tokens
        d = _first_difference(out["chatforge"], out["transformers"])
        differs = d if differs is None else (differs if d is None else min(d, differs))
    row = {k: {m: _stats(v) for m, v in d.items()} for k, d in runs.items()}
    c, t = row["chatforge"], row["transformers"]
    row["speedup"] = c["tokens_per_s"]["mean"] / t["tokens_per_s"]["mean"]
    row["ttft_ratio"] = t["ttft_s"]["mean"] / c["ttft_s"]["mean"]
    row["identical_tokens"] = differs is None
    row["first_difference_at"] = differs
    return row


if __name__ == "__main__":
    main()
