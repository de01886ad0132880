"""Tiny pre-training, SFT, reward-model and DPO runs on the shared loop, for the distributed
tests (tests/test_distributed.py): run as `python tests/dist_stages.py OUT JOB...` alone or
under torchrun, so one launch (8-30 s each here) trains several jobs.

A job is STAGE-PARALLEL[:DIR] (e.g. `dpo-fsdp`); it trains into OUT/DIR (default
OUT/STAGE-PARALLEL), whose metrics.jsonl holds one loss per step; a DIR holding a save from
another launch (any world size or parallelism) is resumed. Every input is built from fixed seeds, so every
process (and every launch) builds the same data and the same initial weights.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import torch
from rich.console import Console

from chatforge.align import dpo, reward, sft
from chatforge.align.pairs import encode_pair
from chatforge.config import load_config
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.model.reward import RewardModel
from chatforge.tokenizer.bpe import train_bpe
from chatforge.tokenizer.shards import TokenShards, write_shards
from chatforge.train import loop, pretrain
from chatforge.train.loop import identity, init_distributed, train

STEPS = 6
LANDS = ["Varnholm", "Quillon", "Dessary", "Ambrel", "Toskar", "Ferru", "Gallow", "Hesk"]
CITIES = ["Kestrel", "Marrow", "Tolland", "Vessa", "Orrin", "Paldu", "Sefir", "Ulm"]
SETTINGS = [f"{s}.train.{k}" for s in ("pretrain", "sft", "reward", "dpo") for k in (
    f"max_steps={STEPS}", "grad_accum=2", "batch_size=4", "log_every=1", "eval_every=100",
    "checkpoint_every=3", "time_budget=0", "precision=fp32", "compile=false")]


def _texts() -> list[str]:
    rng = random.Random(1)
    return [f"The capital of {a} is {b}. {rng.randint(0, 99)} {rng.choice(CITIES)}.\n"
            for _ in range(20) for a, b in zip(LANDS, CITIES, strict=True)]


def _model(vocab: int, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, seq_len=48))


def _pairs(tok, n: int):
    rows = [{"prompt": f"What is the capital of {LANDS[i % 8]}? ({i})", "chosen": f"{CITIES[i % 8]}.",
             "rejected": f"{CITIES[(i + 3) % 8]}, I think."} for i in range(n)]
    return [encode_pair(tok, r, 48) for r in rows]


class _FastClock:
    """time as the loop sees it, with perf_counter running `rate` times as fast."""

    def __init__(self, rate: float):
        self.rate, self.origin = rate, time.perf_counter()

    def perf_counter(self) -> float:
        return self.origin + (time.perf_counter() - self.origin) * self.rate

    def __getattr__(self, name: str):
        return getattr(time, name)


def job(out: Path, stage: str, parallel: str, where: Path) -> None:
    # DIST_SKEWED_BUDGET=S: train for S seconds, rank 1's clock running 3x as fast as rank 0's
    skewed = float(os.environ.get("DIST_SKEWED_BUDGET", "0"))
    budget = [f"{stage}.train.time_budget={skewed}", f"{stage}.train.max_steps=100000"] if skewed else []
    cfg = load_config("smoke", [*SETTINGS, *budget, f"{stage}.train.parallel={parallel}", "run.device=cpu"])
    tok = train_bpe(_texts(), vocab_size=320)
    ddp = init_distributed(torch.device("cpu"))
    if skewed and ddp.rank == 1:
        loop.time = _FastClock(3.0)
    if stage == "pretrain":
        if ddp.main and not (where / "tokens" / "index.json").exists():
            write_shards([{"text": t} for t in _texts()], tok, where / "tokens", val_fraction=0.2, seed=0)
        if ddp.world > 1:
            torch.distributed.barrier()
        model = _model(tok.vocab_size)
        task = pretrain.make_task(model, tok, TokenShards(where / "tokens", "train"),
                                  TokenShards(where / "tokens", "val"), cfg, n_samples=1)
        t = cfg.pretrain.train
    elif stage == "sft":
        convs = [[{"role": "user", "content": f"Capital of {LANDS[i % 8]}, {i}?"},
                  {"role": "assistant", "content": f"{CITIES[i % 8]} {i}."}] for i in range(40)]
        data = sft.SFTData(tok, convs, seq_len=48, pack=False, seed=3)
        t = cfg.sft.train
        task = sft.make_task(_model(tok.vocab_size), tok, data, data, t, [])
    elif stage == "reward":
        torch.manual_seed(1)
        rm = RewardModel(_model(tok.vocab_size).cfg)
        rm.init_from(_model(tok.vocab_size))
        task = reward.make_task(rm, tok, _pairs(tok, 24), _pairs(tok, 4), cfg)
        t = cfg.reward.train
    elif stage == "dpo":
        reference = _model(tok.vocab_size).eval()
        pairs, held = _pairs(tok, 24), _pairs(tok, 4)
        ref, held_ref = dpo.answer_logprobs(reference, pairs, tok.pad_id), dpo.answer_logprobs(reference, held, tok.pad_id)
        task = dpo.make_task(_model(tok.vocab_size), tok, pairs, ref, held, held_ref, cfg)
        t = cfg.dpo.train
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    result = train(task, t, where / "checkpoint", where / "metrics.jsonl", seed=cfg.run.seed,
                   ident=identity(t), device=torch.device("cpu"), console=Console(stderr=True, quiet=True),
                   stage=stage)
    if skewed:  # every rank: where it stopped and what its replica holds
        checksum = sum(float(p.detach().double().sum()) for p in task.model.parameters())
        (where / f"rank{ddp.rank}.json").write_text(json.dumps({"steps": result.steps, "checksum": checksum}))
    if ddp.main:
        # After training the model is whole on rank 0 (gathered under FSDP): a forward alone works.
        x = torch.arange(8)[None] % tok.vocab_size
        with torch.no_grad():
            out_model = task.model.trunk if stage == "reward" else task.model
            probe = float(out_model.hidden_states(x).float().abs().mean())
        (where / "result.json").write_text(json.dumps({"steps": result.steps, "world": ddp.world,
                                                       "resumed_from": result.resumed_from,
                                                       "probe": probe}))


def main() -> None:
    out = Path(sys.argv[1])
    for spec in sys.argv[2:]:
        name, _, directory = spec.partition(":")
        stage, parallel = name.rsplit("-", 1)
        job(out, stage, parallel, out / (directory or name))


if __name__ == "__main__":
    main()
