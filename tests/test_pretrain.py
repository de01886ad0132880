"""Pre-training on one file: the JSON result, and exact resume after `kill -9`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatforge.model.checkpoint import LATEST
from chatforge.train.loop import SAVE_POINTS

ARGS = ["--max-steps", "160", "--checkpoint-every", "8", "--preset", "smoke",
        "tokenizer.vocab_size=320", "pretrain.train.batch_size=32", "pretrain.train.eval_every=80",
        "pretrain.train.log_every=20", "run.device=cpu"]


def _text_file(path: Path) -> Path:
    rng = random.Random(0)
    words = "the king queen castle river sword night day speaks runs to of and".split()
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + "." for _ in range(3000)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _cmd(text: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "chatforge", "pretrain", "--text", str(text), "--out", str(out), *ARGS]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _saved_step(out: Path) -> int:
    """The step of the save the checkpoint directory's LATEST pointer names."""
    ckpt = out / "checkpoint"
    return json.loads((ckpt / (ckpt / LATEST).read_text().strip() / "trainer.json").read_text())["step"]


def _result(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain")
    text = _text_file(tmp / "input.txt")
    done = subprocess.run(_cmd(text, tmp / "a"), capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return text, _result(done.stdout)


def test_final_json_line_has_the_promised_keys(uninterrupted):
    _, result = uninterrupted
    for key in ("val_bpb", "final_loss", "steps", "params", "tokens_per_s", "mfu", "wall_s"):
        assert key in result, key
    assert result["steps"] == 160
    assert 0 < result["val_bpb"] < 8


def test_kill_9_then_rerun_resumes_to_the_same_final_loss(uninterrupted, tmp_path):
    text, reference = uninterrupted
    out = tmp_path / "b"
    proc = subprocess.Popen(_cmd(text, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            if _saved_step(out) >= 16:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    killed_at = _saved_step(out)
    assert 16 <= killed_at < 160
    again = subprocess.run(_cmd(text, out), capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = _result(again.stdout)
    assert resumed["resumed_from_step"] >= killed_at
    assert resumed["steps"] == 160
    assert resumed["final_loss"] == reference["final_loss"]
    assert resumed["val_bpb"] == pytest.approx(reference["val_bpb"], abs=1e-9)


def test_kills_at_every_file_state_of_a_save_twice_in_a_row_resume_to_the_same_loss(
    uninterrupted, tmp_path
):
    """A real `chatforge pretrain` dies (as kill -9 would) after each file of a save is
    written, twice in a row at each point; every rerun resumes, and the run ends where the
    uninterrupted one did."""
    text, reference = uninterrupted
    out = tmp_path / "c"
    steps = []
    for point in SAVE_POINTS:
        for _ in range(2):
            died = subprocess.run(_cmd(text, out), capture_output=True, text=True, timeout=300,
                                  env={**_env(), "CHATFORGE_FAULT": point})
            assert died.returncode == 137, (point, died.stderr[-1500:])
            steps.append(_saved_step(out) if (out / "checkpoint" / LATEST).exists() else 0)
    assert steps == sorted(steps) and steps[-1] > 0  # progress is never lost
    done = subprocess.run(_cmd(text, out), capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _result(done.stdout)["final_loss"] == reference["final_loss"]
    leftovers = [p.name for p in (out / "checkpoint").iterdir() if p.name != LATEST]
    assert len(leftovers) == 1 and not leftovers[0].endswith(".tmp"), leftovers


def test_another_text_with_the_same_out_is_refused_then_restarted(uninterrupted, tmp_path):
    text, _ = uninterrupted
    small = ["--max-steps", "4", *ARGS[2:]]
    first = subprocess.run([*_cmd(text, tmp_path / "o")[:-len(ARGS)], *small], capture_output=True, text=True, env=_env())
    assert first.returncode == 0, first.stderr[-1500:]
    other = _text_file(tmp_path / "other.txt")
    other.write_text(other.read_text() + "a different ending.\n")
    cmd = [*_cmd(other, tmp_path / "o")[:-len(ARGS)], *small]
    refused = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    assert refused.returncode == 2 and "--restart" in refused.stderr and "text" in refused.stderr
    restarted = subprocess.run([*cmd, "--restart"], capture_output=True, text=True, env=_env())
    assert restarted.returncode == 0, restarted.stderr[-1500:]
    assert _result(restarted.stdout)["resumed_from_step"] == 0


def test_an_explicit_seed_override_wins_over_the_flag_default(tmp_path):
    from chatforge.cli import _config

    assert _config("smoke", {"run.seed": None}, ["run.seed=5"]).run.seed == 5
    assert _config("smoke", {"run.seed": 9}, ["run.seed=5"]).run.seed == 5
    assert _config("smoke", {"run.seed": 9}, []).run.seed == 9


def test_bad_input_is_one_line_error(tmp_path):
    missing = subprocess.run(_cmd(tmp_path / "nope.txt", tmp_path / "o"), capture_output=True,
                             text=True, env=_env())
    assert missing.returncode == 2
    assert "nope.txt: no such file" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello \xff\xfe world\n" * 10)
    invalid = subprocess.run(_cmd(bad, tmp_path / "o2"), capture_output=True, text=True, env=_env())
    assert invalid.returncode == 2 and "not valid UTF-8" in invalid.stderr
