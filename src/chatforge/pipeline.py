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
from pathlib import Path
from typing import Any

from rich.console import Console

from chatforge.align import collect, dpo, grpo, ppo, reward, sft
from chatforge.config import Config
from chatforge.corpus import build as corpus
from chatforge.data import stage as data
from chatforge.device import device_name, pick_device
from chatforge.eval import stage as eval_stage
from chatforge.eval.redteam import run as redteam
from chatforge.report import stage as report
from chatforge.runs import RunDir, atomic_write_text, files_digest
from chatforge.stage import Stage
from chatforge.tokenizer import stage as tokenizer
from chatforge.train import pretrain
from chatforge.train.loop import barrier, init_distributed

REPORT_NEEDS = ("corpus", "data", "tokenizer", "tokens", "pretrain", "sft", "prefs", "reward", "dpo", "ppo",
                "grpo", "eval", "redteam")
STAGES: list[Stage] = [
    Stage("corpus", corpus.run, ("corpus",), help="generate the built-in corpus"),
    Stage("data", data.run, ("data", "corpus"), ("corpus",), enabled=lambda cfg: cfg.data.enabled,
          help="clean the built-in dirty web (WARC, wiki, books, code) into documents + funnel"),
    # The tokenizer holds out the validation documents, so it depends on the split's seed too.
    # Both read pretrain.inputs; the tokens stage follows the input files through its key.
    Stage("tokenizer", tokenizer.run_train,
          ("tokenizer", "run.seed", "pretrain.val_fraction", *tokenizer.INPUT_KEYS), ("corpus", "data"),
          files=tokenizer.input_files, help="train BPE (or take pretrain.tokenizer)"),
    Stage("tokens", tokenizer.run_shards, ("run.seed", "pretrain.val_fraction", *tokenizer.INPUT_KEYS),
          ("tokenizer",), help="encode documents into train/val token shards"),
    Stage("pretrain", pretrain.run, ("run.seed", "model", "pretrain"), ("tokens",),
          help="pre-train the base model", distributed=True),
    Stage("sft", sft.run, ("run.seed", "sft"), ("pretrain", "corpus"),
          files=lambda cfg: cfg.sft.data, distributed=True,
          help="supervised fine-tuning on conversations; held-out fact exact match"),
    # The prompts and the corpus's own pairs come from the corpus.
    Stage("prefs", collect.run, ("run.seed", "prefs"), ("sft", "corpus"),
          enabled=lambda cfg: cfg.prefs.enabled,
          files=lambda cfg: [spec.partition(":")[2] for spec in cfg.prefs.data],
          help="two answers per prompt from the SFT model, and a judge's (or a person's) choice"),
    Stage("reward", reward.run, ("run.seed", "reward"), ("prefs",), distributed=True,
          enabled=lambda cfg: cfg.prefs.enabled and cfg.reward.enabled,
          help="reward model (Bradley-Terry) on the preferences; held-out pair accuracy"),
    Stage("dpo", dpo.run, ("run.seed", "dpo"), ("prefs",), distributed=True,
          enabled=lambda cfg: cfg.prefs.enabled and cfg.dpo.enabled,
          help="direct preference optimisation of the SFT model; margins and refusals vs SFT"),
    Stage("ppo", ppo.run, ("run.seed", "ppo"), ("reward",), distributed=True,
          enabled=lambda cfg: cfg.prefs.enabled and cfg.reward.enabled and cfg.ppo.enabled,
          help="PPO against the reward model under a KL leash to SFT; alarms for reward hacking"),
    Stage("grpo", grpo.run, ("run.seed", "grpo"), ("sft",), distributed=True,
          enabled=lambda cfg: cfg.grpo.enabled,
          help="GRPO with verifiable rewards (word problems, facts, refusals)"),
    # Last: it scores every checkpoint present (base, sft, dpo, ppo, grpo), so its key follows
    # each of those stages that is on; a stage added later goes above it.
    Stage("eval", eval_stage.run, ("eval",), ("corpus", "pretrain", "sft", "dpo", "ppo", "grpo"),
          enabled=lambda cfg: cfg.eval.enabled,
          help="built-in held-out benchmarks of every checkpoint side by side; eval/scoreboard.json"),
    # Scores every checkpoint present, like eval; stays last so its key follows each of them.
    Stage("redteam", redteam.run_stage, ("redteam",), ("corpus", "pretrain", "sft", "dpo", "ppo", "grpo"),
          enabled=lambda cfg: cfg.redteam.enabled,
          files=lambda cfg: redteam.sources.probe_files(cfg.redteam.probes),
          help="harmful requests, jailbreaks and bias per checkpoint; redteam/report.json"),
    # The very last: the article of every stage before it (absent ones are named as such).
    Stage("report", report.run, ("report", "cost"), REPORT_NEEDS, enabled=lambda cfg: cfg.report.enabled,
          help="the run's report: report/index.html and report/report.md in en or tr"),
]


def stage_names() -> list[str]:
    return [s.name for s in STAGES]


def stage_keys(cfg: Config) -> dict[str, str]:
    """Cache key of every enabled stage: its config sections, the bytes of the user's files it
    reads, and the keys of the stages it needs (so a change re-runs everything downstream)."""
    keys: dict[str, str] = {}
    for stage in STAGES:
        if not stage.enabled(cfg):
            continue
        parts = [stage.name, cfg.section_hash(*stage.sections)]
        files = [Path(p) for p in stage.files(cfg)]
        if files:
            parts.append(files_digest(files))
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
    """Run every enabled stage in order, skipping those whose manifest is up to date.

    Under torchrun, rank 0 alone runs the stages that are not distributed and writes every
    manifest; the other ranks wait at a barrier and join the training stages.
    """
    console = console or Console(stderr=True)
    ddp = init_distributed(pick_device(cfg.run.device))
    if ddp.main:
        run.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.path("config.toml"), cfg.to_toml())
    keys = stage_keys(cfg)
    manifests: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        if stage.name not in keys or (only and stage.name not in only):
            continue
        key = keys[stage.name]
        inputs = {n: keys[n] for n in stage.needs if n in keys}
        barrier(ddp)  # every rank sees the manifests rank 0 wrote before
        if run.is_complete(stage.name, key) and stage.name not in (force or []):
            if ddp.main:
                console.print(f"[dim]= {stage.name}: up to date, skipped[/dim]")
            manifests[stage.name] = run.manifest(stage.name) or {}
            continue
        if not ddp.main and not stage.distributed:
            continue
        started = time.time()
        if ddp.main:
            previous = run.manifest(stage.name)
            resuming = previous is not None and previous.get("status") == "running"
            verb = "resuming" if resuming and previous.get("key") == key else "running"
            console.rule(f"[bold]{stage.name}[/bold] ({verb})")
            run.write_manifest(stage.name, key, "running", started, inputs=inputs)
        result = stage.fn(cfg, run)
        if not ddp.main:
            continue
        manifests[stage.name] = run.write_manifest(
            stage.name, key, "complete", started,
            outputs=result.outputs, metrics=result.metrics, inputs=inputs,
            device=result.device, n_devices=result.n_devices * ddp.world if stage.distributed else 1,
            device_name=device_name(result.device),
        )
        wall = manifests[stage.name]["wall_s"]
        console.print(f"[green]✓ {stage.name}[/green] in {wall:.1f}s  {result.summary}")
    barrier(ddp)
    return manifests
