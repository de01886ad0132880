"""`chatforge run`: the stages chained with caching and resume.

A stage is a function `(config, run_dir) -> StageResult`. Its cache key hashes the config
sections it reads and the keys of the stages it needs, so changing the tokenizer re-runs
everything downstream of it and nothing upstream. A stage that was interrupted has a
manifest with status "running"; running it again lets the stage resume from its own
checkpoints (training stages do).
"""

from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path
from typing import Any

import torch.distributed as dist
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

# untimed_s: each stage's seconds outside its training budget in the cpu preset on the 2-core
# Xeon with AMX the preset was sized on (run of 12.5 minutes; RunClock scales them). Since the
# engine batches by length and remembers the evaluations' answers, prefs, dpo, ppo and eval
# are those figures times what the change saved on a 2-core AVX2 EPYC (prefs 107 -> 45 s,
# dpo 51 -> 42, ppo 20 -> 16, eval 80 -> 62).
REPORT_NEEDS = ("corpus", "data", "tokenizer", "tokens", "pretrain", "sft", "prefs", "reward", "dpo", "ppo",
                "grpo", "eval", "redteam")
STAGES: list[Stage] = [
    Stage("corpus", corpus.run, ("corpus",), untimed_s=1, help="generate the built-in corpus"),
    Stage("data", data.run, ("data", "corpus"), ("corpus",), enabled=lambda cfg: cfg.data.enabled, untimed_s=3,
          help="clean the built-in dirty web (WARC, wiki, books, code) into documents + funnel"),
    # The tokenizer holds out the validation documents, so it depends on the split's seed too.
    # Both read pretrain.inputs; the tokens stage follows the input files through its key.
    Stage("tokenizer", tokenizer.run_train,
          ("tokenizer", "run.seed", "pretrain.val_fraction", *tokenizer.INPUT_KEYS), ("corpus", "data"),
          files=tokenizer.input_files, untimed_s=1, help="train BPE (or take pretrain.tokenizer)"),
    Stage("tokens", tokenizer.run_shards, ("run.seed", "pretrain.val_fraction", *tokenizer.INPUT_KEYS),
          ("tokenizer",), untimed_s=1, help="encode documents into train/val token shards"),
    Stage("pretrain", pretrain.run, ("run.seed", "model", "pretrain"), ("tokens",), untimed_s=3,
          help="pre-train the base model", distributed=True),
    Stage("sft", sft.run, ("run.seed", "sft"), ("pretrain", "corpus"),
          files=lambda cfg: cfg.sft.data, distributed=True, untimed_s=11,
          help="supervised fine-tuning on conversations; held-out fact exact match"),
    # The prompts and the corpus's own pairs come from the corpus.
    Stage("prefs", collect.run, ("run.seed", "prefs"), ("sft", "corpus"),
          enabled=lambda cfg: cfg.prefs.enabled, untimed_s=20,
          files=lambda cfg: [spec.partition(":")[2] for spec in cfg.prefs.data],
          help="two answers per prompt from the SFT model, and a judge's (or a person's) choice"),
    Stage("reward", reward.run, ("run.seed", "reward"), ("prefs",), distributed=True,
          enabled=lambda cfg: cfg.prefs.enabled and cfg.reward.enabled, untimed_s=3,
          help="reward model (Bradley-Terry) on the preferences; held-out pair accuracy"),
    Stage("dpo", dpo.run, ("run.seed", "dpo"), ("prefs",), distributed=True,
          enabled=lambda cfg: cfg.prefs.enabled and cfg.dpo.enabled, untimed_s=16,
          help="direct preference optimisation of the SFT model; margins and refusals vs SFT"),
    Stage("ppo", ppo.run, ("run.seed", "ppo"), ("reward",), distributed=True,
          enabled=lambda cfg: cfg.prefs.enabled and cfg.reward.enabled and cfg.ppo.enabled, untimed_s=8,
          help="PPO against the reward model under a KL leash to SFT; alarms for reward hacking"),
    Stage("grpo", grpo.run, ("run.seed", "grpo"), ("sft",), distributed=True,
          enabled=lambda cfg: cfg.grpo.enabled,
          help="GRPO with verifiable rewards (word problems, facts, refusals)"),
    # Last: it scores every checkpoint present (base, sft, dpo, ppo, grpo), so its key follows
    # each of those stages that is on; a stage added later goes above it.
    Stage("eval", eval_stage.run, ("eval",), ("corpus", "pretrain", "sft", "dpo", "ppo", "grpo"),
          enabled=lambda cfg: cfg.eval.enabled, untimed_s=26,
          help="built-in held-out benchmarks of every checkpoint side by side; eval/scoreboard.json"),
    # Scores every checkpoint present, like eval; stays last so its key follows each of them.
    Stage("redteam", redteam.run_stage, ("redteam",), ("corpus", "pretrain", "sft", "dpo", "ppo", "grpo"),
          enabled=lambda cfg: cfg.redteam.enabled, untimed_s=16,
          files=lambda cfg: redteam.sources.probe_files(cfg.redteam.probes),
          help="harmful requests, jailbreaks and bias per checkpoint; redteam/report.json"),
    # The very last: the article of every stage before it (absent ones are named as such).
    Stage("report", report.run, ("report", "cost"), REPORT_NEEDS, enabled=lambda cfg: cfg.report.enabled, untimed_s=2,
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


class RunClock:
    """Keeps one `chatforge run` within `run.time_budget` seconds.

    Training stages stop at budgets of their own, but the rest (evaluations, sampling the
    preference pairs, red teaming) takes what the machine needs: on a 2-core AVX2 CPU without
    fast bf16 it ran 2.5-3.5x the preset's reference and the cpu run took 17 minutes instead of
    12.5. Before each training stage the clock estimates the untimed work still ahead (the
    stages' `untimed_s` times how much slower than that the untimed work so far ran) and scales
    the training budgets ahead by one factor so that both fit in the time left.
    """

    MIN_SCALE = 0.3  # below it a stage learns too little: a slower machine overruns instead

    def __init__(self, budget: float, ahead: list[Stage]):
        self.budget, self.ahead = budget, list(ahead)
        self.start = time.time()
        self.untimed_seen = self.untimed_expected = 0.0

    @staticmethod
    def train_budget(cfg: Config, stage: Stage) -> float:
        train = getattr(getattr(cfg, stage.name, None), "train", None)
        return train.time_budget if train is not None else 0.0

    def slowdown(self) -> float:
        """This machine's untimed work against the reference (1 until a few seconds are seen)."""
        return self.untimed_seen / self.untimed_expected if self.untimed_expected >= 5 else 1.0

    def scale(self, cfg: Config, stage: Stage) -> float:
        """The factor for the training budgets from `stage` on (1 = as configured)."""
        ahead = self.ahead[self.ahead.index(stage):]
        trained = sum(self.train_budget(cfg, s) for s in ahead)
        if self.budget <= 0 or self.train_budget(cfg, stage) <= 0 or trained <= 0:
            return 1.0
        left = self.budget - (time.time() - self.start)
        untimed = self.slowdown() * sum(s.untimed_s for s in ahead)
        return min(1.0, max(self.MIN_SCALE, (left - untimed) / trained))

    def done(self, stage: Stage, wall: float, train_budget: float) -> None:
        self.untimed_seen += max(0.0, wall - train_budget)
        self.untimed_expected += stage.untimed_s


def _with_train_budget(cfg: Config, stage: Stage, seconds: float) -> Config:
    scaled = copy.deepcopy(cfg)
    getattr(scaled, stage.name).train.time_budget = seconds
    return scaled


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

    selected = [s for s in STAGES if s.name in keys and not (only and s.name not in only)]
    # A stage runs when its manifest is stale or it is forced, and then so does every selected
    # stage that needs it: keys follow the config, not the bytes a stage wrote, so a forced
    # re-run (after a code change, say) must not leave its dependants on the old outputs.
    to_run: set[str] = set()
    for stage in selected:
        if (not run.is_complete(stage.name, keys[stage.name]) or stage.name in (force or [])
                or to_run.intersection(stage.needs)):
            to_run.add(stage.name)

    def up_to_date(stage: Stage) -> bool:
        return stage.name not in to_run

    clock = RunClock(cfg.run.time_budget, [s for s in selected if not up_to_date(s)])
    manifests: dict[str, dict[str, Any]] = {}
    for stage in selected:
        key = keys[stage.name]
        inputs = {n: keys[n] for n in stage.needs if n in keys}
        barrier(ddp)  # every rank sees the manifests rank 0 wrote before
        if up_to_date(stage):
            if ddp.main:
                console.print(f"[dim]= {stage.name}: up to date, skipped[/dim]")
            manifests[stage.name] = run.manifest(stage.name) or {}
            continue
        if not ddp.main and not stage.distributed:
            continue
        started = time.time()
        own_budget = RunClock.train_budget(cfg, stage)
        factor = clock.scale(cfg, stage)
        if stage.distributed and ddp.world > 1:  # every rank must plan the same steps
            box = [factor]
            dist.broadcast_object_list(box, src=0)
            factor = box[0]
        scaled, budget = factor < 1, own_budget * factor
        if ddp.main:
            previous = run.manifest(stage.name)
            resuming = previous is not None and previous.get("status") == "running"
            verb = "resuming" if resuming and previous.get("key") == key else "running"
            console.rule(f"[bold]{stage.name}[/bold] ({verb})")
            if scaled:
                console.print(f"[yellow]{stage.name}: trains {budget:.0f} s of its {own_budget:.0f} s budget "
                              f"so the run ends within run.time_budget={cfg.run.time_budget:.0f} s (evaluation "
                              f"and sampling run {clock.slowdown():.1f}x the preset's reference here)[/yellow]")
            run.write_manifest(stage.name, key, "running", started, inputs=inputs)
        result = stage.fn(_with_train_budget(cfg, stage, budget) if scaled else cfg, run)
        if not ddp.main:
            continue
        manifests[stage.name] = run.write_manifest(
            stage.name, key, "complete", started,
            outputs=result.outputs, inputs=inputs,
            metrics={**result.metrics, "train_budget_s": budget} if scaled else result.metrics,
            device=result.device, n_devices=result.n_devices * ddp.world if stage.distributed else 1,
            device_name=device_name(result.device),
        )
        wall = manifests[stage.name]["wall_s"]
        clock.done(stage, wall, budget)
        console.print(f"[green]✓ {stage.name}[/green] in {wall:.1f}s  {result.summary}")
    barrier(ddp)
    return manifests
