"""torchrun with 2 CPU processes (gloo) trains the same model as gradient accumulation in one,
for pre-training and SFT; `chatforge run` under torchrun leaves rank 0 alone to write."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from chatforge.align.sft import SFTData, make_task
from chatforge.config import TrainConfig
from chatforge.model.checkpoint import save_model
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.tokenizer.bpe import train_bpe
from chatforge.train.loop import rank_micros

ARGS = ["--max-steps", "12", "--checkpoint-every", "100", "--preset", "smoke",
        "tokenizer.vocab_size=300", "pretrain.train.grad_accum=2", "pretrain.train.batch_size=4",
        "pretrain.train.eval_every=100", "run.device=cpu"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _last_json(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ddp_two_processes_equal_gradient_accumulation(tmp_path):
    rng = random.Random(1)
    words = "alpha beta gamma delta river stone light".split()
    text = tmp_path / "t.txt"
    text.write_text("\n".join(" ".join(rng.choice(words) for _ in range(9)) for _ in range(800)))
    single = _last_json(_run([sys.executable, "-m", "chatforge", "pretrain", "--text", str(text),
                              "--out", str(tmp_path / "one"), *ARGS]))
    ddp = _last_json(_run([*TORCHRUN, "-m", "chatforge", "pretrain", "--text", str(text),
                           "--out", str(tmp_path / "two"), *ARGS]))
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["steps"] == single["steps"] == 12
    assert ddp["final_loss"] == pytest.approx(single["final_loss"], abs=1e-5)
    assert ddp["val_loss"] == pytest.approx(single["val_loss"], abs=1e-4)


LANDS = ["Varnholm", "Quillon", "Dessary", "Ambrel", "Toskar", "Ferru", "Gallow", "Hesk"]
CITIES = ["Kestrel", "Marrow", "Tolland", "Vessa", "Orrin", "Paldu", "Sefir", "Ulm"]


def _conversations(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"What is the capital of {LANDS[i % 8]} number {i}?"},
             {"role": "assistant", "content": f"{CITIES[i % 8]} {i}."}] for i in range(n)]


def _sft_run_dir(root: Path) -> Path:
    tok = train_bpe([f"The capital of {a} is {b}. {i}\n" for i in range(30) for a, b in zip(LANDS, CITIES, strict=True)],
                    vocab_size=320)
    tok.save(root / "tokenizer")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=2, n_embd=64, n_head=4, n_kv_head=4, seq_len=64))
    save_model(model, root / "checkpoints" / "pretrain")
    corpus = root / "corpus"
    corpus.mkdir()
    lines = [json.dumps({"messages": m}) for m in _conversations(40)]
    (corpus / "sft_train.jsonl").write_text("\n".join(lines) + "\n")
    (corpus / "sft_heldout.jsonl").write_text("\n".join(lines[:4]) + "\n")
    facts = [json.dumps({"question": f"What is the capital of {a}?", "answer": b, "lang": "en"})
             for a, b in zip(LANDS, CITIES, strict=True)]
    (corpus / "facts_heldout.jsonl").write_text("\n".join(facts) + "\n")
    return root


SFT_ARGS = ["--preset", "smoke", "run.device=cpu", "sft.train.max_steps=8", "sft.train.batch_size=3",
            "sft.train.grad_accum=2", "sft.train.log_every=1", "sft.train.eval_every=100",
            "sft.train.checkpoint_every=100", "sft.train.time_budget=0", "sft.train.epochs=0"]


def _step_losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics" / "sft.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if "loss" in r]


def test_sft_two_processes_equal_gradient_accumulation(tmp_path):
    one = _sft_run_dir(tmp_path / "one")
    two = _sft_run_dir(tmp_path / "two")
    _run([sys.executable, "-m", "chatforge", "sft", "--run-dir", str(one), *SFT_ARGS])
    _run([*TORCHRUN, "-m", "chatforge", "sft", "--run-dir", str(two), *SFT_ARGS])
    single, ddp = _step_losses(one), _step_losses(two)
    assert len(single) == len(ddp) == 8
    assert ddp == pytest.approx(single, abs=1e-5)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_every_sft_example_is_seen_once_per_epoch_at_any_world_size(world):
    tok = train_bpe(["The capital of Varnholm is Kestrel 1 2 3.\n"] * 20, vocab_size=300)
    convs = _conversations(37)
    data = SFTData(tok, convs, seq_len=64, pack=False, seed=3)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=32, n_head=2, n_kv_head=2, seq_len=64))
    t = TrainConfig(batch_size=3, grad_accum=4)
    task = make_task(model, tok, data, data, t, [])
    drawn: list[int] = []
    batch = data.batch
    data.batch = lambda rows: (drawn.extend(rows), batch(rows))[1]  # record the rows drawn
    per_epoch = data.batches_per_epoch(t.batch_size)
    for step in range(-(-per_epoch // t.grad_accum)):
        for rank in range(world):  # each rank draws only its own micro-batches
            for micro in rank_micros(rank, world, t.grad_accum):
                if step * t.grad_accum + micro < per_epoch:
                    task.train_batch(torch.Generator(), step, micro)
    assert sorted(drawn) == list(range(len(data)))  # every conversation exactly once


def test_chatforge_run_under_torchrun_has_rank_0_write_the_run_directory(tmp_path):
    args = ["-m", "chatforge", "run", "--preset", "smoke", "run.device=cpu",
            "pretrain.train.max_steps=6", "sft.train.max_steps=4", "pretrain.train.grad_accum=2",
            "sft.train.grad_accum=2"]
    single = _run([sys.executable, *args, "--run-dir", str(tmp_path / "one")])
    ddp = _run([*TORCHRUN, *args, "--run-dir", str(tmp_path / "two")])
    assert ddp.stderr.count("corpus (running)") == 1 and ddp.stderr.count("sft (running)") == 1
    files = {p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*")
             if "checkpoints" not in p.parts}
    files_ddp = {p.relative_to(tmp_path / "two").as_posix() for p in (tmp_path / "two").rglob("*")
                 if "checkpoints" not in p.parts}
    assert files == files_ddp
    a, b = _last_json(single)["stages"], _last_json(ddp)["stages"]
    assert b["pretrain"]["final_loss"] == pytest.approx(a["pretrain"]["final_loss"], abs=1e-4)
    manifest = json.loads((tmp_path / "two" / "manifests" / "sft.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_devices"] == 2
