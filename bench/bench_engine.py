"""Generation speed: the KV-cache engine against plain no-cache generation, same model, same run.

For batch 1 and batch 8 (equal-length prompts, greedy, no early stop) it measures time to
first token (prefill + one step) and decode tokens/s, for `chatforge.engine.Engine` and for
the naive loop that re-runs the whole sequence through the model for every new token. Both
produce the same tokens (checked). Repeats are interleaved and reported as mean and spread;
the headline is the decode speed-up at the requested number of new tokens (aim: >= 5x at 256).

    python bench/bench_engine.py [--run-dir runs/latest] [--new-tokens 256] [--repeats 3]
    python bench/bench_engine.py --quick
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from chatforge.engine import Engine, SamplingParams
from chatforge.model.checkpoint import load_model
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.runs import atomic_write_json
from chatforge.serve.chat_cli import find_checkpoint

RESULTS = Path(__file__).parent / "results" / "engine.json"


@torch.no_grad()
def naive_generate(model: GPT, prompts: torch.Tensor, new_tokens: int) -> tuple[list, float, float]:
    """Greedy tokens without a cache (whole sequence every step), time to first token, total time."""
    ids = prompts.clone()
    t0 = time.perf_counter()
    ttft = 0.0
    for i in range(new_tokens):
        nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
        if i == 0:
            ttft = time.perf_counter() - t0
    return ids[:, prompts.size(1):].tolist(), ttft, time.perf_counter() - t0


def engine_generate(engine: Engine, prompts: torch.Tensor, new_tokens: int) -> tuple[list, float, float]:
    """Greedy tokens from the engine, time to first token (a one-token generation), total time."""
    rows = prompts.tolist()
    t0 = time.perf_counter()
    engine.generate(rows, SamplingParams(max_new_tokens=1, stop_ids=()))
    ttft = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = engine.generate(rows, SamplingParams(max_new_tokens=new_tokens, stop_ids=()))
    return [c.tokens for c in out], ttft, time.perf_counter() - t0


def measure(fn, model_or_engine, prompts: torch.Tensor, new_tokens: int) -> tuple[list, float, float]:
    """(tokens, time to first token, decode tokens/s after the first token)."""
    tokens, ttft, total = fn(model_or_engine, prompts, new_tokens)
    return tokens, ttft, prompts.size(0) * (new_tokens - 1) / max(total - ttft, 1e-9)


def _stats(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, help="use this run's newest checkpoint (default: random cpu-preset model)")
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small check: 32 new tokens, 1 repeat")
    args = ap.parse_args()
    if args.quick:
        args.new_tokens, args.repeats = 32, 1
    torch.manual_seed(0)
    if args.run_dir:
        model = load_model(find_checkpoint(args.run_dir)[0])
    else:
        # The cpu preset's shape (depth 4, width 256, 4096 tokens) with room for 256 new tokens.
        model = GPT(GPTConfig(vocab_size=4096, n_layer=4, n_embd=256, n_head=4, n_kv_head=4,
                              seq_len=max(512, args.prompt_tokens + args.new_tokens)))
    model.eval()
    if args.prompt_tokens + args.new_tokens > model.cfg.seq_len:
        raise SystemExit(f"prompt + new tokens exceed the model's context of {model.cfg.seq_len}")
    engine = Engine(model)
    results: dict[str, dict] = {}
    for b in (int(x) for x in args.batches.split(",")):
        gen = torch.Generator().manual_seed(b)
        prompts = torch.randint(0, model.cfg.vocab_size, (b, args.prompt_tokens), generator=gen)
        runs: dict[str, dict[str, list[float]]] = {k: {"ttft_s": [], "tokens_per_s": []} for k in ("engine", "naive")}
        identical = True
        for _ in range(args.repeats):
            out = {}
            for name, fn, obj in (("naive", naive_generate, model), ("engine", engine_generate, engine)):
                tokens, ttft, tps = measure(fn, obj, prompts, args.new_tokens)
                runs[name]["ttft_s"].append(ttft)
                runs[name]["tokens_per_s"].append(tps)
                out[name] = tokens
            identical &= out["naive"] == out["engine"]
        row = {k: {m: _stats(v) for m, v in d.items()} for k, d in runs.items()}
        row["decode_speedup"] = row["engine"]["tokens_per_s"]["mean"] / row["naive"]["tokens_per_s"]["mean"]
        row["ttft_ratio"] = row["naive"]["ttft_s"]["mean"] / row["engine"]["ttft_s"]["mean"]
        row["identical_tokens"] = identical
        results[f"batch_{b}"] = row
        e, n = row["engine"], row["naive"]
        print(
            f"batch {b}: engine {e['tokens_per_s']['mean']:,.0f} ± {e['tokens_per_s']['stdev']:,.0f} tok/s, "
            f"TTFT {e['ttft_s']['mean'] * 1e3:.1f} ms | no cache {n['tokens_per_s']['mean']:,.0f} ± "
            f"{n['tokens_per_s']['stdev']:,.0f} tok/s, TTFT {n['ttft_s']['mean'] * 1e3:.1f} ms | "
            f"decode speed-up {row['decode_speedup']:.1f}x, identical tokens: {identical}"
        )
    report = {
        "new_tokens": args.new_tokens, "prompt_tokens": args.prompt_tokens, "repeats": args.repeats,
        "params": model.num_params(), "threads": torch.get_num_threads(), "results": results,
        "note": "HF transformers generate comparison: pending the HF export (not installed here)",
    }
    atomic_write_json(RESULTS if not args.quick else RESULTS.with_name("engine_quick.json"), report)


if __name__ == "__main__":
    main()
