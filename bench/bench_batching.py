"""Generating for many prompts at once: the engine's length-sorted batches against one batch.

The RLHF and evaluation stages hand the engine hundreds of prompts of mixed lengths whose
answers stop at different steps (the preference stage: 1,680 prompts, two answers each). One
batch of all of them pads every prompt to the longest, keeps a KV cache of the whole batch for
the longest answer and copies it each time rows finish; batches of a bounded size, sorted by
prompt length, do none of that. This measures both on a run's SFT model and its own prompts:

- `prefs`: the preference stage's prompts, sampled at its temperatures and answer length;
- `facts`: the held-out fact questions, greedy, 48 tokens (the evaluations' workload).

Each batch size is timed `--repeats` times, interleaved with the one-batch reference, and the
completions are compared with the reference's (greedy: identical tokens expected; sampled:
each prompt's generator is seeded by its index, so they match too, up to float ties).

    python bench/bench_batching.py --run-dir runs/latest [--sizes 16,32,64,128] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from chatforge.align.collect import corpus_prompts
from chatforge.align.pairs import prompt_messages
from chatforge.config import load_config
from chatforge.engine import Engine, SamplingParams
from chatforge.eval.facts import read_fact_questions
from chatforge.model.checkpoint import load_model
from chatforge.runs import RunDir, atomic_write_json
from chatforge.tokenizer.bpe import load_tokenizer
from chatforge.tokenizer.chat import render_prompt

RESULTS = Path(__file__).parent / "results" / "batching.json"


def workloads(run: RunDir, tok, seq_len: int, limit: int | None) -> dict[str, list[tuple[list[list[int]], SamplingParams]]]:
    """Each workload as (prompts, sampling) calls, the way its stage makes them."""
    p = load_config("cpu").prefs
    prompts = corpus_prompts(run, p.prompts, p.heldout_prompts, 0)[:limit]
    room = seq_len - min(p.max_new_tokens, seq_len // 2)
    ids = [x for x in (render_prompt(tok, prompt_messages(q)) for q in prompts) if len(x) <= room]
    prefs = [(ids, SamplingParams(max_new_tokens=p.max_new_tokens, temperature=t, top_k=0, top_p=1.0,
                                  seed=100_003 * k)) for k, t in enumerate(p.temperatures)]
    questions = read_fact_questions(run.corpus / "facts_heldout.jsonl")[:limit]
    facts = [[render_prompt(tok, [{"role": "user", "content": q["question"]}]) for q in questions]]
    return {"prefs": prefs, "facts": [(facts[0], SamplingParams(max_new_tokens=48))]}


def timed(engine: Engine, calls) -> tuple[float, list[list[int]], int]:
    t0 = time.perf_counter()
    tokens = [c.tokens for ids, params in calls for c in engine.generate(ids, params)]
    return time.perf_counter() - t0, tokens, sum(map(len, tokens))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, default=Path("runs/latest"))
    ap.add_argument("--sizes", default="16,32,64,128")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--limit", type=int, help="first N prompts of each workload (a quick check)")
    args = ap.parse_args()
    run = RunDir(args.run_dir)
    model = load_model(run.checkpoint("sft")).eval()
    tok = load_tokenizer(run.tokenizer)
    sizes = [int(s) for s in args.sizes.split(",")]
    report: dict = {"threads": torch.get_num_threads(), "params": model.num_params(), "workloads": {}}
    for name, calls in workloads(run, tok, model.cfg.seq_len, args.limit).items():
        n = sum(len(ids) for ids, _ in calls)
        times: dict[str, list[float]] = {"one_batch": [], **{f"batch_{b}": [] for b in sizes}}
        same: dict[str, float] = {}
        generated = 0
        for _ in range(args.repeats):
            ref_s, ref_tokens, generated = timed(Engine(model, tok, batch_size=max(len(ids) for ids, _ in calls)), calls)
            times["one_batch"].append(ref_s)
            for b in sizes:
                s, tokens, _ = timed(Engine(model, tok, batch_size=b), calls)
                times[f"batch_{b}"].append(s)
                same[f"batch_{b}"] = sum(a == r for a, r in zip(tokens, ref_tokens, strict=True)) / len(tokens)
        row = {k: {"mean_s": statistics.fmean(v), "stdev_s": statistics.stdev(v) if len(v) > 1 else 0.0}
               for k, v in times.items()}
        for b in sizes:
            row[f"batch_{b}"]["speedup"] = row["one_batch"]["mean_s"] / row[f"batch_{b}"]["mean_s"]
            row[f"batch_{b}"]["same_completions"] = same[f"batch_{b}"]
        report["workloads"][name] = {"prompts": n, "generated_tokens": generated, **row}
        print(f"{name}: {n} prompts, {generated:,} tokens; one batch {row['one_batch']['mean_s']:.1f} s | " + " | ".join(
            f"{b}: {row[f'batch_{b}']['mean_s']:.1f} s ({row[f'batch_{b}']['speedup']:.2f}x, "
            f"{same[f'batch_{b}']:.0%} same)" for b in sizes))
    if args.limit is None:
        atomic_write_json(RESULTS, report)


if __name__ == "__main__":
    main()
