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
    inputs come from (shown next to them).
    """
    device = get_device(gpu)
    sources = sources or {}
    over = dict(overrides or {})
    known = set(DEFAULTS) | set(SHAPE_KEYS) | set(HARDWARE_KEYS) | {"gpus", "tokens"}
    check_names(over, known)
    given = f"{label} preset" if label else "given"
    explicit = {
        k: v
        for k, v in {"mfu": mfu, "price_usd_per_gpu_hour": price, "tokens": tokens,
                     "gpus": gpus, "active_params": active_params, **(shape or {})}.items()
        if v is not None
    }
    a: dict[str, Assumption] = {}

    def put(key: str, value: float, unit: str, source: str) -> float:
        """Record an assumption: an override wins, then an explicit input, then the default."""
        if key in over:
            value, source = over[key], sources.get(key, "override")
        elif key in explicit:
            shape_src = sources.get("shape", given) if key in SHAPE_KEYS else given
            value, source = explicit[key], sources.get(key, shape_src)
        a[key] = _a(check_value(key, float(value)), unit, source)
        return a[key].value

    if not params > 0:  # NaN included
        raise ConfigError(f"cost: params={params:g} must be positive")
    n_total = put("params", params, "parameters", sources.get("params", given))
    n_active = put("active_params", n_total, "parameters per token", "dense: all parameters")
    for key, default in DEFAULTS.items():
        if key not in SHAPE_KEYS:
            put(key, default.value, default.unit, default.source)
    d = put("tokens", n_total * a["tokens_per_param"].value, "tokens",
            "Chinchilla-optimal: tokens_per_param x params")
    if d <= 0:
        raise ConfigError(f"cost: tokens={d:g} must be positive")
    rate = a["mfu"].value
    if not 0 < rate <= 1:
        raise ConfigError(f"cost: mfu={rate:g} must be in (0, 1]")

    # Hardware, from the device table unless given or overridden.
    peak = put("peak_tflops", device.peak_tflops, "TFLOP/s", device.source) * 1e12
    mem = put("gpu_memory_gb", device.memory_gb, "GB", device.source)
    watts = put("watts", device.watts, "W", device.source)
    usd_h = put("price_usd_per_gpu_hour", device.usd_per_hour, "USD/GPU-hour",
                device.price_source)

    # Shape: given, else inferred from N.
    head_dim = put("head_dim", DEFAULTS["head_dim"].value, "", DEFAULTS["head_dim"].source)
    seq = put("seq_len", DEFAULTS["seq_len"].value, "tokens", DEFAULTS["seq_len"].source)
    inferred = infer_shape(n_active, a["aspect_ratio"].value, head_dim)
    inferred_src = "inferred from active params: N ~ 12 L d^2 with d/L = aspect_ratio"
    layers = put("layers", inferred["layers"], "", inferred_src)
    heads = put("heads", inferred["heads"], "", inferred_src)

    for key in ("peak_tflops", "gpu_memory_gb", "usable_memory", "target_days", "gpus_per_node",
                "data_cores", "labellers", "labeller_hours_per_month", "layers", "heads",
                "head_dim", "seq_len"):
        if a[key].value <= 0:
            raise ConfigError(f"cost: {key}={a[key].value:g} must be positive")

    # Compute.
    dense = 6 * n_active
    attention = 12 * layers * heads * head_dim * seq
    flops = d * (dense + attention)
    gpu_hours = flops / (peak * rate * 3600)

    # Memory to train one replica, and the fewest devices that hold it.
    width = put("width", heads * head_dim, "", "heads x head_dim")
    per_layer = a["micro_batch"].value * seq * width
    memory = {
        "weights": n_total * a["weight_bytes"].value / 1e9,
        "gradients": n_total * a["grad_bytes"].value / 1e9,
        "optimizer": n_total * a["optimizer_bytes"].value / 1e9,
        "activations": layers * per_layer * a["activation_bytes"].value / 1e9,
        "activations_recompute": (layers * a["recompute_bytes"].value
                                  + a["activation_bytes"].value) * per_layer / 1e9,
    }
    memory["total"] = sum(memory[k] for k in ("weights", "gradients", "optimizer", "activations"))
    memory["total_recompute"] = memory["total"] - memory["activations"] + memory[
        "activations_recompute"]
    usable = mem * a["usable_memory"].value
    min_gpus = max(1, math.ceil(memory["total_recompute"] / usable))

    if "gpus" in over or "gpus" in explicit:
        n_gpus = int(put("gpus", 0, "devices", ""))  # the given or overridden count wins
    else:
        need = math.ceil(gpu_hours / (a["target_days"].value * 24))
        node = int(a["gpus_per_node"].value)
        if need > node:
            need = node * math.ceil(need / node)
        n_gpus = int(put("gpus", max(need, min_gpus, 1), "devices",
                         "enough to finish in target_days (whole servers), at least min_gpus"))
    if n_gpus < 1:
        raise ConfigError(f"cost: gpus={n_gpus} must be at least 1")
    days = gpu_hours / n_gpus / 24

    # Energy.
    draw_w = watts * a["host_power_factor"].value * a["pue"].value
    energy_mwh = gpu_hours * draw_w / 1e6
    electricity_usd = energy_mwh * 1000 * a["electricity_usd_per_kwh"].value
    power_mw = n_gpus * draw_w / 1e6

    # Post-training and evaluation compute.
    sft_h = gpu_hours * a["sft_compute_fraction"].value
    rlhf_h = gpu_hours * a["rlhf_compute_fraction"].value
    eval_flops = a["eval_checkpoints"].value * a["eval_tokens_per_checkpoint"].value * 2 * n_active
    eval_h = eval_flops / (peak * rate * 3600)

    # Data preparation.
    raw_tb = d / 1e12 * a["raw_tb_per_t_tokens"].value
    cpu_h = raw_tb * a["cpu_hours_per_raw_tb"].value
    clean_tb = d * a["clean_bytes_per_token"].value / 1e12
    data_months = a["data_engineering_months"].value + cpu_h / a["data_cores"].value / HOURS_PER_MONTH

    # Human labelling.
    label_rate = a["labeller_usd_per_hour"].value * a["labelling_overhead"].value
    demo_h = a["sft_demos"].value * a["minutes_per_demo"].value / 60
    comp_h = a["comparisons"].value * a["minutes_per_comparison"].value / 60
    rating_h = a["human_eval_ratings"].value * a["minutes_per_rating"].value / 60
    team_h = a["labellers"].value * a["labeller_hours_per_month"].value

    # Timeline (months): SFT demonstrations are written while pre-training runs; comparisons
    # need the SFT model's answers, so they sit inside the RLHF phase.
    def gpu_months(hours: float) -> float:
        return hours / n_gpus / HOURS_PER_MONTH

    pre = Phase("pre-training", data_months, days / DAYS_PER_MONTH,
                f"{gpu_hours:.3g} {device.key}-hours on {n_gpus:,} devices")
    demo_done = data_months + demo_h / team_h
    sft = Phase("fine-tuning (SFT)", pre.end_month,
                max(a["sft_iteration_months"].value, demo_done - pre.end_month) + gpu_months(sft_h),
                f"{a['sft_demos'].value:,.0f} demonstrations written from month {data_months:.1f}")
    rlhf = Phase("RLHF", sft.end_month,
                 max(a["rlhf_iteration_months"].value, comp_h / team_h) + gpu_months(rlhf_h),
                 f"{a['comparisons'].value:,.0f} comparisons, reward model, PPO")
    evals = Phase("evaluation & safety", pre.end_month,
                  rlhf.end_month + a["eval_safety_months"].value + gpu_months(eval_h)
                  - pre.end_month,
                  f"benchmarks from the base model on; red team of "
                  f"{a['red_team_experts'].value:.0f}")
    timeline = [
        Phase("data", 0.0, data_months, f"{raw_tb:,.0f} TB crawl, {cpu_h:.3g} core-hours"),
        pre, sft, rlhf, evals,
        Phase("deployment", evals.end_month, a["deployment_months"].value, "serving, rollout"),
    ]
    project_months = max(p.end_month for p in timeline)

    storage = a["storage_usd_per_tb_month"].value
    lines = [
        LineItem("pre-training compute", gpu_hours * usd_h,
                 f"{gpu_hours:,.4g} {device.key}-hours x ${usd_h:g}"),
        LineItem("fine-tuning (SFT) compute", sft_h * usd_h,
                 f"{sft_h:,.4g} {device.key}-hours ({a['sft_compute_fraction'].value:.2%} of pre-training)"),
        LineItem("RLHF compute", rlhf_h * usd_h,
                 f"{rlhf_h:,.4g} {device.key}-hours ({a['rlhf_compute_fraction'].value:.2%} of pre-training)"),
        LineItem("data preparation: processing", cpu_h * a["cpu_usd_per_core_hour"].value,
                 f"{cpu_h:,.4g} core-hours over {raw_tb:,.0f} TB of crawl"),
        LineItem("data preparation: storage",
                 storage * (raw_tb * data_months + clean_tb * project_months),
                 f"{raw_tb:,.0f} TB raw for {data_months:.1f} mo + {clean_tb:,.1f} TB clean for "
                 f"{project_months:.1f} mo"),
        LineItem("human labelling: SFT demonstrations", demo_h * label_rate,
                 f"{a['sft_demos'].value:,.0f} x {a['minutes_per_demo'].value:g} min"),
        LineItem("human labelling: comparisons", comp_h * label_rate,
                 f"{a['comparisons'].value:,.0f} x {a['minutes_per_comparison'].value:g} min"),
        LineItem("evaluation: compute", eval_h * usd_h,
                 f"{a['eval_checkpoints'].value:.0f} checkpoints x "
                 f"{a['eval_tokens_per_checkpoint'].value:.3g} tokens x 2N FLOPs"),
        LineItem("evaluation: human ratings", rating_h * label_rate,
                 f"{a['human_eval_ratings'].value:,.0f} x {a['minutes_per_rating'].value:g} min"),
        LineItem("red teaming",
                 a["red_team_experts"].value * a["red_team_hours_each"].value
                 * a["red_team_usd_per_hour"].value,
                 f"{a['red_team_experts'].value:.0f} experts x "
                 f"{a['red_team_hours_each'].value:g} h"),
    ]
    return Estimate(
        label=label, device=device, gpus=n_gpus, params=n_total, active_params=n_active,
        tokens=d, flops_per_token=dense + attention, attention_flops_per_token=attention,
        flops=flops, gpu_hours=gpu_hours, days=days, cost_usd=gpu_hours * usd_h,
        energy_mwh=energy_mwh, electricity_usd=electricity_usd, power_mw=power_mw,
        memory_gb=memory, min_gpus=min_gpus, lines=lines, timeline=timeline, assumptions=a,
        published=dict(published or {}),
    )
