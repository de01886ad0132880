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

ARGS = ["--max-steps", "160", "--checkpoint-every", "8", "--preset", "smoke",
        "tokenizer.vocab_size=320", "pretrain.batch_size=32", "pretrain.eval_every=80",
        "pretrain.log_every=20", "run.device=cpu"]


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
    trainer = out / "checkpoint" / "trainer.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(trainer.read_text())["step"] >= 16:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    killed_at = json.loads(trainer.read_text())["step"]
    assert 16 <= killed_at < 160
    again = subprocess.run(_cmd(text, out), capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = _result(again.stdout)
    assert resumed["resumed_from_step"] >= killed_at
    assert resumed["steps"] == 160
    assert resumed["final_loss"] == reference["final_loss"]
    assert resumed["val_bpb"] == pytest.approx(reference["val_bpb"], abs=1e-9)


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
