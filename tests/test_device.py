"""Device helpers: the allocator setting that keeps CPU training from page-faulting, the
precision chosen per device, MFU peaks, the plan printed before training, and the GPU presets
started on a CPU with their dimensions scaled down."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from chatforge import device
from chatforge.errors import ConfigError
from chatforge.train.loop import expected_run

SCRIPT = """
import ctypes, resource, sys, torch
from chatforge.device import keep_cpu_memory_mapped

# glibc's starting threshold (128 KiB), pinned: its own later adjustment depends on history.
ctypes.CDLL("libc.so.6").mallopt(-3, 128 << 10)

def faults_of_steps():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):  # a step: activations pile up (8 x 16 MiB), then all are freed
        activations = [torch.ones(4 << 20) for _ in range(8)]
        del activations
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_steps()
default = faults_of_steps()
assert keep_cpu_memory_mapped()
faults_of_steps()
print(default, faults_of_steps())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_tensors_stay_mapped_after_keep_cpu_memory_mapped():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    default, kept = map(int, out.stdout.split())
    assert default > 5 * 8 * 4000  # every step faulted its 8 x 4096 pages in again
    assert kept < default / 10


def test_precision_picks_bf16_only_where_it_is_fast_and_can_be_forced(monkeypatch):
    cpu = torch.device("cpu")
    for flags, fast in (({"avx2"}, False), ({"avx512_bf16"}, True), ({"amx_bf16", "amx_tile"}, True)):
        monkeypatch.setattr(device, "_cpu_flags", lambda f=flags: frozenset(f))
        assert device.compute_dtype(cpu, "auto") == (torch.bfloat16 if fast else torch.float32)
        assert device.compute_dtype(cpu, "fp32") == torch.float32
        assert device.compute_dtype(cpu, "bf16") == torch.bfloat16
    with pytest.raises(ConfigError, match="precision 'fp16'"):
        device.compute_dtype(cpu, "fp16")


def test_bf16_autocast_runs_cpu_matmuls_in_bf16_and_fp32_runs_none():
    a = torch.randn(8, 8)
    with device.autocast(torch.device("cpu"), torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
    with device.autocast(torch.device("cpu"), torch.float32):
        assert (a @ a).dtype == torch.float32


def test_gpu_peaks_come_from_the_cost_table_and_unknown_gpus_count_as_a100():
    assert device.gpu_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert device.gpu_peak_flops("NVIDIA H200") == 989e12
    assert device.gpu_peak_flops("Tesla T4") == 312e12


def test_the_expected_hours_and_cost_follow_from_flops_peak_and_price():
    # 1000 steps x 1M tokens x 1e9 FLOP/token = 1e18 FLOP; at 40% of 989 TFLOP/s x 8 GPUs
    line = expected_run(1000, 1_000_000, 1e9, 989e12, 8, "NVIDIA H100 80GB HBM3")
    hours = 1e18 / (0.4 * 989e12 * 8) / 3600
    assert f"expected {hours:.3g} h" in line and f"${hours * 8 * 2.50:,.0f} (h100" in line
    assert "$" not in expected_run(10, 100, 1e6, 1e11, 1, None)


def pretrain_two_steps(preset: str, source: list[str], out) -> subprocess.CompletedProcess:
    """`chatforge pretrain` of a GPU preset scaled down (TINY), two steps, checked for success."""
    cmd = [sys.executable, "-m", "chatforge", "pretrain", "--preset", preset, *source,
           "--out", str(out), "--max-steps", "2", *TINY]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["steps"] == 2 and result["val_bpb"] > 0
    return done


@pytest.mark.parametrize("preset", ["d12", "d20"])
def test_the_gpu_presets_start_on_cpu_with_their_dimensions_scaled_down(preset, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the river runs by the stone and the light\n" * 300)
    done = pretrain_two_steps(preset, ["--text", str(text)], tmp_path / "out")
    assert "2 steps x 1,024 tokens" in done.stderr and "expected" in done.stderr  # the plan


def test_a_gpu_preset_trains_on_a_local_parquet_corpus_given_as_data(tmp_path):
    corpus = tmp_path / "corpus.parquet"
    rows = [f"the river {i} runs by the stone {i % 7} and the light of town {i % 5}." for i in range(400)]
    pq.write_table(pa.table({"text": rows}), corpus)
    pretrain_two_steps("d12", ["--data", str(corpus)], tmp_path / "out")
    index = json.loads((tmp_path / "out" / "tokens" / "index.json").read_text())
    assert index["splits"]["train"]["docs"] + index["splits"]["val"]["docs"] == 400


# The GPU presets' own settings (optimizer, grad_accum 8, schedule, eval intervals) with the
# dimensions a CPU test can afford; compiling costs more than two steps.
TINY = ["model.depth=2", "model.head_dim=32", "model.seq_len=64", "tokenizer.vocab_size=300",
        "pretrain.train.batch_size=2", "pretrain.train.compile=false"]
