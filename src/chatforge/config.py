"""Typed configuration: presets in TOML, overridden by `section.key=value` on the command line.

One `Config` holds a section per stage. Presets live in `chatforge/configs/<name>.toml`; a
preset may name a `base` preset it extends. Unknown keys and values of the wrong type are
rejected with a one-line error that names them, so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatforge.errors import ConfigError
from chatforge.tokenizer.specials import MIN_VOCAB_SIZE

PRESET_DIR = Path(__file__).parent / "configs"
CORPUS_LANGUAGES = ("en", "tr")  # the languages the built-in corpus generator writes


def _bounds(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
            hi_open: bool = False) -> dict[str, Any]:
    """Field metadata for the generic range check: [lo, hi], either end open or absent."""
    return {"range": (lo, hi, lo_open, hi_open)}


def at_least(lo: float, default: Any) -> Any:
    return field(default=default, metadata=_bounds(lo))


def between(lo: float, hi: float, default: Any, *, lo_open: bool = False, hi_open: bool = False) -> Any:
    return field(default=default, metadata=_bounds(lo, hi, lo_open=lo_open, hi_open=hi_open))


def one_of(default: str, *choices: str) -> Any:
    return field(default=default, metadata={"choices": choices})


@dataclass
class RunConfig:
    name: str = "latest"
    seed: int = 1337
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    # Seconds for the whole `chatforge run` (0 = off): where this machine's evaluation and
    # generation run slower than on the machine the preset was sized on, the training budgets
    # shrink so the run still ends in time (chatforge.pipeline.RunClock).
    time_budget: float = at_least(0, 0.0)


@dataclass
class CorpusConfig:
    """Size of the built-in invented world and of each kind of text generated from it."""

    seed: int = 0
    languages: list[str] = field(default_factory=lambda: ["en", "tr"])
    # World size: entities per kind (each has 2-5 attributes from small closed sets).
    n_people: int = at_least(1, 36)
    n_towns: int = at_least(1, 12)
    n_rivers: int = at_least(1, 6)
    n_animals: int = at_least(1, 8)
    n_inventions: int = at_least(1, 10)
    n_foods: int = at_least(1, 10)
    # Pre-training documents (per language for articles, split over languages for the rest).
    articles_per_entity: int = at_least(0, 6)
    stories: int = at_least(0, 4000)
    lists: int = at_least(0, 2000)
    arithmetic: int = at_least(0, 800)
    code: int = at_least(0, 400)
    faqs: int = at_least(0, 1500)  # chat conversations asking facts (text.pretrain_corpus)
    min_mentions: int = at_least(0, 20)  # top-up until every fact is stated this often per language
    # SFT conversations and held-out evaluation questions.
    conversations: int = at_least(0, 3000)
    # share of (fact, language) pairs asked only in held-out
    heldout_fraction: float = between(0, 1, 0.2, hi_open=True)
    # share of those whose fact no SFT example mentions
    heldout_unseen_fraction: float = between(0, 1, 0.2, hi_open=True)
    eval_items: int = at_least(0, 200)  # items per built-in benchmark-layout set (corpus/eval/)


@dataclass
class QualityConfig:
    """Heuristic quality thresholds (Gopher, C4, FineWeb); defaults are the published values."""

    gopher_min_words: int = 50
    gopher_max_words: int = 100_000
    gopher_min_mean_word_len: float = 3.0
    gopher_max_mean_word_len: float = 10.0
    gopher_max_symbol_ratio: float = 0.1  # '#' or ellipses per word
    gopher_max_bullet_lines: float = 0.9
    gopher_max_ellipsis_lines: float = 0.3
    gopher_min_alpha_words: float = 0.8
    gopher_min_stop_words: int = 2
    gopher_dup_line_frac: float = 0.3
    gopher_dup_para_frac: float = 0.3
    gopher_dup_line_char_frac: float = 0.2
    gopher_dup_para_char_frac: float = 0.2
    gopher_top_ngram_frac: list[float] = field(default_factory=lambda: [0.20, 0.18, 0.16])
    gopher_dup_ngram_frac: list[float] = field(
        default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]
    )
    c4_max_word_len: int = 1000
    c4_min_words_per_line: int = 3
    c4_min_sentences: int = 5
    c4_terminal_punct: bool = False  # FineWeb turns this C4 rule off
    fineweb_min_punct_lines: float = 0.12
    fineweb_max_short_lines: float = 0.67
    fineweb_short_line_chars: int = 30
    fineweb_max_dup_line_chars: float = 0.1  # the paper's value; datatrove's code uses 0.01
    fineweb_max_newline_ratio: float = 0.3


@dataclass
class DataConfig:
    """Collection and cleaning (stage 1); see chatforge.data."""

    enabled: bool = True
    executor: str = one_of("local", "local", "ray")
    workers: int = at_least(0, 0)  # 0 = all cores
    ray_address: str = ""
    # HTML main-content extraction
    extractor: str = one_of("resiliparse", "resiliparse", "trafilatura")
    languages: list[str] = field(default_factory=lambda: ["en", "tr"])
    langid_threshold: float = between(0, 1, 0.65)
    minhash_bands: int = at_least(1, 14)
    minhash_rows: int = at_least(1, 8)
    minhash_ngram: int = at_least(1, 5)
    decontam_ngram: int = at_least(1, 13)
    decontam_min_words: int = at_least(1, 8)  # shorter evaluation items are matched whole
    pii_masking: bool = True
    shard_docs: int = at_least(1, 20000)
    batch_docs: int = at_least(1, 500)  # documents per step batch (bounds worker memory)
    partitions: int = at_least(1, 8)  # hash partitions of the dedup shuffle
    max_doc_chars: int = at_least(1, 1_000_000)
    quality: QualityConfig = field(default_factory=QualityConfig)
    quality_overrides: list[str] = field(default_factory=list)  # "tr:gopher_max_words=2e5"
    prose_skip_sources: list[str] = field(default_factory=lambda: ["code"])
    # "SOURCE=WEIGHT" per Document.source: 0 drops it, 0.5 keeps a seeded half, 2 = two epochs
    mixture: list[str] = field(default_factory=list)
    web_pages: int = at_least(0, 1200)  # size of the built-in dirty web crawl


@dataclass
class TokenizerConfig:
    vocab_size: int = at_least(MIN_VOCAB_SIZE, 4096)
    min_frequency: int = at_least(1, 2)
    max_train_chars: int = at_least(1, 50_000_000)


@dataclass
class ModelConfig:
    """Llama-style decoder. `depth` is the one size dial; width and heads follow unless set."""

    depth: int = at_least(1, 4)
    width: int = at_least(0, 0)  # 0 = depth * aspect_ratio
    fp32_width: int = at_least(0, 0)  # > 0, width unset: the width where matmuls run in fp32
    aspect_ratio: int = at_least(1, 64)
    head_dim: int = at_least(1, 64)
    n_kv_head: int = at_least(0, 0)  # 0 = same as query heads (no GQA)
    seq_len: int = at_least(2, 256)
    mlp: str = one_of("swiglu", "swiglu", "relu2")
    qk_norm: bool = True
    tie_embeddings: bool = False
    rope_theta: float = between(0, None, 10000.0, lo_open=True)
    dropout: float = between(0, 1, 0.0, hi_open=True)


@dataclass
class TrainConfig:
    """The shared loop's settings; every trained stage has its own copy under `<stage>.train`.

    Only the settings marked in RESUMABLE may change between a run and its resume: the others
    change what is trained, so a checkpoint made under different values is not resumed.
    """

    batch_size: int = at_least(1, 16)  # sequences per micro-batch per process
    grad_accum: int = at_least(1, 1)
    optimizer: str = one_of("adamw", "adamw", "muon")  # muon: 2-D matrices; AdamW the rest
    lr: float = between(0, None, 3e-3, lo_open=True)
    matrix_lr: float = between(0, None, 0.02, lo_open=True)  # Muon learning rate
    min_lr_ratio: float = between(0, 1, 0.0)
    schedule: str = one_of("wsd", "wsd", "cosine")  # wsd = warmup-stable-decay
    warmup_frac: float = between(0, 1, 0.02)
    cooldown_frac: float = between(0, 1, 0.4)
    weight_decay: float = at_least(0, 0.0)
    beta1: float = between(0, 1, 0.9, hi_open=True)
    beta2: float = between(0, 1, 0.95, hi_open=True)
    grad_clip: float = at_least(0, 1.0)  # 0 = off
    max_steps: int = at_least(1, 1000)
    time_budget: float = at_least(0, 0.0)  # seconds; >0 plans the schedule for this wall time
    epochs: float = at_least(0, 0.0)  # >0 sets max_steps from the dataset size (SFT, RM, DPO)
    eval_every: int = at_least(1, 100)
    eval_batches: int = at_least(1, 8)
    checkpoint_every: int = at_least(1, 100)
    sample_every: int = at_least(0, 0)  # 0 = off
    log_every: int = at_least(1, 10)
    compile: bool = False
    # Under torchrun: ddp = a full replica per process; fsdp = FSDP2 (parameters, gradients
    # and optimizer state sharded over the processes) for models that do not fit one device.
    parallel: str = one_of("ddp", "ddp", "fsdp")
    # Matmul dtype: auto = bf16 where it is fast (CUDA, CPUs with AMX/AVX512-BF16), else
    # fp32. Master weights and optimizer state are fp32 either way.
    precision: str = one_of("auto", "auto", "bf16", "fp32")


# Settings that change how long or how visibly a stage trains, not what one step computes:
# a checkpoint resumes across changes of these (`--max-steps 220` continues a 200-step run;
# a DDP save resumes under FSDP, a GPU's bf16 save on an fp32 CPU).
RESUMABLE = frozenset({
    "max_steps", "time_budget", "epochs", "eval_every", "eval_batches", "checkpoint_every",
    "sample_every", "log_every", "compile", "parallel", "precision",
})


@dataclass
class PretrainConfig:
    """Pre-training (stage 3); see chatforge.train.pretrain, and chatforge.tokenizer.inputs
    for the input specs."""

    train: TrainConfig = field(default_factory=TrainConfig)
    val_fraction: float = between(0, 1, 0.1, lo_open=True, hi_open=True)  # documents held out
    # The corpus the tokenizer and tokens stages read: Parquet / JSONL / .txt paths or globs,
    # hf:NAME[:FIELD], or one token-shard directory. Empty: the run's own documents (the data
    # stage's, then the built-in corpus's pre-training text).
    inputs: list[str] = field(default_factory=list)
    max_chars: int = at_least(0, 0)  # characters read from the corpus, in order (0 = all)
    tokenizer: str = ""  # a tokenizer dir used instead of training one (token-shard inputs need it)


@dataclass
class SFTConfig:
    """Supervised fine-tuning (stage 4); see chatforge.align.sft."""

    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(lr=1e-3, max_steps=300, eval_every=50, batch_size=16)
    )
    mix_pretrain: float = between(0, 1, 0.0, hi_open=True)  # share of rows from pre-training
    pack: bool = False  # true = best-fit-decreasing packing (faster; packed rows attend across)
    data: list[str] = field(default_factory=list)  # extra conversation files (any reader format)
    val_conversations: int = at_least(1, 512)  # held-out conversations for validation loss


@dataclass
class PrefsConfig:
    """Preference pairs (stage 5, step 1); see chatforge.align.collect."""

    enabled: bool = True
    prompts: int = at_least(1, 1500)  # training prompts, two sampled answers each
    heldout_prompts: int = at_least(0, 240)
    # one sampling temperature per answer of a pair
    temperatures: list[float] = field(default_factory=lambda: [0.7, 1.3])
    max_new_tokens: int = at_least(1, 80)  # room for an open request's few sentences and a refusal
    # the weights' dtype while sampling: auto = bf16 where its matmuls are fast (about twice the
    # answers per second on a bf16-capable CPU), the pairs being data rather than a measurement
    precision: str = one_of("auto", "auto", "bf16", "fp32")
    judge: str = one_of("rule", "rule", "reward", "http")  # who picks, when no person does
    judge_url: str = ""  # prefs.judge=http: an OpenAI-compatible endpoint
    judge_model: str = "judge"
    data: list[str] = field(default_factory=list)  # FORMAT:PATH (jsonl, hh-rlhf, llamafactory)


@dataclass
class RewardConfig:
    """The reward model (stage 5, step 2); see chatforge.align.reward."""

    enabled: bool = True
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        lr=1e-3, batch_size=32, max_steps=300, eval_every=100, checkpoint_every=100, epochs=0))
    margin: float = at_least(0, 0.0)  # Bradley-Terry margin
    center: float = at_least(0, 0.01)  # weight of the reward-centring term


@dataclass
class DPOConfig:
    """Direct preference optimisation; see chatforge.align.dpo."""

    enabled: bool = True
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        lr=2e-4, batch_size=16, max_steps=200, eval_every=100, checkpoint_every=100))
    beta: float = between(0, None, 0.1, lo_open=True)
    loss: str = one_of("sigmoid", "sigmoid", "ipo")
    sft_weight: float = at_least(0, 0.0)  # RPO: weight of the chosen answers' NLL (TRL's rpo_alpha)


@dataclass
class EvalConfig:
    """The pipeline's eval stage (stage 6): built-in held-out sets; see chatforge.eval.stage."""

    enabled: bool = True
    limit: int = at_least(1, 48)  # items per built-in set and checkpoint (cpu preset: ~60 s in all)
    batch_size: int = at_least(1, 64)  # requests per forward pass
    max_new_tokens: int = at_least(1, 96)  # word problems and code; fact answers get 48
    samples: int = at_least(1, 1)  # code samples per problem (1 = greedy pass@1)


@dataclass
class RedteamConfig:
    """Red teaming of every checkpoint (harmful requests, jailbreaks, bias); see chatforge.eval.redteam."""

    enabled: bool = True
    probes: list[str] = field(default_factory=lambda: ["builtin"])  # builtin, advbench, ..., csv:PATH:COL
    attacks: list[str] = field(default_factory=lambda: [
        "role_play", "ignore_previous", "prefix_injection", "refusal_suppression", "payload_splitting",
        "base64", "leetspeak", "rot13", "translation", "many_shot"])
    judges: list[str] = field(default_factory=lambda: ["rules", "nb"])  # the first gives the headline
    judge_model: str = "gpt-4o-mini"  # model name sent to an endpoint:URL judge
    checkpoints: list[str] = field(default_factory=lambda: ["base", "sft", "dpo", "ppo", "grpo"])
    # Harmful requests per source asked as they are, spread over categories (0 = all), and how
    # many of those every attack also wraps (0 = all): the plain rate is the headline and costs
    # one answer a request, an attacked request one per attack.
    max_requests: int = at_least(0, 144)  # the built-in held-out set has 137 (cpu corpus)
    attacked_requests: int = at_least(0, 24)
    max_benign: int = at_least(0, 0)  # benign look-alikes (0 = all)
    max_bias_items: int = at_least(0, 300)  # CrowS pairs and BBQ items per source (0 = all)
    max_new_tokens: int = at_least(1, 32)  # a refusal shows in its first sentence
    batch_size: int = at_least(1, 64)
    bias: bool = True
    worst: int = at_least(0, 5)  # worst answers and judge disagreements listed per checkpoint
    data_root: str = ""  # folder of the public sets ("" = ../shared/data beside the repository)
    seed: int = 0


@dataclass
class PPOConfig:
    """PPO against the reward model under a KL leash; see chatforge.align.ppo. Defaults
    follow TRL / "The N implementation details of RLHF with PPO"."""

    enabled: bool = True
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        lr=3e-5, batch_size=8, max_steps=96, eval_every=48, checkpoint_every=16, log_every=4,
        warmup_frac=0.0, schedule="cosine", min_lr_ratio=0.1, grad_clip=1.0))
    prompts: int = at_least(1, 2000)  # training prompts drawn from
    heldout_prompts: int = at_least(1, 96)
    # "decided": train on the prompts whose two sampled SFT answers the judge told apart in the
    # preference stage (collect.decided_prompts), where SFT is unsure; "all": the corpus's mix
    prompt_focus: str = one_of("all", "all", "decided")
    # answers per rollout, per process; each optimizer step takes a minibatch of
    # train.batch_size x train.grad_accum of them (4 minibatches here)
    rollout_prompts: int = at_least(1, 32)
    epochs: int = at_least(1, 4)  # passes over each rollout
    temperature: float = between(0, 10, 1.0, lo_open=True)
    max_new_tokens: int = at_least(1, 80)  # the longest built-in answer PPO asks for, a refusal
    kl_coef: float = at_least(0, 0.05)
    kl_target: float = at_least(0, 0.0)  # > 0: Ziegler's adaptive coefficient aims here
    kl_horizon: float = between(0, None, 10000.0, lo_open=True)
    kl_estimator: str = one_of("k1", "k1", "k3")
    gamma: float = between(0, 1, 1.0)
    lam: float = between(0, 1, 0.95)
    clip: float = between(0, 1, 0.2, lo_open=True)
    value_clip: float = between(0, None, 0.2, lo_open=True)
    vf_coef: float = at_least(0, 0.1)
    # "zero": the critic's trunk from the reward model, its head from zero, so every value
    # starts at the normalised reward's mean; "reward": the reward model's head too (InstructGPT)
    critic_head: str = one_of("zero", "zero", "reward")
    normalize_reward: bool = True
    reward_clip: float = between(0, None, 5.0, lo_open=True)
    missing_eos_penalty: float = -1.0  # added to the score of an answer that never ends
    # alarms: KL per answer above this; entropy below this share of the first rollout's;
    # answers longer than this many times the first rollout's
    kl_bound: float = between(0, None, 20.0, lo_open=True)
    entropy_floor: float = between(0, 1, 0.3)
    length_factor: float = between(1, None, 2.0, lo_open=True)


@dataclass
class GRPOConfig:
    """GRPO with verifiable rewards (word problems, facts, refusals); see chatforge.align.grpo."""

    enabled: bool = False
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        lr=3e-5, batch_size=32, max_steps=60, eval_every=30, checkpoint_every=10, log_every=2,
        warmup_frac=0.0, schedule="cosine", min_lr_ratio=0.1, grad_clip=1.0))
    prompts: int = at_least(1, 2000)  # fresh word problems to train on (corpus/rl_train.jsonl)
    heldout_prompts: int = at_least(1, 96)  # held-out facts, word problems and harmful requests
    heldout_problems: int = at_least(0, 256)  # plus fresh held-out word problems
    rollout_prompts: int = at_least(1, 8)  # prompts per rollout, per process
    group: int = at_least(2, 8)  # answers per prompt (rows: rollout_prompts x group)
    epochs: int = at_least(1, 1)
    temperature: float = between(0, 10, 1.0, lo_open=True)
    max_new_tokens: int = at_least(1, 128)  # a word problem's worked solution with its tool calls
    clip: float = between(0, 1, 0.2, lo_open=True)
    kl_coef: float = at_least(0, 0.0)  # k3 penalty against SFT (TRL's default today: 0)
    scale_advantages: bool = True  # false = Dr. GRPO (no division by the group's std)
    token_level: bool = False  # true = DAPO's token-level loss normalisation
    reward_model_weight: float = at_least(0, 0.0)  # > 0 adds the reward model's score
    kl_bound: float = between(0, None, 20.0, lo_open=True)
    entropy_floor: float = between(0, 1, 0.3)
    length_factor: float = between(1, None, 2.0, lo_open=True)
    flat_group_share: float = between(0, 1, 0.9)


@dataclass
class CostConfig:
    gpu: str = "cpu"
    pue: float = at_least(1, 1.2)
    electricity_usd_per_kwh: float = at_least(0, 0.10)
    price_usd_per_gpu_hour: float = at_least(0, 0.0)  # 0 = the GPU table's default price


@dataclass
class ReportConfig:
    """The run's report (chatforge.report): language, the large scale its cost section shows."""

    enabled: bool = True
    lang: str = one_of("en", "en", "tr")
    cost_preset: str = "gpt4"  # a chatforge.cost preset: the scale of the seed's cost table
    max_new_tokens: int = at_least(1, 40)  # per example answer generated for the report


@dataclass
class Config:
    preset: str = "cpu"
    run: RunConfig = field(default_factory=RunConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    prefs: PrefsConfig = field(default_factory=PrefsConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    redteam: RedteamConfig = field(default_factory=RedteamConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def section_hash(self, *sections: str) -> str:
        """Stable hash of some sections, used as a stage's cache key."""
        payload = {s: _plain(_get_path(self, s.split("."))) for s in sections}
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_toml(self) -> str:
        return _to_toml(self.to_dict())


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return obj


def _get_path(obj: Any, parts: list[str]) -> Any:
    for part in parts:
        obj = getattr(obj, part)
    return obj


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_config(preset: str = "cpu", overrides: list[str] | None = None) -> Config:
    """Build a Config from a preset name (or a TOML path) plus `a.b=value` overrides."""
    raw = _load_preset(preset, seen=())
    cfg = Config()
    _apply(cfg, raw, where=f"preset {preset!r}")
    cfg.preset = preset
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. model.depth=6")
        set_value(cfg, key.strip(), value.strip(), parse=True)
    validate(cfg)
    return cfg


def _load_preset(preset: str, seen: tuple[str, ...]) -> dict[str, Any]:
    path = Path(preset) if preset.endswith(".toml") else PRESET_DIR / f"{preset}.toml"
    if not path.exists():
        raise ConfigError(
            f"unknown preset {preset!r}: choose one of {', '.join(available_presets())} "
            "or give a path to a .toml file"
        )
    if preset in seen:
        raise ConfigError(f"preset {preset!r}: circular 'base' chain {' -> '.join(seen)}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    base = raw.pop("base", None)
    if base is None:
        return raw
    merged = _load_preset(base, seen + (preset,))
    _deep_merge(merged, raw)
    return merged


def _deep_merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _deep_merge(into[k], v)
        else:
            into[k] = v


def _apply(obj: Any, raw: dict[str, Any], where: str, prefix: str = "") -> None:
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            child = _field_value(obj, key, dotted, where)
            if not dataclasses.is_dataclass(child):
                raise ConfigError(f"{where}: {dotted!r} is a value, not a section")
            _apply(child, value, where, prefix=f"{dotted}.")
        else:
            set_value(obj, key, value, parse=False, where=where, dotted=dotted)


def _field_value(obj: Any, key: str, dotted: str, where: str) -> Any:
    names = {f.name for f in dataclasses.fields(obj)}
    if key not in names:
        raise ConfigError(
            f"{where}: unknown key {dotted!r} (known here: {', '.join(sorted(names))})"
        )
    return getattr(obj, key)


def set_value(
    obj: Any,
    key: str,
    value: Any,
    parse: bool,
    where: str = "override",
    dotted: str | None = None,
) -> None:
    """Set a dotted key on a (nested) dataclass, converting and type-checking the value."""
    dotted = dotted or key
    *parents, leaf = key.split(".")
    for i, part in enumerate(parents):
        obj = _field_value(obj, part, ".".join(parents[: i + 1]), where)
        if not dataclasses.is_dataclass(obj):
            raise ConfigError(f"{where}: {'.'.join(parents[: i + 1])!r} is not a section")
    _field_value(obj, leaf, dotted, where)
    hints = typing.get_type_hints(type(obj))
    target = hints[leaf]
    if dataclasses.is_dataclass(target):
        raise ConfigError(f"{where}: {dotted!r} is a section; set one of its keys")
    setattr(obj, leaf, _coerce(value, target, dotted, where, parse))


def _coerce(value: Any, target: Any, dotted: str, where: str, parse: bool) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {dotted}={value!r} is not a valid {expected}")

    origin = typing.get_origin(target)
    if origin in (typing.Union, types.UnionType):  # Optional[...] etc.
        args = [a for a in typing.get_args(target) if a is not type(None)]
        if value in (None, "none", "None", ""):
            return None
        return _coerce(value, args[0], dotted, where, parse)
    if origin is list:
        (inner,) = typing.get_args(target)
        if parse and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise bad("list")
        return [_coerce(v, inner, dotted, where, parse) for v in value]
    if target is bool:
        if isinstance(value, bool):
            return value
        if parse and isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if parse and isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise bad("boolean (true/false)")
    if target is int:
        if isinstance(value, bool):
            raise bad("integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if parse and isinstance(value, str):
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                raise bad("integer") from None
            if number.is_integer():
                return int(number)
        raise bad("integer")
    if target is float:
        if isinstance(value, bool):
            raise bad("number")
        if isinstance(value, int | float):
            return float(value)
        if parse and isinstance(value, str):
            try:
                return float(value.replace("_", ""))
            except ValueError:
                raise bad("number") from None
        raise bad("number")
    if target is str:
        if isinstance(value, str):
            return value
        raise bad("string")
    raise bad(str(target))


_MIXTURE_SOURCE = re.compile(r"[a-z][a-z0-9_-]*")


def parse_mixture_syntax(items: list[str]) -> dict[str, float]:
    """{source: weight} from "SOURCE=WEIGHT" items, checked for form alone (the data stage
    checks the sources exist); a one-line ConfigError names a bad item."""
    weights: dict[str, float] = {}
    for item in items:
        source, sep, raw = item.partition("=")
        source = source.strip()
        try:
            weight = float(raw.strip().replace("_", ""))
        except ValueError:
            weight = math.nan
        if not sep or not _MIXTURE_SOURCE.fullmatch(source) or math.isnan(weight):
            raise ConfigError(f"data.mixture item {item!r}: expected SOURCE=WEIGHT, e.g. wiki=2 or warc=0.5")
        if not 0 <= weight < math.inf:
            raise ConfigError(f"data.mixture item {item!r}: the weight must be a finite number >= 0")
        if source in weights:
            raise ConfigError(f"data.mixture item {item!r}: source {source!r} is given twice")
        weights[source] = weight
    return weights


def _check_fields(obj: Any, prefix: str = "") -> None:
    """The one generic pass: every number finite and inside its field's bounds, every choice
    one of its field's choices, recursively through every section."""
    for f in dataclasses.fields(obj):
        value, dotted = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{dotted}.")
            continue
        numbers = value if isinstance(value, list) else [value]
        for v in numbers:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{dotted}={v}: must be a finite number")
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            raise ConfigError(f"{dotted}={value!r}: choose one of {', '.join(f.metadata['choices'])}")
        if "range" in f.metadata:
            lo, hi, lo_open, hi_open = f.metadata["range"]
            below = lo is not None and (value <= lo if lo_open else value < lo)
            above = hi is not None and (value >= hi if hi_open else value > hi)
            if below or above:
                raise ConfigError(f"{dotted}={value}: {_describe_range(lo, hi, lo_open, hi_open)}")


def _describe_range(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if hi is None:
        return f"must be {'greater than' if lo_open else 'at least'} {lo:g}"
    if lo is None:
        return f"must be {'less than' if hi_open else 'at most'} {hi:g}"
    return f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def trained_sections(cfg: Config) -> dict[str, TrainConfig]:
    """Every `<stage>.train` section, by its dotted name."""
    return {
        f"{f.name}.train": getattr(cfg, f.name).train
        for f in dataclasses.fields(cfg)
        if isinstance(getattr(getattr(cfg, f.name), "train", None), TrainConfig)
    }


def validate(cfg: Config) -> None:
    """Checks that types alone cannot express, all at load time, before any stage runs."""
    _check_fields(cfg)
    d = cfg.data
    if not d.languages:
        raise ConfigError("data.languages is empty: every document would be removed")
    parse_mixture_syntax(d.mixture)
    if not cfg.corpus.languages or any(lang not in CORPUS_LANGUAGES for lang in cfg.corpus.languages):
        raise ConfigError(f"corpus.languages={cfg.corpus.languages}: choose from {', '.join(CORPUS_LANGUAGES)}")
    for name, train in trained_sections(cfg).items():
        if train.warmup_frac + train.cooldown_frac > 1:
            raise ConfigError(f"{name}: warmup_frac + cooldown_frac must not exceed 1")
    for path in cfg.sft.data:
        if not Path(path).is_file():
            raise ConfigError(f"sft.data: {path}: no such conversation file")
    if len(cfg.prefs.temperatures) != 2 or any(t < 0 for t in cfg.prefs.temperatures):
        raise ConfigError(f"prefs.temperatures={cfg.prefs.temperatures}: give two temperatures >= 0")
    for spec in cfg.prefs.data:
        fmt, _, path = spec.partition(":")
        if fmt not in ("jsonl", "hh-rlhf", "llamafactory") or not Path(path).is_file():
            raise ConfigError(f"prefs.data item {spec!r}: expected FORMAT:PATH (jsonl, hh-rlhf, "
                              "llamafactory) naming an existing file")
    for name, rl, rows in (("ppo", cfg.ppo, cfg.ppo.rollout_prompts),
                           ("grpo", cfg.grpo, cfg.grpo.rollout_prompts * cfg.grpo.group)):
        step_rows = rl.train.batch_size * rl.train.grad_accum
        if rows % step_rows:
            raise ConfigError(f"{name}: a rollout's {rows} answers must split into minibatches of "
                              f"{name}.train.batch_size x grad_accum = {step_rows}")
    m = cfg.model
    for width in {m.width or m.depth * m.aspect_ratio, m.width or m.fp32_width or m.depth * m.aspect_ratio}:
        if width % m.head_dim:
            raise ConfigError(f"model width {width} is not a multiple of model.head_dim={m.head_dim}")
        n_head = width // m.head_dim
        if m.n_kv_head and n_head % m.n_kv_head:
            raise ConfigError(f"model.n_kv_head={m.n_kv_head} must divide the {n_head} query heads")


def _to_toml(d: dict[str, Any], prefix: str = "") -> str:
    scalars, tables = [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            scalars.append(f"{k} = {json.dumps(v)}")
    out = "\n".join(scalars) + ("\n" if scalars else "")
    for k, v in tables:
        name = f"{prefix}{k}"
        out += f"\n[{name}]\n" + _to_toml(v, prefix=f"{name}.")
    return out
