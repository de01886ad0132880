"""Typed configuration: presets in TOML, overridden by `section.key=value` on the command line.

One `Config` holds a section per stage. Presets live in `chatforge/configs/<name>.toml`; a
preset may name a `base` preset it extends. Unknown keys and values of the wrong type are
rejected with a one-line error that names them, so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatforge.errors import ConfigError

PRESET_DIR = Path(__file__).parent / "configs"


@dataclass
class RunConfig:
    name: str = "latest"
    seed: int = 1337
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps


@dataclass
class CorpusConfig:
    """Size of the built-in invented world and of each kind of text generated from it."""

    seed: int = 0
    languages: list[str] = field(default_factory=lambda: ["en", "tr"])
    # World size: entities per kind (each has 2-5 attributes from small closed sets).
    n_people: int = 36
    n_towns: int = 12
    n_rivers: int = 6
    n_animals: int = 8
    n_inventions: int = 10
    n_foods: int = 10
    # Pre-training documents (per language for articles, split over languages for the rest).
    articles_per_entity: int = 6
    stories: int = 4000
    lists: int = 2000
    arithmetic: int = 800
    code: int = 400
    min_mentions: int = 20  # top-up until every fact is stated this often in every language
    # SFT conversations and held-out evaluation questions.
    conversations: int = 3000
    heldout_fraction: float = 0.2  # share of (fact, language) pairs asked only in held-out
    heldout_unseen_fraction: float = 0.2  # share of those whose fact no SFT example mentions


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
    executor: str = "local"  # local | ray
    workers: int = 0  # 0 = all cores
    ray_address: str = ""
    extractor: str = "resiliparse"  # resiliparse | trafilatura (HTML main-content extraction)
    languages: list[str] = field(default_factory=lambda: ["en", "tr"])
    langid_threshold: float = 0.65
    minhash_bands: int = 14
    minhash_rows: int = 8
    minhash_ngram: int = 5
    decontam_ngram: int = 13
    decontam_min_words: int = 8  # shorter evaluation items are matched whole, not skipped
    pii_masking: bool = True
    shard_docs: int = 20000
    batch_docs: int = 500  # documents per step batch (bounds worker memory)
    partitions: int = 8  # hash partitions of the dedup shuffle
    max_doc_chars: int = 1_000_000
    quality: QualityConfig = field(default_factory=QualityConfig)
    quality_overrides: list[str] = field(default_factory=list)  # "tr:gopher_max_words=2e5"
    prose_skip_sources: list[str] = field(default_factory=lambda: ["code"])
    # "SOURCE=WEIGHT" per Document.source: 0 drops it, 0.5 keeps a seeded half, 2 = two epochs
    mixture: list[str] = field(default_factory=list)
    web_pages: int = 1200  # size of the built-in dirty web crawl


@dataclass
class TokenizerConfig:
    vocab_size: int = 4096
    min_frequency: int = 2
    max_train_chars: int = 50_000_000


@dataclass
class ModelConfig:
    """Llama-style decoder. `depth` is the one size dial; width and heads follow unless set."""

    depth: int = 4
    width: int = 0  # 0 = depth * aspect_ratio
    aspect_ratio: int = 64
    head_dim: int = 64
    n_kv_head: int = 0  # 0 = same as query heads (no GQA)
    seq_len: int = 256
    mlp: str = "swiglu"  # swiglu | relu2
    qk_norm: bool = True
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    dropout: float = 0.0


@dataclass
class TrainConfig:
    """One training loop for pre-training, SFT and reward modelling; each stage has a copy."""

    batch_size: int = 16  # sequences per micro-batch per process
    grad_accum: int = 1
    optimizer: str = "adamw"  # adamw | muon (Muon for 2-D matrices, AdamW for the rest)
    lr: float = 3e-3
    matrix_lr: float = 0.02  # Muon learning rate
    min_lr_ratio: float = 0.0
    schedule: str = "wsd"  # wsd (warmup-stable-decay) | cosine
    warmup_frac: float = 0.02
    cooldown_frac: float = 0.4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    max_steps: int = 1000
    time_budget: float = 0.0  # seconds; >0 plans the schedule for this wall time and stops there
    epochs: int = 0  # SFT/RM: >0 sets max_steps from the dataset size
    eval_every: int = 100
    eval_batches: int = 8
    checkpoint_every: int = 100
    sample_every: int = 0
    log_every: int = 10
    compile: bool = False
    val_fraction: float = 0.1


@dataclass
class SFTConfig:
    """Supervised fine-tuning (stage 4); see chatforge.align.sft."""

    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(lr=1e-3, max_steps=300, eval_every=50, batch_size=16)
    )
    mix_pretrain: float = 0.0  # share of each batch's rows drawn from pre-training tokens
    pack: bool = False  # true = best-fit-decreasing packing (faster; packed rows attend across)
    data: list[str] = field(default_factory=list)  # extra conversation files (any reader format)
    val_conversations: int = 512  # held-out conversations scored for validation loss


@dataclass
class CostConfig:
    gpu: str = "cpu"
    pue: float = 1.2
    electricity_usd_per_kwh: float = 0.10
    price_usd_per_gpu_hour: float = 0.0  # 0 = the GPU table's default price


@dataclass
class Config:
    preset: str = "cpu"
    run: RunConfig = field(default_factory=RunConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    cost: CostConfig = field(default_factory=CostConfig)

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


_CHOICES = {
    "run.device": None,
    "data.executor": ("local", "ray"),
    "data.extractor": ("resiliparse", "trafilatura"),
    "model.mlp": ("swiglu", "relu2"),
}


def _validate_data(d: DataConfig) -> None:
    for key in ("minhash_bands", "minhash_rows", "minhash_ngram", "decontam_ngram", "shard_docs",
                "batch_docs", "partitions", "max_doc_chars"):
        if getattr(d, key) < 1:
            raise ConfigError(f"data.{key}={getattr(d, key)}: must be at least 1")
    if d.workers < 0 or d.web_pages < 0:
        raise ConfigError("data.workers and data.web_pages must not be negative")
    if not 0 <= d.langid_threshold <= 1:
        raise ConfigError(f"data.langid_threshold={d.langid_threshold}: must be in [0, 1]")
    if not d.languages:
        raise ConfigError("data.languages is empty: every document would be removed")
    if d.mixture:
        from chatforge.data.mixture import parse_mixture  # here: it imports the data steps

        parse_mixture(d.mixture)


def validate(cfg: Config) -> None:
    """Cross-field and range checks that types alone cannot express."""
    for dotted, choices in _CHOICES.items():
        value = _get_path(cfg, dotted.split("."))
        if choices and value not in choices:
            raise ConfigError(f"{dotted}={value!r}: choose one of {', '.join(choices)}")
    _validate_data(cfg.data)
    for name, train in (("pretrain", cfg.pretrain), ("sft.train", cfg.sft.train)):
        if train.optimizer not in ("adamw", "muon"):
            raise ConfigError(f"{name}.optimizer={train.optimizer!r}: choose adamw or muon")
        if train.schedule not in ("wsd", "cosine"):
            raise ConfigError(f"{name}.schedule={train.schedule!r}: choose wsd or cosine")
        for key in ("batch_size", "grad_accum", "max_steps"):
            if getattr(train, key) < 1:
                raise ConfigError(f"{name}.{key}={getattr(train, key)}: must be at least 1")
        if train.lr <= 0:
            raise ConfigError(f"{name}.lr={train.lr}: must be positive")
        if not 0 < train.val_fraction < 1:
            raise ConfigError(f"{name}.val_fraction={train.val_fraction}: must be in (0, 1)")
    m = cfg.model
    for key in ("depth", "seq_len", "head_dim", "aspect_ratio"):
        if getattr(m, key) < 1:
            raise ConfigError(f"model.{key}={getattr(m, key)}: must be at least 1")
    width = m.width or m.depth * m.aspect_ratio
    if width % m.head_dim:
        raise ConfigError(f"model width {width} is not a multiple of model.head_dim={m.head_dim}")
    n_head = width // m.head_dim
    if m.n_kv_head and n_head % m.n_kv_head:
        raise ConfigError(f"model.n_kv_head={m.n_kv_head} must divide the {n_head} query heads")
    if cfg.tokenizer.vocab_size < 269:
        raise ConfigError(
            f"tokenizer.vocab_size={cfg.tokenizer.vocab_size}: must be at least 269 "
            "(256 bytes + 13 special tokens)"
        )


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
