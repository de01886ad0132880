"""`chatforge run --preset smoke`: the whole pipeline end to end, then caching and re-runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_run

from chatforge.config import load_config
from chatforge.model.checkpoint import resolve_checkpoint
from chatforge.pipeline import RunClock, stage_keys
from chatforge.runs import RunDir

# Re-runs in these tests leave out the stages after SFT: what they check ends there, and each of
# those stages costs as much again as the rest of a smoke run.
LIGHT = ("prefs.enabled=false", "eval.enabled=false", "redteam.enabled=false", "report.enabled=false")


def _run(run_dir: Path, *overrides: str) -> tuple[dict, str]:
    cmd = [sys.executable, "-m", "chatforge", "run", "--preset", "smoke", "--run-dir", str(run_dir),
           *overrides]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.fixture(scope="module")
def pipeline_run(smoke_run, tmp_path_factory) -> tuple[Path, dict, str]:
    """A copy of the session's smoke run (these tests re-run it with other settings), with its
    final JSON line and log."""
    run_dir = copy_run(smoke_run, tmp_path_factory.mktemp("runs") / "smoke")
    return run_dir, json.loads((smoke_run / "run.json").read_text()), (smoke_run / "run.log").read_text()


def test_every_stage_completes_with_manifest_and_artifacts(pipeline_run):
    run_dir, summary, _ = pipeline_run
    run = RunDir(run_dir)
    cfg = load_config("smoke")
    for stage, key in stage_keys(cfg).items():
        manifest = run.manifest(stage)
        assert manifest and manifest["status"] == "complete" and manifest["key"] == key, stage
        assert manifest["wall_s"] >= 0 and "device_hours" in manifest
        assert manifest["device_name"], stage
    assert (run_dir / "config.toml").exists()
    assert (run_dir / "tokenizer" / "tokenizer.json").exists()
    assert (run_dir / "tokens" / "index.json").exists()
    assert (resolve_checkpoint(run_dir / "checkpoints" / "pretrain") / "model.safetensors").exists()
    assert (run_dir / "metrics" / "pretrain.jsonl").read_text().strip()
    assert (run_dir / "samples" / "pretrain.txt").read_text().strip()
    assert summary["stages"]["pretrain"]["val_bpb"] > 0
    assert not list(run_dir.rglob("*.tmp")), "a temp file was left behind"


def test_second_run_skips_everything(pipeline_run):
    run_dir, _, _ = pipeline_run
    before = {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").rglob("*") if p.is_file()}
    _, log = _run(run_dir)
    assert "up to date" in log
    assert "running" not in log.replace("up to date", "")
    after = {p: p.stat().st_mtime_ns for p in (run_dir / "checkpoints").rglob("*") if p.is_file()}
    assert before == after


def test_changing_pretrain_config_reruns_only_downstream(pipeline_run):
    run_dir, _, _ = pipeline_run
    cfg_a = load_config("smoke")
    cfg_b = load_config("smoke", ["pretrain.train.max_steps=31"])
    a, b = stage_keys(cfg_a), stage_keys(cfg_b)
    changed = {s for s in a if a[s] != b[s]}
    assert "pretrain" in changed and "corpus" not in changed and "tokenizer" not in changed
    tokenizer_mtime = (run_dir / "tokenizer" / "tokenizer.json").stat().st_mtime_ns
    summary, log = _run(run_dir, "pretrain.train.max_steps=31", *LIGHT)
    assert summary["stages"]["pretrain"]["steps"] == 31
    assert (run_dir / "tokenizer" / "tokenizer.json").stat().st_mtime_ns == tokenizer_mtime


def _run_fails(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "chatforge", "run", "--preset", "smoke", "--run-dir", str(run_dir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})


def test_editing_an_sft_data_file_reruns_sft_and_nothing_upstream(pipeline_run, tmp_path):
    run_dir, _, _ = pipeline_run
    extra = tmp_path / "extra.jsonl"
    conv = {"messages": [{"role": "user", "content": "What is the answer?"},
                         {"role": "assistant", "content": "Forty-two."}]}
    extra.write_text(json.dumps(conv) + "\n")
    _, log = _run(run_dir, f"sft.data={extra}", "--restart", *LIGHT)
    pretrain_ckpt = resolve_checkpoint(run_dir / "checkpoints" / "pretrain")
    sft_before = resolve_checkpoint(run_dir / "checkpoints" / "sft")
    extra.write_text(json.dumps(conv).replace("Forty-two", "Forty-three") + "\n")
    refused = _run_fails(run_dir, f"sft.data={extra}", *LIGHT)
    assert refused.returncode == 2 and "--restart" in refused.stderr and "data" in refused.stderr
    _, log = _run(run_dir, f"sft.data={extra}", "--restart", *LIGHT)
    for stage in ("corpus", "data", "tokenizer", "tokens", "pretrain"):
        assert f"= {stage}: up to date" in log, stage
    assert "✓ sft" in log
    assert resolve_checkpoint(run_dir / "checkpoints" / "pretrain") == pretrain_ckpt
    assert resolve_checkpoint(run_dir / "checkpoints" / "sft") != sft_before


@pytest.mark.parametrize("bad", ["sft.train.eval_evry=3", "pretrain.train.checkpoint_every=0",
                                 "corpus.n_people=0", "data.langid_threshold=2", "cost.pue=nan"])
def test_a_bad_key_in_any_section_fails_fast_before_any_stage_runs(tmp_path, bad):
    import time

    started = time.perf_counter()
    done = _run_fails(tmp_path / "never", bad)
    elapsed = time.perf_counter() - started
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and bad.split("=")[0] in done.stderr
    assert not (tmp_path / "never").exists()  # no stage ran
    assert elapsed < 2.0, elapsed


def test_a_run_budget_shrinks_a_training_budget_and_the_rerun_is_up_to_date(pipeline_run):
    run_dir, _, _ = pipeline_run
    args = ("run.time_budget=1", "pretrain.train.time_budget=20", "pretrain.train.max_steps=100000",
            "--only", "corpus,data,tokenizer,tokens,pretrain")
    _, log = _run(run_dir, *args)
    assert "pretrain: trains 6 s of its 20 s budget" in log
    manifest = RunDir(run_dir).manifest("pretrain")
    assert manifest["metrics"]["train_budget_s"] == pytest.approx(20 * RunClock.MIN_SCALE)
    assert manifest["metrics"]["wall_s"] < 20 * RunClock.MIN_SCALE + 5  # its training time
    _, log = _run(run_dir, *args)
    assert "= pretrain: up to date" in log and "running" not in log.replace("up to date", "")
