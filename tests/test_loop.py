"""The shared training loop: a time budget that runs out mid-evaluation still ends saved."""

from __future__ import annotations

import json
import time

import torch

from chatforge.config import TrainConfig
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.train.loop import TrainTask, train


def test_budget_spent_during_evaluation_still_evaluates_and_saves_the_last_step(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, n_layer=1, n_embd=32, n_head=2, n_kv_head=2, seq_len=16))
    evaluated = []

    def slow_eval(m):
        evaluated.append(len(evaluated))
        time.sleep(0.6)  # longer than the whole budget: the loop ends right after it
        return {"val_loss": 1.0}

    task = TrainTask(
        model=model,
        train_batch=lambda g, step: (torch.randint(0, 50, (2, 17), generator=g),),
        loss_fn=lambda m, b: m(b[0][:, :-1], targets=b[0][:, 1:]),
        tokens_per_batch=32, flops_per_token=1.0, evaluate=slow_eval,
    )
    cfg = TrainConfig(max_steps=10**6, time_budget=0.5, eval_every=2, checkpoint_every=1000, log_every=1000)
    result = train(task, cfg, tmp_path, tmp_path / "metrics.jsonl", seed=0, key="k")
    assert json.loads((tmp_path / "trainer.json").read_text())["step"] == result.steps
    assert result.eval == {"val_loss": 1.0}
    assert not list(tmp_path.glob("*.prev.safetensors"))


def test_compiled_training_matches_eager(tmp_path):
    """`compile = true` (the cpu preset's default) trains the same model as eager mode."""
    losses = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=64, n_layer=1, n_embd=32, n_head=2, n_kv_head=2, seq_len=16))
        task = TrainTask(
            model=model,
            train_batch=lambda g, step: (torch.randint(0, 64, (4, 17), generator=g),),
            loss_fn=lambda m, b: m(b[0][:, :-1], targets=b[0][:, 1:]),
            tokens_per_batch=64, flops_per_token=1.0,
        )
        cfg = TrainConfig(max_steps=4, optimizer="muon", compile=compiled, checkpoint_every=1000)
        out = tmp_path / str(compiled)
        losses[compiled] = train(task, cfg, out, out / "metrics.jsonl", seed=0, key="k").final_loss
    assert abs(losses[True] - losses[False]) < 1e-4, losses
