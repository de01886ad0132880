"""Device helpers: the allocator setting that keeps CPU training from page-faulting."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
