"""`chatforge run`: the stages chained with caching and resume.

A stage is a function `(config, run_dir) -> StageResult`. Its cache key hashes the config
sections it reads and the keys of the stages it needs, so changing the tokenizer re-runs
everything downstream of it and nothing upstream. A stage that was interrupted has a
manifest with status "running"; running it again lets the stage resume from its own
checkpoints (training stages do).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from chatforge.config import Config
from chatforge.runs import RunDir, atomic_write_text


@dataclass
class StageResult:
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    summary: str = ""  # one line printed when the stage ends
    device: str = "cpu"
    n_devices: int = 1


@dataclass(frozen=True)
class Stage:
    name: str
    fn: Callable[[Config, RunDir], StageResult]
    sections: tuple[str, ...]
    needs: tuple[str, ...] = ()
    enabled: Callable[[Config], bool] = lambda cfg: True
    help: str = ""


def _stage_corpus(cfg: Config, run: RunDir) -> StageResult:
    from chatforge.corpus import build

    return build.run(cfg, run)


def _stage_data(cfg: Config, run: RunDir) -> StageResult:
    from chatforge.data import stage

    return stage.run(cfg, run)


def _stage_tokenizer(cfg: Config, run: RunDir) -> StageResult:
    from chatforge.tokenizer import stage

    return stage.run_train(cfg, run)


def _stage_tokens(cfg: Config, run: RunDir) -> StageResult:
    from chatforge.tokenizer import stage

    return stage.run_shards(cfg, run)


def _stage_pretrain(cfg: Config, run: RunDir) -> StageResult:
    from chatforge.train import pretrain

    return pretrain.run(cfg, run)


def _stage_sft(cfg: Config, run: RunDir) -> StageResult:
    from chatforge.align import sft

    return sft.run(cfg, run)


STAGES: list[Stage] = [
    Stage("corpus", _stage_corpus, ("corpus",), help="generate the built-in corpus"),
    Stage("data", _stage_data, ("data", "corpus"), ("corpus",), enabled=lambda cfg: cfg.data.enabled,
          help="clean the built-in dirty web (WARC, wiki, books, code) into documents + funnel"),
    # The tokenizer holds out the validation documents, so it depends on the split's seed too.
    Stage("tokenizer", _stage_tokenizer, ("tokenizer", "run.seed", "pretrain.val_fraction"),
          ("corpus", "data"), help="train BPE"),
    Stage("tokens", _stage_tokens, ("run.seed", "pretrain.val_fraction"), ("tokenizer",),
          help="encode documents into train/val token shards"),
    Stage("pretrain", _stage_pretrain, ("run.seed", "model", "pretrain"), ("tokens",),
          help="pre-train the base model"),
    Stage("sft", _stage_sft, ("run.seed", "sft"), ("pretrain", "corpus"),
          help="supervised fine-tuning on conversations; held-out fact exact match"),
]


def stage_names() -> list[str]:
    return [s.name for s in STAGES]


def stage_keys(cfg: Config) -> dict[str, str]:
    """Cache key of every enabled stage, chained through the stages it needs."""
    keys: dict[str, str] = {}
    for stage in STAGES:
        if not stage.enabled(cfg):
            continue
        parts = [stage.name, cfg.section_hash(*stage.sections)]
        parts += [keys[n] for n in stage.needs if n in keys]
        keys[stage.name] = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return keys


def run_pipeline(
    cfg: Config,
    run: RunDir,
    only: list[str] | None = None,
    force: list[str] | None = None,
    console: Console | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every enabled stage in order, skipping those whose manifest is up to date."""
    # Imported here, not at the top: stages import StageResult from this module, and the
    # data stage must not need torch.
    from chatforge.device import device_name

    console = console or Console(stderr=True)
    run.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.path("config.toml"), cfg.to_toml())
    keys = stage_keys(cfg)
    manifests: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        if stage.name not in keys or (only and stage.name not in only):
            continue
        key = keys[stage.name]
        inputs = {n: keys[n] for n in stage.needs if n in keys}
        if run.is_complete(stage.name, key) and stage.name not in (force or []):
            console.print(f"[dim]= {stage.name}: up to date, skipped[/dim]")
            manifests[stage.name] = run.manifest(stage.name) or {}
            continue
        previous = run.manifest(stage.name)
        resuming = previous is not None and previous.get("status") == "running"
        verb = "resuming" if resuming and previous.get("key") == key else "running"
        console.rule(f"[bold]{stage.name}[/bold] ({verb})")
        started = time.time()
        run.write_manifest(stage.name, key, "running", started, inputs=inputs)
        result = stage.fn(cfg, run)
        manifests[stage.name] = run.write_manifest(
            stage.name, key, "complete", started,
            outputs=result.outputs, metrics=result.metrics, inputs=inputs,
            device=result.device, n_devices=result.n_devices,
            device_name=device_name(result.device),
        )
        wall = manifests[stage.name]["wall_s"]
        console.print(f"[green]✓ {stage.name}[/green] in {wall:.1f}s  {result.summary}")
    return manifests
