"""What a chatforge run cost, from its stage manifests, and the same recipe at another scale.

Each stage's manifest (chatforge.runs.RunDir.write_manifest) records wall time, device and
device-hours. Energy is device-hours x the device's power x PUE; dollars are device-hours x a
rental price. On CPU a "device-hour" is counted per busy core, since the table's CPU entry
is one core.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatforge.config import CostConfig, load_config
from chatforge.cost.estimate import (
    DEFAULTS,
    Assumption,
    Estimate,
    check_names,
    check_value,
    estimate,
)
from chatforge.cost.hardware import Device, get_device
from chatforge.cost.presets import count_params
from chatforge.errors import InputError, RunDirError

# Assumptions that apply to the measured run only; the rest go to the scaled estimate.
RUN_ONLY = ("cpu_cores", "watts", "price_usd_per_gpu_hour")


@dataclass(frozen=True)
class StageCost:
    stage: str
    status: str
    wall_s: float
    device: str  # table key
    n_devices: int
    device_hours: float  # core-hours on CPU
    energy_kwh: float
    usd: float


@dataclass
class RunCost:
    run_dir: Path
    stages: list[StageCost]
    params: float | None
    matmul_params: float | None
    tokens: float | None
    mfu: float | None
    assumptions: dict[str, Assumption]
    scaled: Estimate | None = None
    notes: list[str] = field(default_factory=list)

    def total(self, attr: str) -> float:
        return sum(getattr(s, attr) for s in self.stages)

    @property
    def electricity_usd(self) -> float:
        return self.total("energy_kwh") * self.assumptions["electricity_usd_per_kwh"].value

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "stages": [vars(s) for s in self.stages],
            "totals": {k: self.total(k) for k in ("wall_s", "device_hours", "energy_kwh", "usd")},
            "electricity_usd": self.electricity_usd,
            "params": self.params,
            "matmul_params": self.matmul_params,
            "tokens": self.tokens,
            "mfu": self.mfu,
            "assumptions": {
                k: {"value": a.value, "unit": a.unit, "source": a.source}
                for k, a in self.assumptions.items()
            },
            "scaled": self.scaled.to_dict() if self.scaled else None,
            "notes": self.notes,
        }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _run_cost_config(root: Path) -> CostConfig:
    path = root / "config.toml"
    return load_config(str(path)).cost if path.exists() else CostConfig()


def _model(root: Path) -> tuple[float | None, float | None]:
    """Parameters of the run's pre-trained model, from checkpoints/<stage>/model.json."""
    files = sorted((root / "checkpoints").glob("*/model.json"))
    preferred = [f for f in files if f.parent.name in ("base", "pretrain")] or files
    if not preferred:
        return None, None
    from chatforge.model.gpt import GPTConfig

    meta = _read_json(preferred[0])
    try:
        gcfg = GPTConfig(**meta["config"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"{preferred[0]}: 'config' is not a GPT architecture ({exc})") from None
    total, matmul = count_params(gcfg)
    return float(total), float(matmul)


def measure_run(
    run_dir: str | Path,
    gpu: str | None = None,
    price: float | None = None,
    overrides: dict[str, float] | None = None,
    scale_params: float | None = None,
    scale_tokens: float | None = None,
    scale_gpu: str = "h100",
    scale_mfu: float | None = None,
) -> RunCost:
    """Cost of each stage of a run, and (with `scale_params`) the recipe at that size.

    The scaled run keeps the run's tokens per parameter unless `scale_tokens` is given.
    """
    root = Path(run_dir)
    paths = sorted((root / "manifests").glob("*.json"))
    if not paths:
        raise RunDirError(f"{root}: no manifests/*.json (not a chatforge run, or no stage ran)")
    over = dict(overrides or {})
    check_names(over, set(DEFAULTS) | set(RUN_ONLY))
    cost_cfg = _run_cost_config(root)
    sources = "run config.toml [cost]" if (root / "config.toml").exists() else "CostConfig default"
    a: dict[str, Assumption] = {}

    def put(key: str, value: float, unit: str, source: str) -> float:
        if key in over:
            value, source = over[key], "override"
        a[key] = Assumption(check_value(key, float(value)), unit, source)
        return a[key].value

    cores = put("cpu_cores", os.cpu_count() or 1, "cores",
                "cores busy during a CPU stage: this machine's os.cpu_count()")
    pue = put("pue", cost_cfg.pue, "", f"{sources}; {DEFAULTS['pue'].source}")
    put("electricity_usd_per_kwh", cost_cfg.electricity_usd_per_kwh, "USD/kWh", sources)
    host = put("host_power_factor", DEFAULTS["host_power_factor"].value, "x TDP",
               DEFAULTS["host_power_factor"].source)
    fallback_gpu = gpu or (cost_cfg.gpu if cost_cfg.gpu != "cpu" else None)

    stages, seen = [], set()
    notes: list[str] = []
    cpu_labels: set[str] = set()
    # Pipeline order: by start time, not file name.
    manifests = sorted(((p, _read_json(p)) for p in paths), key=lambda pm: pm[1].get("started", 0))
    for path, m in manifests:
        if "wall_s" not in m:
            raise InputError(f"{path}: manifest without 'wall_s'")
        name = str(m.get("stage", path.stem))
        kind = str(m.get("device", ""))  # the torch device type: "cpu", "cuda", "cuda:0"
        label = str(m.get("device_name") or kind or "cpu")  # the model: "Intel(R) Xeon(R) ..."
        n = int(m.get("n_devices", 1))
        wall = float(m["wall_s"])
        if kind.startswith("cpu") or (not kind and label.lower().startswith("cpu")):
            dev = get_device("cpu")
            hours = wall * cores / 3600
            if label not in cpu_labels:
                cpu_labels.add(label)
                notes.append(f"CPU stages ran on {label}: costed as {cores:g} busy cores at the "
                             "table's per-core price and power, not as a GPU")
        else:
            dev = _accelerator(label, fallback_gpu, path)
            hours = float(m.get("device_hours", wall * n / 3600))
        if dev.key not in seen:
            seen.add(dev.key)
            put(f"watts_{dev.key}", over.get("watts", dev.watts), "W",
                "override" if "watts" in over else dev.source)
            unit_price, src = _price(dev, price, over, cost_cfg, sources)
            a[f"price_{dev.key}"] = Assumption(check_value("price", float(unit_price)), "USD/device-hour", src)
        kwh = hours * a[f"watts_{dev.key}"].value * host * pue / 1000
        stages.append(StageCost(name, str(m.get("status", "?")), wall, dev.key, n, hours, kwh,
                                hours * a[f"price_{dev.key}"].value))

    params, matmul = _model(root)
    pre = next((m for p, m in manifests if p.stem in ("pretrain", "base")), None)
    metrics = (pre or {}).get("metrics", {})
    tokens = float(metrics["tokens"]) if "tokens" in metrics else None
    if params is None and "params" in metrics:  # no checkpoint kept: the stage's own count
        params = float(metrics["params"])
    mfu = float(metrics["mfu"]) if "mfu" in metrics else None
    scaled = None
    if scale_params:
        extra = {k: v for k, v in over.items() if k not in RUN_ONLY}
        if scale_tokens:
            ratio = scale_tokens / scale_params
            src = {"tokens": "given"}
        elif tokens and params:
            ratio = tokens / params
            src = {"tokens": f"this run's recipe: {ratio:.3g} tokens per parameter"}
            notes.append(f"scaled with this run's {ratio:.3g} tokens per parameter")
        else:
            ratio = DEFAULTS["tokens_per_param"].value
            src = {"tokens": "Chinchilla 20 tokens/param: the run records no token count"}
        # The run's own MFU (often a CPU's) says nothing about a GPU cluster: use the default.
        scaled = estimate(scale_params, scale_params * ratio, scale_gpu, mfu=scale_mfu,
                          overrides=extra, sources=src, label="scaled recipe")
    return RunCost(root, stages, params, matmul, tokens, mfu, a, scaled, notes)


def _price(
    dev: Device, price: float | None, over: dict[str, float], cost_cfg: CostConfig, source: str
) -> tuple[float, str]:
    """Price per device-hour: given, overridden, the run's [cost] price (GPUs), else the table."""
    if price is not None:
        return price, "given"
    if "price_usd_per_gpu_hour" in over:
        return over["price_usd_per_gpu_hour"], "override"
    if dev.key != "cpu" and cost_cfg.price_usd_per_gpu_hour:
        return cost_cfg.price_usd_per_gpu_hour, source
    return dev.usd_per_hour, dev.price_source


def _accelerator(label: str, fallback: str | None, path: Path) -> Device:
    try:
        return get_device(label)
    except InputError:
        if fallback is None:
            raise RunDirError(
                f"{path}: device {label!r} does not name a known GPU; pass --gpu NAME"
            ) from None
        return get_device(fallback)
