"""torchrun with 2 CPU processes (gloo) trains the same model as gradient accumulation."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

ARGS = ["--max-steps", "12", "--checkpoint-every", "100", "--preset", "smoke",
        "tokenizer.vocab_size=300", "pretrain.grad_accum=2", "pretrain.batch_size=4",
        "pretrain.eval_every=100", "run.device=cpu"]


def _run(cmd: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ddp_two_processes_equal_gradient_accumulation(tmp_path):
    rng = random.Random(1)
    words = "alpha beta gamma delta river stone light".split()
    text = tmp_path / "t.txt"
    text.write_text("\n".join(" ".join(rng.choice(words) for _ in range(9)) for _ in range(800)))
    single = _run([sys.executable, "-m", "chatforge", "pretrain", "--text", str(text),
                   "--out", str(tmp_path / "one"), *ARGS])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp = _run([*torchrun, "-m", "chatforge", "pretrain", "--text", str(text),
                "--out", str(tmp_path / "two"), *ARGS])
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["steps"] == single["steps"] == 12
    assert ddp["final_loss"] == pytest.approx(single["final_loss"], abs=1e-5)
    assert ddp["val_loss"] == pytest.approx(single["val_loss"], abs=1e-4)
