"""What training a model costs: compute, energy, memory, the other cost lines, and a timeline.

Every number the estimate rests on is an `Assumption` with a value, a unit and a source, and
every one can be overridden by name (`overrides={"pue": 1.1}`, `--set pue=1.1`). The
arithmetic is the standard one:

    FLOPs = D * (6 N + 12 * layers * heads * head_dim * seq)   (Kaplan et al.; PaLM app. B)
    GPU-hours = FLOPs / (peak * MFU * 3600)

with N the parameters active per token (all of them for a dense model).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from chatforge.config import CostConfig
from chatforge.cost.hardware import Device, get_device
from chatforge.errors import ConfigError

HOURS_PER_MONTH = 730.0  # 8760 / 12
DAYS_PER_MONTH = 30.44

INSTRUCTGPT = "Ouyang et al. 2022 (InstructGPT) sec. 5.1: SFT 4.9, PPO-ptx 60 vs GPT-3 3640 PF-days"


@dataclass(frozen=True)
class Assumption:
    value: float
    unit: str
    source: str


def _a(value: float, unit: str, source: str) -> Assumption:
    return Assumption(float(value), unit, source)


_COST = CostConfig()
DEFAULTS: dict[str, Assumption] = {
    # training
    "mfu": _a(0.40, "fraction of peak",
              "Llama 3.1 405B reached 38-43% bf16 MFU on 16k H100 (Llama 3 paper, table 4)"),
    "tokens_per_param": _a(20, "tokens/param", "Chinchilla-optimal (Hoffmann et al. 2022)"),
    "aspect_ratio": _a(128, "width/layers",
                       "used only to infer a shape from N: GPT-3 175B has 12288/96 = 128"),
    "head_dim": _a(128, "", "used only to infer a shape: GPT-3, Llama 2/3 all use 128"),
    "seq_len": _a(4096, "tokens", "used only when not given: Llama 2's training context"),
    "target_days": _a(90, "days",
                      "sets the GPU count when not given: GPT-4's ~90-100 days, the seed's 3-6 months"),
    "gpus_per_node": _a(8, "", "HGX/DGX servers hold 8 GPUs; counts are rounded up to whole servers"),
    "pue": _a(_COST.pue, "",
              "chatforge CostConfig.pue: modern GPU facility; Google fleet 1.10, industry average "
              "~1.58 (Uptime Institute 2023)"),
    "electricity_usd_per_kwh": _a(_COST.electricity_usd_per_kwh, "USD/kWh",
                                  "chatforge CostConfig: about the US commercial/industrial "
                                  "average (EIA 2023: ~$0.08 industrial, ~$0.13 commercial)"),
    "host_power_factor": _a(1.0, "x GPU TDP",
                            "GPU TDP only, as Meta's Llama model cards count it; a DGX H100 draws "
                            "10.2 kW for 8 x 700 W GPUs, set 1.8 to count whole servers"),
    # memory (mixed-precision Adam, ZeRO accounting)
    "weight_bytes": _a(2, "bytes/param", "bf16 weights (Rajbhandari et al. 2020, ZeRO sec. 3)"),
    "grad_bytes": _a(2, "bytes/param", "bf16 gradients (ZeRO sec. 3)"),
    "optimizer_bytes": _a(12, "bytes/param",
                          "fp32 master weights + Adam m and v, 4+4+4 (ZeRO sec. 3)"),
    "activation_bytes": _a(34, "bytes per token per width per layer",
                           "Korthikanti et al. 2022 eq. 1: s*b*h*(34 + 5*a*s/h); the 5as/h term "
                           "(stored attention scores) is 0 with FlashAttention/SDPA"),
    "recompute_bytes": _a(2, "bytes per token per width per layer",
                          "full activation checkpointing keeps each layer's bf16 input "
                          "(Korthikanti et al. 2022 sec. 4), plus one layer's 34 working set"),
    "micro_batch": _a(1, "sequences/GPU", "the smallest micro-batch, for the memory lower bound"),
    "usable_memory": _a(0.9, "fraction",
                        "CUDA context, allocator fragmentation and NCCL buffers take ~10%"),
    # post-training
    "sft_compute_fraction": _a(4.9 / 3640, "of pre-training", INSTRUCTGPT),
    "rlhf_compute_fraction": _a(60 / 3640, "of pre-training", INSTRUCTGPT),
    "sft_iteration_months": _a(1, "months", "assumption: data/recipe iterations around SFT runs"),
    "rlhf_iteration_months": _a(2, "months",
                                "assumption: Llama 2 ran 5 RLHF rounds (V1-V5) with fresh "
                                "comparisons each (Touvron et al. 2023 sec. 3.2)"),
    # data preparation
    "raw_tb_per_t_tokens": _a(640, "TB gzipped WARC per 1T kept tokens",
                              "a Common Crawl snapshot is ~3B pages, ~100 TB of WARC.gz; FineWeb "
                              "kept 15T tokens from 96 snapshots (~156B per snapshot)"),
    "cpu_hours_per_raw_tb": _a(167, "core-hours/TB",
                               "~30k pages per GB of WARC.gz x ~20 ms per page for extraction "
                               "(trafilatura-class), language ID, quality filters and MinHash"),
    "cpu_usd_per_core_hour": _a(0.045, "USD/core-hour",
                                "AWS c7i on-demand, $0.0893/h for 2 vCPU"),
    "data_cores": _a(10_000, "cores", "assumption: a modest batch cluster for the data pipeline"),
    "data_engineering_months": _a(2, "months",
                                  "assumption: building the pipeline and ablating filters "
                                  "before the final pass"),
    "clean_bytes_per_token": _a(8, "bytes/token",
                                "~4 bytes of UTF-8 text per BPE token (English) + a uint32 id"),
    "storage_usd_per_tb_month": _a(23, "USD/TB-month", "AWS S3 Standard, $0.023 per GB-month"),
    # human labelling
    "sft_demos": _a(1_000_000, "demonstrations",
                    "the seed's volume (millions of examples); InstructGPT used ~13k prompts, "
                    "Llama 2 27,540 vendor-written annotations"),
    "minutes_per_demo": _a(15, "minutes", "assumption: a skilled writer drafts and checks one answer"),
    "comparisons": _a(300_000, "comparisons",
                      "the seed's volume (hundreds of thousands); Llama 2 collected 1.42M"),
    "minutes_per_comparison": _a(5, "minutes", "assumption: read a prompt and two answers, rank"),
    "labeller_usd_per_hour": _a(25, "USD/hour", "assumption: skilled contract annotator rate"),
    "labelling_overhead": _a(1.5, "x", "assumption: vendor margin, quality review and rework"),
    "labellers": _a(1000, "people", "assumption: size of the labelling workforce"),
    "labeller_hours_per_month": _a(160, "hours", "a full-time month"),
    # evaluation and red teaming
    "eval_checkpoints": _a(50, "checkpoints", "assumption: checkpoints evaluated in the project"),
    "eval_tokens_per_checkpoint": _a(5e8, "tokens",
                                     "assumption: a broad suite; MMLU 5-shot alone is ~14k x 2k "
                                     "= 28M tokens"),
    "human_eval_ratings": _a(10_000, "ratings", "assumption: side-by-side human evaluation"),
    "minutes_per_rating": _a(3, "minutes", "assumption"),
    "red_team_experts": _a(50, "people", "GPT-4 system card: over 50 domain experts red-teamed it"),
    "red_team_hours_each": _a(100, "hours", "assumption"),
    "red_team_usd_per_hour": _a(100, "USD/hour", "assumption: domain-expert consulting rate"),
    "eval_safety_months": _a(3, "months",
                             "assumption; OpenAI spent ~6 months on GPT-4 alignment and safety "
                             "after pre-training (GPT-4 technical report)"),
    "deployment_months": _a(1, "months", "assumption: serving stack, staged rollout"),
}

SHAPE_KEYS = ("layers", "heads", "head_dim", "seq_len", "width")
HARDWARE_KEYS = ("peak_tflops", "gpu_memory_gb", "watts", "price_usd_per_gpu_hour")


@dataclass(frozen=True)
class LineItem:
    name: str
    usd: float
    detail: str


@dataclass(frozen=True)
class Phase:
    name: str
    start_month: float
    months: float
    detail: str

    @property
    def end_month(self) -> float:
        return self.start_month + self.months


@dataclass
class Estimate:
    """The result: headline numbers, memory, cost lines, timeline and every assumption."""

    label: str
    device: Device
    gpus: int
    params: float
    active_params: float
    tokens: float
    flops_per_token: float
    attention_flops_per_token: float
    flops: float
    gpu_hours: float
    days: float
    cost_usd: float
    energy_mwh: float
    electricity_usd: float
    power_mw: float
    memory_gb: dict[str, float]
    min_gpus: int
    lines: list[LineItem]
    timeline: list[Phase]
    assumptions: dict[str, Assumption]
    published: dict[str, tuple[float, str]] = field(default_factory=dict)

    @property
    def total_usd(self) -> float:
        return sum(line.usd for line in self.lines)

    @property
    def months(self) -> float:
        return max(p.end_month for p in self.timeline)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "gpu": self.device.key,
            "gpus": self.gpus,
            "params": self.params,
            "active_params": self.active_params,
            "tokens": self.tokens,
            "flops_per_token": self.flops_per_token,
            "attention_flops_per_token": self.attention_flops_per_token,
            "flops": self.flops,
            "gpu_hours": self.gpu_hours,
            "days": self.days,
            "cost_usd": self.cost_usd,
            "energy_mwh": self.energy_mwh,
            "electricity_usd": self.electricity_usd,
            "power_mw": self.power_mw,
            "memory_gb": self.memory_gb,
            "min_gpus": self.min_gpus,
            "lines": [{"name": x.name, "usd": x.usd, "detail": x.detail} for x in self.lines],
            "total_usd": self.total_usd,
            "timeline": [
                {"phase": p.name, "start_month": p.start_month, "months": p.months,
                 "detail": p.detail}
                for p in self.timeline
            ],
            "months": self.months,
            "assumptions": {
                k: {"value": a.value, "unit": a.unit, "source": a.source}
                for k, a in self.assumptions.items()
            },
            "published": {k: {"value": v, "source": s} for k, (v, s) in self.published.items()},
        }


# No assumption is negative (a count, a price, a power, a fraction) and none is near float's
# range: 1e18 is above any real parameter or token count, and the FLOPs product stays finite.
MAX_VALUE = 1e18
# Where a physical bound is stricter than >= 0: a facility cannot use less power than its IT.
_MIN_VALUE = {"pue": 1.0}


def check_value(name: str, value: float) -> float:
    """`value`, or a ConfigError naming the assumption when it is NaN, infinite or out of range
    (a negative price or PUE would print negative dollars and energy)."""
    low = _MIN_VALUE.get(name, 0.0)
    if not (math.isfinite(value) and low <= value <= MAX_VALUE):
        raise ConfigError(f"cost: {name}={value:g} must be a finite number in [{low:g}, {MAX_VALUE:g}]")
    return value


def check_names(overrides: dict[str, float], known: set[str]) -> None:
    """Reject an override that names no assumption, suggesting the nearest name."""
    for name in sorted(set(overrides) - known):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"cost: unknown assumption {name!r}{hint} (all names: the Assumptions table, "
            "docs/cost.md)"
        )


def infer_shape(active_params: float, aspect_ratio: float, head_dim: float) -> dict[str, int]:
    """Layers and query heads of a typical dense model with N parameters.

    N ~ 12 * layers * width^2 (Kaplan et al. 2020) with width = aspect_ratio * layers; for
    175B this gives GPT-3's 96 layers and 12288 width.
    """
    layers = max(1, round((active_params / (12 * aspect_ratio**2)) ** (1 / 3)))
    heads = max(1, round(aspect_ratio * layers / head_dim))
    return {"layers": layers, "heads": heads}


class _Inputs:
    """The assumptions of one estimate as they are decided: an override wins, then an
    explicit input, then the default; each is recorded with its unit and source."""

    def __init__(self, over: dict[str, float], explicit: dict[str, float], sources: dict[str, str],
                 given: str):
        self.over, self.explicit, self.sources, self.given = over, explicit, sources, given
        self.a: dict[str, Assumption] = {}

    def put(self, key: str, value: float, unit: str, source: str) -> float:
        if key in self.over:
            value, source = self.over[key], self.sources.get(key, "override")
        elif key in self.explicit:
            shape_src = self.sources.get("shape", self.given) if key in SHAPE_KEYS else self.given
            value, source = self.explicit[key], self.sources.get(key, shape_src)
        self.a[key] = _a(check_value(key, float(value)), unit, source)
        return self.a[key].value

    def __getitem__(self, key: str) -> float:
        return self.a[key].value


def _memory(inp: _Inputs, n_total: float, layers: float, heads: float, head_dim: float,
            seq: float, device_gb: float) -> tuple[dict[str, float], int]:
    """GB to train one replica (weights, gradients, optimizer, activations with and without
    recomputation), and the fewest devices that hold it."""
    width = inp.put("width", heads * head_dim, "", "heads x head_dim")
    per_layer = inp["micro_batch"] * seq * width
    memory = {
        "weights": n_total * inp["weight_bytes"] / 1e9,
        "gradients": n_total * inp["grad_bytes"] / 1e9,
        "optimizer": n_total * inp["optimizer_bytes"] / 1e9,
        "activations": layers * per_layer * inp["activation_bytes"] / 1e9,
        "activations_recompute": (layers * inp["recompute_bytes"] + inp["activation_bytes"]) * per_layer / 1e9,
    }
    memory["total"] = sum(memory[k] for k in ("weights", "gradients", "optimizer", "activations"))
    memory["total_recompute"] = memory["total"] - memory["activations"] + memory["activations_recompute"]
    return memory, max(1, math.ceil(memory["total_recompute"] / (device_gb * inp["usable_memory"])))


def _device_count(inp: _Inputs, gpu_hours: float, min_gpus: int) -> int:
    """The given count, else enough whole servers to finish in target_days, at least min_gpus."""
    if "gpus" in inp.over or "gpus" in inp.explicit:
        n_gpus = int(inp.put("gpus", 0, "devices", ""))
    else:
        need = math.ceil(gpu_hours / (inp["target_days"] * 24))
        node = int(inp["gpus_per_node"])
        if need > node:
            need = node * math.ceil(need / node)
        n_gpus = int(inp.put("gpus", max(need, min_gpus, 1), "devices",
                             "enough to finish in target_days (whole servers), at least min_gpus"))
    if n_gpus < 1:
        raise ConfigError(f"cost: gpus={n_gpus} must be at least 1")
    return n_gpus


@dataclass
class _Work:
    """What the project does, in device-hours, core-hours and labelling hours."""

    gpu_hours: float
    sft_h: float
    rlhf_h: float
    eval_h: float
    raw_tb: float
    cpu_h: float
    clean_tb: float
    data_months: float
    demo_h: float
    comp_h: float
    rating_h: float
    team_h: float


def _work(inp: _Inputs, d: float, n_active: float, gpu_hours: float, peak: float, rate: float) -> _Work:
    eval_flops = inp["eval_checkpoints"] * inp["eval_tokens_per_checkpoint"] * 2 * n_active
    raw_tb = d / 1e12 * inp["raw_tb_per_t_tokens"]
    cpu_h = raw_tb * inp["cpu_hours_per_raw_tb"]
    return _Work(
        gpu_hours=gpu_hours,
        sft_h=gpu_hours * inp["sft_compute_fraction"],
        rlhf_h=gpu_hours * inp["rlhf_compute_fraction"],
        eval_h=eval_flops / (peak * rate * 3600),
        raw_tb=raw_tb, cpu_h=cpu_h,
        clean_tb=d * inp["clean_bytes_per_token"] / 1e12,
        data_months=inp["data_engineering_months"] + cpu_h / inp["data_cores"] / HOURS_PER_MONTH,
        demo_h=inp["sft_demos"] * inp["minutes_per_demo"] / 60,
        comp_h=inp["comparisons"] * inp["minutes_per_comparison"] / 60,
        rating_h=inp["human_eval_ratings"] * inp["minutes_per_rating"] / 60,
        team_h=inp["labellers"] * inp["labeller_hours_per_month"],
    )


def _timeline(inp: _Inputs, w: _Work, n_gpus: int, days: float, device_key: str) -> list[Phase]:
    """Months per phase. SFT demonstrations are written while pre-training runs; comparisons
    need the SFT model's answers, so they sit inside the RLHF phase."""

    def gpu_months(hours: float) -> float:
        return hours / n_gpus / HOURS_PER_MONTH

    pre = Phase("pre-training", w.data_months, days / DAYS_PER_MONTH,
                f"{w.gpu_hours:.3g} {device_key}-hours on {n_gpus:,} devices")
    demo_done = w.data_months + w.demo_h / w.team_h
    sft = Phase("fine-tuning (SFT)", pre.end_month,
                max(inp["sft_iteration_months"], demo_done - pre.end_month) + gpu_months(w.sft_h),
                f"{inp['sft_demos']:,.0f} demonstrations written from month {w.data_months:.1f}")
    rlhf = Phase("RLHF", sft.end_month,
                 max(inp["rlhf_iteration_months"], w.comp_h / w.team_h) + gpu_months(w.rlhf_h),
                 f"{inp['comparisons']:,.0f} comparisons, reward model, PPO")
    evals = Phase("evaluation & safety", pre.end_month,
                  rlhf.end_month + inp["eval_safety_months"] + gpu_months(w.eval_h) - pre.end_month,
                  f"benchmarks from the base model on; red team of {inp['red_team_experts']:.0f}")
    return [
        Phase("data", 0.0, w.data_months, f"{w.raw_tb:,.0f} TB crawl, {w.cpu_h:.3g} core-hours"),
        pre, sft, rlhf, evals,
        Phase("deployment", evals.end_month, inp["deployment_months"], "serving, rollout"),
    ]


def _line_items(inp: _Inputs, w: _Work, usd_h: float, device_key: str, project_months: float) -> list[LineItem]:
    label_rate = inp["labeller_usd_per_hour"] * inp["labelling_overhead"]
    storage = inp["storage_usd_per_tb_month"]
    return [
        LineItem("pre-training compute", w.gpu_hours * usd_h,
                 f"{w.gpu_hours:,.4g} {device_key}-hours x ${usd_h:g}"),
        LineItem("fine-tuning (SFT) compute", w.sft_h * usd_h,
                 f"{w.sft_h:,.4g} {device_key}-hours ({inp['sft_compute_fraction']:.2%} of pre-training)"),
        LineItem("RLHF compute", w.rlhf_h * usd_h,
                 f"{w.rlhf_h:,.4g} {device_key}-hours ({inp['rlhf_compute_fraction']:.2%} of pre-training)"),
        LineItem("data preparation: processing", w.cpu_h * inp["cpu_usd_per_core_hour"],
                 f"{w.cpu_h:,.4g} core-hours over {w.raw_tb:,.0f} TB of crawl"),
        LineItem("data preparation: storage",
                 storage * (w.raw_tb * w.data_months + w.clean_tb * project_months),
                 f"{w.raw_tb:,.0f} TB raw for {w.data_months:.1f} mo + {w.clean_tb:,.1f} TB clean for "
                 f"{project_months:.1f} mo"),
        LineItem("human labelling: SFT demonstrations", w.demo_h * label_rate,
                 f"{inp['sft_demos']:,.0f} x {inp['minutes_per_demo']:g} min"),
        LineItem("human labelling: comparisons", w.comp_h * label_rate,
                 f"{inp['comparisons']:,.0f} x {inp['minutes_per_comparison']:g} min"),
        LineItem("evaluation: compute", w.eval_h * usd_h,
                 f"{inp['eval_checkpoints']:.0f} checkpoints x "
                 f"{inp['eval_tokens_per_checkpoint']:.3g} tokens x 2N FLOPs"),
        LineItem("evaluation: human ratings", w.rating_h * label_rate,
                 f"{inp['human_eval_ratings']:,.0f} x {inp['minutes_per_rating']:g} min"),
        LineItem("red teaming",
                 inp["red_team_experts"] * inp["red_team_hours_each"] * inp["red_team_usd_per_hour"],
                 f"{inp['red_team_experts']:.0f} experts x {inp['red_team_hours_each']:g} h"),
    ]


def estimate(
    params: float,
    tokens: float | None = None,
    gpu: str = "h100",
    gpus: int | None = None,
    mfu: float | None = None,
    price: float | None = None,
    *,
    active_params: float | None = None,
    shape: dict[str, int] | None = None,
    overrides: dict[str, float] | None = None,
    sources: dict[str, str] | None = None,
    label: str = "",
    published: dict[str, tuple[float, str]] | None = None,
) -> Estimate:
    """Estimate a training project: `params` total, `active_params` per token (MoE), `tokens`.

    `shape` gives layers/heads/head_dim/seq_len for the attention term and activations (inferred
    when absent); `overrides` replaces any assumption by name; `sources` says where the given
    inputs come from (shown next to them). Phases: assumptions, hardware and shape, compute,
    memory and device count, energy, work (post-training, data, labelling), timeline, costs.
    """
    device = get_device(gpu)
    sources = sources or {}
    over = dict(overrides or {})
    check_names(over, set(DEFAULTS) | set(SHAPE_KEYS) | set(HARDWARE_KEYS) | {"gpus", "tokens"})
    explicit = {
        k: v
        for k, v in {"mfu": mfu, "price_usd_per_gpu_hour": price, "tokens": tokens,
                     "gpus": gpus, "active_params": active_params, **(shape or {})}.items()
        if v is not None
    }
    inp = _Inputs(over, explicit, sources, f"{label} preset" if label else "given")
    if not params > 0:  # NaN included
        raise ConfigError(f"cost: params={params:g} must be positive")
    n_total = inp.put("params", params, "parameters", sources.get("params", inp.given))
    n_active = inp.put("active_params", n_total, "parameters per token", "dense: all parameters")
    for key, default in DEFAULTS.items():
        if key not in SHAPE_KEYS:
            inp.put(key, default.value, default.unit, default.source)
    d = inp.put("tokens", n_total * inp["tokens_per_param"], "tokens",
                "Chinchilla-optimal: tokens_per_param x params")
    if d <= 0:
        raise ConfigError(f"cost: tokens={d:g} must be positive")
    rate = inp["mfu"]
    if not 0 < rate <= 1:
        raise ConfigError(f"cost: mfu={rate:g} must be in (0, 1]")

    # Hardware, from the device table unless given or overridden; shape given or inferred.
    peak = inp.put("peak_tflops", device.peak_tflops, "TFLOP/s", device.source) * 1e12
    mem = inp.put("gpu_memory_gb", device.memory_gb, "GB", device.source)
    watts = inp.put("watts", device.watts, "W", device.source)
    usd_h = inp.put("price_usd_per_gpu_hour", device.usd_per_hour, "USD/GPU-hour", device.price_source)
    head_dim = inp.put("head_dim", DEFAULTS["head_dim"].value, "", DEFAULTS["head_dim"].source)
    seq = inp.put("seq_len", DEFAULTS["seq_len"].value, "tokens", DEFAULTS["seq_len"].source)
    inferred = infer_shape(n_active, inp["aspect_ratio"], head_dim)
    inferred_src = "inferred from active params: N ~ 12 L d^2 with d/L = aspect_ratio"
    layers = inp.put("layers", inferred["layers"], "", inferred_src)
    heads = inp.put("heads", inferred["heads"], "", inferred_src)
    for key in ("peak_tflops", "gpu_memory_gb", "usable_memory", "target_days", "gpus_per_node",
                "data_cores", "labellers", "labeller_hours_per_month", "layers", "heads",
                "head_dim", "seq_len"):
        if inp[key] <= 0:
            raise ConfigError(f"cost: {key}={inp[key]:g} must be positive")

    # Compute, memory, devices, energy.
    dense = 6 * n_active
    attention = 12 * layers * heads * head_dim * seq
    flops = d * (dense + attention)
    gpu_hours = flops / (peak * rate * 3600)
    memory, min_gpus = _memory(inp, n_total, layers, heads, head_dim, seq, mem)
    n_gpus = _device_count(inp, gpu_hours, min_gpus)
    days = gpu_hours / n_gpus / 24
    draw_w = watts * inp["host_power_factor"] * inp["pue"]
    energy_mwh = gpu_hours * draw_w / 1e6

    # The rest of the project: post-training, data, people; then time and money.
    work = _work(inp, d, n_active, gpu_hours, peak, rate)
    timeline = _timeline(inp, work, n_gpus, days, device.key)
    lines = _line_items(inp, work, usd_h, device.key, max(p.end_month for p in timeline))
    return Estimate(
        label=label, device=device, gpus=n_gpus, params=n_total, active_params=n_active,
        tokens=d, flops_per_token=dense + attention, attention_flops_per_token=attention,
        flops=flops, gpu_hours=gpu_hours, days=days, cost_usd=gpu_hours * usd_h,
        energy_mwh=energy_mwh, electricity_usd=energy_mwh * 1000 * inp["electricity_usd_per_kwh"],
        power_mw=n_gpus * draw_w / 1e6, memory_gb=memory, min_gpus=min_gpus, lines=lines,
        timeline=timeline, assumptions=inp.a, published=dict(published or {}),
    )
