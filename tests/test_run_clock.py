"""RunClock: one `chatforge run` within run.time_budget on a machine slower than the preset's."""

from __future__ import annotations

import pytest

from chatforge import pipeline
from chatforge.config import load_config
from chatforge.pipeline import STAGES, RunClock, _with_train_budget, stage_keys
from chatforge.stage import Stage, StageResult


def _stage(name: str, untimed_s: float) -> Stage:
    return Stage(name, lambda cfg, run: StageResult(), (), untimed_s=untimed_s)


@pytest.fixture
def now(monkeypatch):
    """A settable clock in place of time.time in the pipeline."""
    t = [1000.0]
    monkeypatch.setattr(pipeline.time, "time", lambda: t[0])
    return t


def _cfg(pretrain_s: float, sft_s: float, run_s: float):
    return load_config("smoke", [f"pretrain.train.time_budget={pretrain_s}", f"sft.train.time_budget={sft_s}",
                                 f"run.time_budget={run_s}"])


def test_untimed_work_three_times_slower_shrinks_the_training_budgets_ahead_to_fit(now):
    corpus, pre, sft, ev = _stage("corpus", 10), _stage("pretrain", 0), _stage("sft", 10), _stage("eval", 20)
    cfg = _cfg(100, 50, 260)
    clock = RunClock(cfg.run.time_budget, [corpus, pre, sft, ev])
    now[0] += 30
    clock.done(corpus, 30, 0)  # 3x its reference
    assert clock.slowdown() == pytest.approx(3.0)
    # 230 s left; untimed ahead 3 x (0 + 10 + 20) = 90; training ahead 100 + 50
    assert clock.scale(cfg, pre) == pytest.approx((230 - 90) / 150)
    now[0] += 90  # pretrain trained 80 of its 100 s
    clock.done(pre, 90, 80)  # 10 s of untimed work where 0 was expected
    # 140 s left; slowdown (30 + 10) / 10 = 4; untimed ahead 4 x 30 = 120; training ahead 50
    assert clock.scale(cfg, sft) == pytest.approx((140 - 120) / 50)


def test_a_machine_as_fast_as_the_reference_keeps_every_budget(now):
    corpus, pre, ev = _stage("corpus", 10), _stage("pretrain", 5), _stage("eval", 20)
    cfg = _cfg(100, 50, 300)
    clock = RunClock(cfg.run.time_budget, [corpus, pre, ev])
    now[0] += 9
    clock.done(corpus, 9, 0)
    assert clock.scale(cfg, pre) == 1.0  # never above the configured budget


def test_the_scale_has_a_floor_and_an_off_switch(now):
    corpus, pre = _stage("corpus", 10), _stage("pretrain", 0)
    slow = RunClock(300, [corpus, pre])
    now[0] += 290
    slow.done(corpus, 290, 0)
    assert slow.scale(_cfg(100, 50, 300), pre) == RunClock.MIN_SCALE
    off = RunClock(0, [corpus, pre])
    assert off.scale(_cfg(100, 50, 0), pre) == 1.0
    untimed_stage = RunClock(300, [corpus, pre])  # a stage without a training budget
    assert untimed_stage.scale(_cfg(100, 50, 300), corpus) == 1.0


def test_a_scaled_budget_changes_neither_the_config_nor_any_cache_key():
    cfg = load_config("cpu")
    pretrain = next(s for s in STAGES if s.name == "pretrain")
    scaled = _with_train_budget(cfg, pretrain, 150.0)
    assert scaled.pretrain.train.time_budget == 150.0 and cfg.pretrain.train.time_budget == 240.0
    assert stage_keys(load_config("cpu")) == stage_keys(cfg)


def test_every_stage_with_a_training_budget_in_the_cpu_preset_has_its_section():
    cfg = load_config("cpu")
    assert cfg.run.time_budget > 0
    budgeted = [s.name for s in STAGES if RunClock.train_budget(cfg, s) > 0]
    assert {"pretrain", "sft", "reward", "dpo", "ppo"} <= set(budgeted)
    # the budgets and the reference untimed work fit the run's budget on the reference machine
    untimed = sum(s.untimed_s for s in STAGES if s.enabled(cfg))
    assert sum(RunClock.train_budget(cfg, s) for s in STAGES if s.enabled(cfg)) + untimed < cfg.run.time_budget
