"""Accelerators the estimator knows: dense peak, memory, power and a typical rental price.

Peaks are dense (no 2:4 sparsity) bf16 tensor-core FLOP/s from the vendors' spec sheets, the
figure MFU is quoted against. Prices are rounded typical 2025 on-demand rental rates, not
quotes: every one is printed and can be overridden (`--price`, `--set watts=...`).
"""

from __future__ import annotations

from dataclasses import dataclass

from chatforge.errors import InputError

_PRICE_SOURCE = "typical 2025 on-demand cloud rate, rounded; not a quote (override with --price)"


@dataclass(frozen=True)
class Device:
    key: str
    name: str
    peak_tflops: float  # dense bf16 (fp16 for V100, fp32 for the CPU)
    memory_gb: float
    watts: float  # board TDP (package share for the CPU)
    usd_per_hour: float
    source: str  # where peak, memory and power come from
    price_source: str = _PRICE_SOURCE


DEVICES: dict[str, Device] = {
    d.key: d
    for d in (
        Device("a100", "NVIDIA A100 80GB SXM", 312, 80, 400, 1.50,
               "NVIDIA A100 datasheet: 312 TFLOP/s bf16 dense, 80 GB HBM2e, 400 W"),
        Device("h100", "NVIDIA H100 SXM", 989, 80, 700, 2.50,
               "NVIDIA H100 datasheet: 989 TFLOP/s bf16 dense (1979 with sparsity), 80 GB, 700 W"),
        Device("h800", "NVIDIA H800 SXM", 989, 80, 700, 2.00,
               "H100 die with NVLink cut to 400 GB/s: same 989 TFLOP/s bf16, 80 GB, 700 W",
               "DeepSeek-V3 report's assumed rental price, $2 per H800-hour"),
        Device("h200", "NVIDIA H200 SXM", 989, 141, 700, 3.50,
               "NVIDIA H200 datasheet: 989 TFLOP/s bf16 dense, 141 GB HBM3e, 700 W"),
        Device("b200", "NVIDIA B200", 2250, 180, 1000, 5.00,
               "NVIDIA HGX B200 spec: 2.25 PFLOP/s bf16 dense per GPU, 180 GB HBM3e, 1000 W"),
        Device("mi300x", "AMD Instinct MI300X", 1307, 192, 750, 2.50,
               "AMD MI300X datasheet: 1307 TFLOP/s bf16 dense, 192 GB HBM3, 750 W"),
        Device("v100", "NVIDIA V100 32GB SXM2", 125, 32, 300, 1.50,
               "NVIDIA V100 datasheet: 125 TFLOP/s fp16 tensor (no bf16), 32 GB, 300 W",
               "Lambda Labs' 2020 GPT-3 estimate priced V100s at about $1.50/h"),
        Device("tpu-v4", "Google TPU v4", 275, 32, 192, 3.22,
               "Jouppi et al. 2023 (TPU v4, ISCA): 275 TFLOP/s bf16, 32 GiB HBM, 192 W max",
               "Google Cloud TPU v4 on-demand list price, $3.22 per chip-hour"),
        Device("cpu", "one CPU core (fp32)", 0.0675, 4, 6.25, 0.045,
               "135 GFLOP/s fp32 matmul measured on a 2-core Xeon (AMX) machine, halved "
               "per core; 6.25 W = Xeon Platinum 8480+ 350 W TDP / 56 cores; 4 GB RAM per core",
               "AWS c7i on-demand, $0.0893/h for 2 vCPU = $0.045 per vCPU-hour"),
    )
}

_ALIASES = {"mi300": "mi300x", "tpuv4": "tpu-v4", "tpu": "tpu-v4"}


def get_device(name: str) -> Device:
    """The table entry for a short name (`h100`) or a driver name (`NVIDIA H100 80GB HBM3`)."""
    norm = name.lower().replace(" ", "").replace("_", "-")
    if norm in DEVICES:
        return DEVICES[norm]
    if norm in _ALIASES:
        return DEVICES[_ALIASES[norm]]
    for key in DEVICES:
        if key != "cpu" and key.replace("-", "") in norm.replace("-", ""):
            return DEVICES[key]
    if norm.startswith("cpu"):
        return DEVICES["cpu"]
    raise InputError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
