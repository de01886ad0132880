"""Inputs of well-known training runs as published, and of chatforge's own config presets.

Each published preset carries the figures it should reproduce (`published`), with sources, so
the output can show estimate and publication side by side and the tests can pin them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chatforge.cost.estimate import Estimate, estimate
from chatforge.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    params: float
    tokens: float
    gpu: str
    gpus: int
    mfu: float
    price: float | None
    shape: dict[str, int]
    sources: dict[str, str]
    published: dict[str, tuple[float, str]] = field(default_factory=dict)
    active_params: float | None = None
    overrides: dict[str, float] = field(default_factory=dict)


GPT3 = "Brown et al. 2020 (GPT-3), table 2.1 and D.1"
LLAMA2 = "Touvron et al. 2023 (Llama 2), table 1 and 2"
LLAMA3 = "Llama 3 paper (Dubey et al. 2024) sec. 3.3; Llama 3.1 model card"
DSV3 = "DeepSeek-V3 technical report (2024), table 1 and sec. 4"
CHINCHILLA = "Hoffmann et al. 2022 (Chinchilla), table 4 and A5"
GPT4 = "public estimate (SemiAnalysis, July 2023), not official"

PUBLISHED: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            "gpt3-175b", "GPT-3 175B", 175e9, 300e9, "v100", 10_000, 0.224, 1.5,
            {"layers": 96, "heads": 96, "head_dim": 128, "seq_len": 2048},
            {"params": GPT3, "tokens": GPT3, "shape": GPT3,
             "gpus": "Microsoft's 10,000-V100 supercomputer for OpenAI (Microsoft, May 2020)",
             "mfu": "Lambda Labs 2020: 28 TFLOP/s sustained per V100 = 22.4% of 125",
             "price_usd_per_gpu_hour": "Lambda Labs 2020 estimate: 355 V100-years, $4.6M"},
            {"flops": (3.14e23, "GPT-3 paper table D.1: 3.64e3 PF-days"),
             "cost_usd": (4.6e6, "Lambda Labs 2020 estimate")},
        ),
        Preset(
            "llama2-70b", "Llama 2 70B", 70e9, 2e12, "a100", 2048, 0.47, None,
            {"layers": 80, "heads": 64, "head_dim": 128, "seq_len": 4096},
            {"params": LLAMA2, "tokens": LLAMA2, "shape": LLAMA2,
             "gpus": "assumed: Meta's RSC runs up to 2,000 A100s per job (not published per model)",
             "mfu": "fitted: the MFU that turns 2T tokens into 1,720,320 A100-hours (47% with the "
                    "attention term, 43% from 6ND alone); plausible for A100s with Megatron-style "
                    "parallelism, which reach 44-52% (Narayanan et al. 2021)"},
            {"gpu_hours": (1_720_320, LLAMA2 + ": A100-80GB hours for the 70B model")},
        ),
        Preset(
            "llama3.1-405b", "Llama 3.1 405B", 405e9, 15.6e12, "h100", 16_384, 0.40, None,
            {"layers": 126, "heads": 128, "head_dim": 128, "seq_len": 8192},
            {"params": LLAMA3, "tokens": LLAMA3, "shape": LLAMA3, "gpus": LLAMA3,
             "mfu": "Llama 3 paper table 4: 38-43% bf16 MFU on 8k-16k H100s"},
            {"flops": (3.8e25, LLAMA3 + ": 3.8e25 FLOPs"),
             "gpu_hours": (30.84e6, "Llama 3.1 model card: 30.84M H100-hours, which counts all "
                                    "runs (ablations, restarts, post-training), not one pass")},
        ),
        Preset(
            "deepseek-v3", "DeepSeek-V3 (MoE, 671B total, 37B active)", 671e9, 14.8e12,
            "h800", 2048, 0.44, 2.0,
            # MLA: 128 heads with 192-d queries/keys and 128-d values; 160 = their mean, since
            # the attention FLOPs are 6 * L * H * T * (d_qk + d_v) = 12 * L * H * T * 160.
            {"layers": 61, "heads": 128, "head_dim": 160, "seq_len": 4096, "width": 7168},
            {"params": DSV3, "active_params": DSV3, "tokens": DSV3, "shape": DSV3, "gpus": DSV3,
             "price_usd_per_gpu_hour": DSV3 + ": $2 per H800-hour assumed",
             "mfu": "fitted: 180K H800-hours per trillion tokens (report sec. 1) needs 44% of the "
                    "bf16 peak, i.e. 22% of the 1979 TFLOP/s FP8 peak: FP8 matmuls raise the "
                    "ceiling while MoE all-to-all over H800's cut NVLink and small expert GEMMs "
                    "pull it down (DualPipe hides most of the communication)"},
            {"gpu_hours": (2.788e6, DSV3 + ": 2.664M pre-training + 119K context extension + "
                                   "5K post-training H800-hours"),
             "cost_usd": (5.576e6, DSV3 + ": $5.576M at $2/H800-hour")},
            active_params=37e9,
        ),
        Preset(
            "chinchilla-70b", "Chinchilla 70B", 70e9, 1.4e12, "tpu-v4", 4096, 0.46, None,
            {"layers": 80, "heads": 64, "head_dim": 128, "seq_len": 2048},
            {"params": CHINCHILLA, "tokens": CHINCHILLA, "shape": CHINCHILLA,
             "gpus": "assumed: the paper names TPUv3/TPUv4 but not the slice size",
             "mfu": "PaLM's 46.2% MFU on TPU v4 (Chowdhery et al. 2022) as a stand-in; "
                    "Chinchilla's was not published"},
            {"flops": (5.76e23, CHINCHILLA + ": 5.76e23 FLOPs")},
        ),
        Preset(
            "gpt4", "GPT-4 (public estimates)", 1.8e12, 13e12, "a100", 25_000, 0.34, 1.0,
            {"layers": 120, "heads": 96, "head_dim": 128, "seq_len": 8192},
            {"params": GPT4 + ": ~1.8T total MoE", "active_params": GPT4 + ": ~280B active",
             "tokens": GPT4, "shape": GPT4, "gpus": GPT4 + ": ~25,000 A100s for 90-100 days",
             "mfu": GPT4 + ": 32-36% MFU", "price_usd_per_gpu_hour": GPT4 + ": $1 per A100-hour"},
            {"flops": (2.15e25, GPT4), "days": (95, GPT4 + ": 90-100 days"),
             "cost_usd": (63e6, GPT4 + ": about $63M")},
            active_params=280e9,
            overrides={"eval_safety_months": 6},
        ),
    )
}
PUBLISHED["gpt4"].sources["eval_safety_months"] = (
    "GPT-4 technical report: ~6 months of alignment and safety work before release"
)

CHATFORGE_SOURCE = "chatforge config preset"
# The built-in corpus is generated (no crawl) and its demonstrations and preference labels are
# synthetic or AI-labelled, so the seed-scale human lines are zero for chatforge's own presets.
_CHATFORGE_OVERRIDES = {
    "raw_tb_per_t_tokens": 0, "data_engineering_months": 0, "sft_demos": 0, "comparisons": 0,
    "human_eval_ratings": 0, "red_team_experts": 0, "sft_iteration_months": 0,
    "rlhf_iteration_months": 0, "eval_safety_months": 0, "deployment_months": 0,
    "eval_checkpoints": 3, "eval_tokens_per_checkpoint": 1e6,
}


def preset_names() -> list[str]:
    from chatforge.config import available_presets

    return sorted(PUBLISHED) + available_presets()


def count_params(gcfg: Any) -> tuple[int, int]:
    """(total, excluding the input embedding) parameters of a `GPTConfig`, without building it.

    The input embedding is a lookup, not a matmul, so it is left out of the 6N FLOPs; the
    output head is a matmul and stays (as in `GPT.flops_per_token`).
    """
    d, v, hd = gcfg.n_embd, gcfg.vocab_size, gcfg.head_dim
    attn = d * gcfg.n_head * hd * 2 + d * gcfg.n_kv_head * hd * 2
    qk_norm = 2 * hd if gcfg.qk_norm else 0
    mlp = (3 if gcfg.mlp == "swiglu" else 2) * d * gcfg.mlp_hidden
    layer = attn + qk_norm + mlp + 2 * d
    head = 0 if gcfg.tie_embeddings else v * d
    total = v * d + gcfg.n_layer * layer + d + head
    return total, (total if gcfg.tie_embeddings else total - v * d)


def chatforge_inputs(name: str) -> dict[str, Any]:
    """Model size, tokens and hardware of a chatforge config preset's pre-training recipe."""
    from chatforge.config import load_config
    from chatforge.model.gpt import GPTConfig

    cfg = load_config(name)
    gcfg = GPTConfig.from_model_config(cfg.model, cfg.tokenizer.vocab_size)
    total, matmul = count_params(gcfg)
    p = cfg.pretrain.train
    tokens = p.max_steps * p.batch_size * p.grad_accum * cfg.model.seq_len
    overrides: dict[str, float] = {
        "pue": cfg.cost.pue, "electricity_usd_per_kwh": cfg.cost.electricity_usd_per_kwh,
        **_CHATFORGE_OVERRIDES,
    }
    src = f"{CHATFORGE_SOURCE} {name!r}"
    return {
        "params": float(total),
        "active_params": float(matmul),
        "tokens": float(tokens),
        "gpu": cfg.cost.gpu,
        "price": cfg.cost.price_usd_per_gpu_hour or None,
        "shape": {"layers": gcfg.n_layer, "heads": gcfg.n_head, "head_dim": gcfg.head_dim,
                  "seq_len": gcfg.seq_len},
        "overrides": overrides,
        "sources": {
            "params": f"{src}: GPTConfig.from_model_config, vocab {cfg.tokenizer.vocab_size}",
            "active_params": f"{src}: parameters minus the input embedding (a lookup, no FLOPs)",
            "tokens": f"{src}: pretrain.train.max_steps x batch_size x grad_accum x model.seq_len",
            "shape": src,
        },
    }


def preset_estimate(
    name: str,
    *,
    gpu: str | None = None,
    gpus: int | None = None,
    mfu: float | None = None,
    price: float | None = None,
    params: float | None = None,
    tokens: float | None = None,
    overrides: dict[str, float] | None = None,
) -> Estimate:
    """Estimate a named preset; any argument given replaces the preset's value."""
    if name in PUBLISHED:
        p = PUBLISHED[name]
        base: dict[str, Any] = {
            "params": p.params, "active_params": p.active_params, "tokens": p.tokens,
            "gpu": p.gpu, "gpus": p.gpus, "mfu": p.mfu, "price": p.price, "shape": p.shape,
            "overrides": dict(p.overrides), "sources": dict(p.sources),
        }
        published = p.published
    else:
        try:
            base = chatforge_inputs(name)
        except ConfigError:
            raise ConfigError(
                f"cost: unknown preset {name!r} (choose one of {', '.join(preset_names())})"
            ) from None
        published = {}
    chosen = {"params": params, "tokens": tokens, "gpu": gpu, "gpus": gpus, "mfu": mfu,
              "price": price}
    for key, value in chosen.items():
        if value is not None:
            base[key] = value
            base["sources"][{"price": "price_usd_per_gpu_hour"}.get(key, key)] = "given"
    if params is not None:
        # A new size: the preset's active count and shape no longer apply; keep its context.
        base["active_params"] = None
        base["shape"] = {k: v for k, v in base["shape"].items() if k == "seq_len"}
    for key, value in (overrides or {}).items():
        base["overrides"][key] = value
        base["sources"][key] = "override"
    return estimate(
        base["params"], base["tokens"], base["gpu"], base.get("gpus"), base.get("mfu"),
        base.get("price"), active_params=base.get("active_params"), shape=base["shape"],
        overrides=base["overrides"], sources=base["sources"], label=name, published=published,
    )
