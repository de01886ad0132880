"""torchrun with 2 CPU processes (gloo) trains the same model as gradient accumulation in one,
for pre-training, SFT, reward modelling and DPO, under DDP and FSDP2 alike; a run killed
under torchrun resumes at another world size; a 2-node rendezvous on localhost trains;
`chatforge run` under torchrun leaves rank 0 alone to write.

The stage-level jobs run through tests/dist_stages.py, several per launch (a launch costs
8-10 s on a quiet machine)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from chatforge.align.sft import SFTData, make_task
from chatforge.config import TrainConfig
from chatforge.model.checkpoint import save_model
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.tokenizer.bpe import train_bpe
from chatforge.tokenizer.shards import TokenShards, write_shards
from chatforge.train.loop import micro_rng, rank_micros

ARGS = ["--max-steps", "12", "--checkpoint-every", "100", "--preset", "smoke",
        "tokenizer.vocab_size=300", "pretrain.train.grad_accum=2", "pretrain.train.batch_size=4",
        "pretrain.train.eval_every=100", "run.device=cpu"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _run(cmd: list[str], cwd: Path | None = None, fault: str = "") -> subprocess.CompletedProcess:
    """Run to success, or (with `fault`) until the CHATFORGE_FAULT point kills it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if fault:
        env["CHATFORGE_FAULT"] = fault
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=cwd)
    assert (done.returncode != 0) if fault else (done.returncode == 0), done.stderr[-3000:]
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
            "pretrain.train.max_steps=6", "sft.train.max_steps=4",
            *(f"{s}.train.grad_accum=2" for s in ("pretrain", "sft", "reward", "dpo", "ppo", "grpo"))]
    single = _run([sys.executable, *args, "--run-dir", str(tmp_path / "one")])
    ddp = _run([*TORCHRUN, *args, "--run-dir", str(tmp_path / "two")])
    assert ddp.stderr.count("corpus (running)") == 1 and ddp.stderr.count("sft (running)") == 1
    files = {p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*")
             if "checkpoints" not in p.parts}
    files_ddp = {p.relative_to(tmp_path / "two").as_posix() for p in (tmp_path / "two").rglob("*")
                 if "checkpoints" not in p.parts}
    assert files == files_ddp
    a, b = _last_json(single)["stages"], _last_json(ddp)["stages"]
    for stage in ("pretrain", "reward", "dpo"):
        assert b[stage]["final_loss"] == pytest.approx(a[stage]["final_loss"], abs=1e-3), stage
    manifest = json.loads((tmp_path / "two" / "manifests" / "sft.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_devices"] == 2


STAGES_SCRIPT = str(Path(__file__).parent / "dist_stages.py")
STAGES = ("pretrain", "sft", "reward", "dpo")


def _losses(job_dir: Path) -> list[float]:
    lines = (job_dir / "metrics.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if "loss" in r]


@pytest.fixture(scope="module")
def stage_runs(tmp_path_factory) -> Path:
    """One process: every stage, and a pre-training killed at its first save (step 3); then
    one torchrun launch of 2 processes: every stage under DDP and under FSDP, and the killed
    run resumed under FSDP."""
    out = tmp_path_factory.mktemp("stages")
    _run([sys.executable, STAGES_SCRIPT, str(out), *(f"{s}-ddp:one-{s}" for s in STAGES)])
    _run([sys.executable, STAGES_SCRIPT, str(out), "pretrain-ddp:killed-1"], fault="switched")
    jobs = [f"{s}-{p}" for p in ("ddp", "fsdp") for s in STAGES]
    _run([*TORCHRUN, STAGES_SCRIPT, str(out), *jobs, "pretrain-fsdp:killed-1"])
    return out


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_give_the_per_step_losses_of_one(stage_runs, stage, parallel):
    one, two = _losses(stage_runs / f"one-{stage}"), _losses(stage_runs / f"{stage}-{parallel}")
    assert len(one) == len(two) == 6
    assert two == pytest.approx(one, abs=1e-4)
    assert json.loads((stage_runs / f"{stage}-{parallel}" / "result.json").read_text())["world"] == 2


def test_fsdp_gives_the_losses_of_ddp_and_saves_the_same_layout(stage_runs):
    for stage in STAGES:
        assert _losses(stage_runs / f"{stage}-fsdp") == pytest.approx(_losses(stage_runs / f"{stage}-ddp"), abs=1e-4)
        saves = {p: stage_runs / f"{stage}-{p}" / "checkpoint" for p in ("ddp", "fsdp")}
        files = {p: d / (d / "LATEST").read_text().strip() for p, d in saves.items()}
        for name in ("model.safetensors", "optimizer.safetensors"):
            a, b = load_file(files["ddp"] / name), load_file(files["fsdp"] / name)
            assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
            assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-3) for k in a), (stage, name)


def test_a_run_killed_at_one_world_size_resumes_at_another(stage_runs, tmp_path):
    # killed in 1 process at step 3, resumed under torchrun by 2 FSDP processes
    resumed = json.loads((stage_runs / "killed-1" / "result.json").read_text())
    assert resumed["resumed_from"] == 3 and resumed["world"] == 2
    assert _losses(stage_runs / "killed-1") == pytest.approx(_losses(stage_runs / "one-pretrain"), abs=1e-4)
    # killed under torchrun (2 FSDP processes) at step 3, resumed by 1 process
    out = tmp_path
    _run([*TORCHRUN, STAGES_SCRIPT, str(out), "pretrain-fsdp:killed-2"], fault="switched")
    assert not (out / "killed-2" / "result.json").exists()
    _run([sys.executable, STAGES_SCRIPT, str(out), "pretrain-ddp:killed-2"])
    resumed = json.loads((out / "killed-2" / "result.json").read_text())
    assert resumed["resumed_from"] == 3 and resumed["world"] == 1
    assert _losses(out / "killed-2") == pytest.approx(_losses(stage_runs / "one-pretrain"), abs=1e-4)


def test_ranks_whose_clocks_disagree_stop_together_with_the_same_replica(tmp_path):
    # Rank 1's clock runs 3x as fast: left to their own clocks, the ranks would set different
    # learning rates and rank 1 would stop at a third of the budget while rank 0 waits on it.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DIST_SKEWED_BUDGET": "4"}
    done = subprocess.run([*TORCHRUN, STAGES_SCRIPT, str(tmp_path), "pretrain-ddp:skewed"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / "skewed" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["steps"] == ranks[1]["steps"] > 0
    assert ranks[0]["checksum"] == ranks[1]["checksum"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_localhost_rendezvous_and_train(stage_runs, tmp_path):
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
         "--node_rank", str(rank), "--rdzv-endpoint", f"127.0.0.1:{port}", STAGES_SCRIPT,
         str(tmp_path / f"node{rank}"), "sft-ddp:job"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for rank in (0, 1)]
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    job = tmp_path / "node0" / "job"  # rank 0 (on node 0) writes
    assert json.loads((job / "result.json").read_text())["world"] == 2
    assert not (tmp_path / "node1" / "job" / "metrics.jsonl").exists()
    assert _losses(job) == pytest.approx(_losses(stage_runs / "one-sft"), abs=1e-4)


def test_ranks_draw_disjoint_windows_that_together_are_one_process_batch(tmp_path):
    tok = train_bpe(["alpha beta gamma delta river stone light\n"] * 50, vocab_size=300)
    write_shards([{"text": "alpha beta gamma delta river stone light " * 400}], tok, tmp_path, val_fraction=0.0, seed=0)
    shards = TokenShards(tmp_path, "train")
    grad_accum, step = 4, 7

    def windows(rank: int, world: int) -> list[list[int]]:
        rows = []
        for micro in rank_micros(rank, world, grad_accum):
            x, _ = shards.get_batch(3, 16, micro_rng(1337, step, micro))
            rows += x.tolist()
        return rows

    one = windows(0, 1)
    per_rank = [windows(r, 2) for r in range(2)]
    assert per_rank[0] + per_rank[1] == one  # together: what one process accumulates
    assert set(rank_micros(0, 2, grad_accum)).isdisjoint(rank_micros(1, 2, grad_accum))
