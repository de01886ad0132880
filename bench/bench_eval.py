"""Evaluation throughput: the harness against one-request-at-a-time, measured in the same run.

- log-likelihood (MMLU-style: a 200-token 5-shot context, choices " A".." D"): the harness
  batches items and computes each context once for its four choices, and the few-shot prefix
  that the items of one subject share once per batch; the baseline runs one full forward over
  context + choice per (item, choice), as a naive evaluator does. Two context sets: MMLU's
  shape (8 subjects, each a 150-token description + examples shared by its items, then a
  50-token question) and contexts with nothing in common (random 200 tokens, no sharing).
- generation: the harness's batched engine calls against the same engine fed one prompt at a
  time (greedy, fixed length so both generate the same number of tokens).
Median of `--repeats` timings each; prints the ratios and writes bench/results/eval.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from chatforge.engine import SamplingParams
from chatforge.eval.harness import EvalModel, LoglikRequest, generate, loglikelihoods
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.tokenizer.bpe import train_bpe


def one_at_a_time(model: GPT, requests: list[LoglikRequest]) -> list[float]:
    """Reference: a full forward per (context, choice); no batching, no shared context."""
    out = []
    with torch.inference_mode():
        for r in requests:
            for c in r.continuations:
                seq = r.context + c
                logp = model(torch.tensor([seq[:-1]])).log_softmax(-1)[0]
                out.append(sum(float(logp[len(r.context) - 1 + k, c[k]]) for k in range(len(c))))
    return out


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    tok = train_bpe(["The following are multiple choice questions (with answers) about rivers.\n"] * 20, 512)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=4, n_embd=256, n_head=4, n_kv_head=4, seq_len=256)).eval()
    g = torch.Generator().manual_seed(1)
    ids = lambda n: torch.randint(0, tok.vocab_size, (n,), generator=g).tolist()  # noqa: E731
    choices = lambda: [[t] for t in ids(4)]  # noqa: E731
    shots = [ids(150) for _ in range(8)]  # one few-shot prefix per subject
    sets = {"mmlu_shape": [LoglikRequest(shots[i % 8] + ids(50), choices()) for i in range(args.items)],
            "no_shared_prefix": [LoglikRequest(ids(200), choices()) for _ in range(args.items)]}
    em = EvalModel(model, tok, batch_size=32)
    loglik = {}
    for name, reqs in sets.items():
        fast = [ll for scores in loglikelihoods(em, reqs) for ll, _ in scores]
        slow = one_at_a_time(model, reqs)
        assert max(abs(a - b) for a, b in zip(fast, slow, strict=True)) < 1e-3, "harness disagrees with the reference"
        t_fast = timed(lambda reqs=reqs: loglikelihoods(em, reqs), args.repeats)
        t_slow = timed(lambda reqs=reqs: one_at_a_time(model, reqs), args.repeats)
        suffix = "" if name == "mmlu_shape" else f"_{name}"
        loglik |= {f"loglik_requests_per_s{suffix}": args.items / t_fast,
                   f"loglik_requests_per_s_one_at_a_time{suffix}": args.items / t_slow,
                   f"loglik_speedup{suffix}": t_slow / t_fast}
    prompts = [torch.randint(0, tok.vocab_size, (int(n),), generator=g).tolist()
               for n in torch.randint(20, 120, (args.prompts,), generator=g)]
    params = SamplingParams(max_new_tokens=args.new_tokens, stop_ids=())  # no stop: equal lengths
    one = EvalModel(model, tok, batch_size=1)
    t_gen = timed(lambda: generate(em, prompts, params), args.repeats)
    t_gen1 = timed(lambda: generate(one, prompts, params), args.repeats)
    n_tok = args.prompts * args.new_tokens
    result = {
        **loglik,
        "gen_tokens_per_s": n_tok / t_gen, "gen_tokens_per_s_one_at_a_time": n_tok / t_gen1,
        "gen_speedup": t_gen1 / t_gen, "repeats": args.repeats, "torch_threads": torch.get_num_threads(),
    }
    for k, v in result.items():
        print(f"{k:40s} {v:10.2f}" if isinstance(v, float) else f"{k:40s} {v}")
    out = Path(__file__).parent / "results" / "eval.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
