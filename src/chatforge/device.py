"""Device and dtype are chosen here and only here."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import time
from contextlib import nullcontext

import torch

from chatforge.cost.hardware import DEVICES, get_device
from chatforge.errors import ConfigError, InputError

PRECISIONS = ("auto", "bf16", "fp32")


def pick_device(requested: str = "auto") -> torch.device:
    """`auto` prefers CUDA, then Apple MPS, then the CPU; a named device must exist here,
    or it is a one-line ConfigError rather than a traceback at the first tensor moved."""
    if requested != "auto":
        return _checked_device(requested)
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        return torch.device(f"cuda:{local_rank}")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _checked_device(requested: str) -> torch.device:
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {requested!r}: not a device (use cpu, cuda, cuda:N, mps or auto)")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {requested!r}: no CUDA GPU is visible to this torch "
                              f"{torch.__version__} (use cpu or auto)")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {requested!r}: only {count} CUDA device(s) here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {requested!r}: Apple MPS is not available here (use cpu or auto)")
    return device


def device_name(device_type: str) -> str:
    """A human-readable name of the device a stage ran on (GPU model or CPU model)."""
    if device_type.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    if device_type == "mps":
        return "Apple MPS"
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "cpu"


def _cpuinfo(key: str) -> str:
    """The value of the first `key : value` line of /proc/cpuinfo ("" off Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


@functools.cache
def _cpu_flags() -> frozenset[str]:
    return frozenset(_cpuinfo("flags").split())


def fast_bf16_matmul(device: torch.device) -> bool:
    """Whether bf16 matmuls beat fp32 here: CUDA with bf16, or a CPU with bf16 dot products
    in hardware (AMX-BF16 tiles on Xeons, AVX512-BF16 on Zen 4 and later Xeons).

    Decided from the hardware's flags (read once), not by timing, so every process of a run
    (and a resumed run) makes the same choice. On a Xeon with AMX a 2048^2 bf16 matmul ran at
    about 2 TFLOP/s against 0.32 for fp32; on this project's AVX512-BF16 EPYC a 1024^2 one ran
    about 4x faster than fp32; without either, oneDNN emulates bf16 and it is slower than fp32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool({"amx_bf16", "avx512_bf16"} & _cpu_flags())


def compute_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """The dtype matmuls run in: `auto` = bf16 where it is fast (see fast_bf16_matmul), else
    fp32; `bf16` / `fp32` force it. Weights and optimizer state stay fp32 either way."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.bfloat16 if fast_bf16_matmul(device) else torch.float32
    if precision == "bf16" and device.type == "mps":
        raise ConfigError("precision bf16: not supported on Apple MPS here (use fp32 or auto)")
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast(device: torch.device, dtype: torch.dtype = torch.float32):
    """Autocast to `dtype` (bf16) on CUDA or CPU; plain fp32 (no context) otherwise."""
    if dtype == torch.bfloat16 and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)


@functools.cache
def keep_cpu_memory_mapped() -> bool:
    """Stop glibc from returning every large tensor's pages to the OS when it is freed.

    By default glibc serves blocks above ~128 KiB-32 MiB with mmap and unmaps them on free, so
    each training step page-faults its activations in again (the kernel zeroes every page): on
    the cpu preset 2-3 million minor faults per 20 steps and ~12% of the CPU time in the
    kernel. Heap-serving blocks up to 32 MiB (glibc's maximum) and trimming the heap only
    beyond 1 GiB cut the faults 6-8x and made a step ~8% faster, the effect PyTorch's CPU
    launcher gets by preloading jemalloc or tcmalloc. Process-wide; a no-op off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        return False


def measure_cpu_matmul_peak(sizes: tuple[int, ...] = (1024, 2048), seconds: float = 0.5,
                            dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of square `dtype` matmuls on this CPU with the current thread count.

    The best single multiply, not the mean: the peak is what the hardware can do when nothing
    else competes for it.
    """
    best = 0.0
    for size in sizes:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            a @ b
            best = max(best, 2 * size**3 / (time.perf_counter() - t0))
    return best


def gpu_peak_flops(name: str) -> float:
    """Dense bf16 peak of a GPU by its driver name (the cost table's figure); an unknown GPU
    is taken as A100-class rather than failing a run over an MFU figure."""
    try:
        spec = get_device(name)
    except InputError:
        spec = DEVICES["a100"]
    return (spec if spec.key != "cpu" else DEVICES["a100"]).peak_tflops * 1e12


def peak_flops(device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """Peak FLOP/s for MFU, of the dtype the matmuls actually run in: the GPU's bf16 spec
    (fp32 training on a GPU is quoted against it too: that is what the hardware offers), or
    this CPU's matmul peak in `dtype`, measured now (about a second). It is not cached: a
    figure measured while other work loaded the machine would understate every later MFU.
    """
    if device.type == "cuda":
        return gpu_peak_flops(torch.cuda.get_device_name(device))
    return measure_cpu_matmul_peak(dtype=dtype)
