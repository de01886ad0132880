"""Config presets, overrides and the one-line errors for bad ones."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from chatforge.cli import app
from chatforge.config import available_presets, load_config
from chatforge.errors import ConfigError


def test_every_preset_loads():
    for name in available_presets():
        cfg = load_config(name)
        assert cfg.preset == name
    assert {"cpu", "smoke", "d12", "d20"} <= set(available_presets())


def test_overrides_are_typed():
    cfg = load_config("smoke", ["model.depth=3", "pretrain.train.lr=2e-3", "model.qk_norm=false",
                                "data.languages=en,tr,de", "pretrain.train.max_steps=1e3"])
    assert cfg.model.depth == 3 and cfg.pretrain.train.lr == 2e-3 and cfg.model.qk_norm is False
    assert cfg.data.languages == ["en", "tr", "de"] and cfg.pretrain.train.max_steps == 1000


def test_smoke_extends_cpu():
    assert load_config("smoke").run.name == "smoke"
    assert load_config("smoke").pretrain.train.optimizer == load_config("cpu").pretrain.train.optimizer


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("model.dept=3", "unknown key 'model.dept'"),
        ("modle.depth=3", "unknown key 'modle'"),
        ("model.depth=three", "model.depth='three' is not a valid integer"),
        ("model.qk_norm=maybe", "boolean"),
        ("pretrain.train.optimizer=sgd", "choose one of adamw, muon"),
        ("pretrain.train.lr=-1", "must be greater than 0"),
        ("pretrain.train.checkpoint_every=0", "pretrain.train.checkpoint_every=0: must be at least 1"),
        ("sft.train.eval_every=0", "sft.train.eval_every=0: must be at least 1"),
        ("pretrain.train.time_budget=-5", "must be at least 0"),
        ("pretrain.train.lr=nan", "must be a finite number"),
        ("corpus.heldout_fraction=1", "must be in [0, 1)"),
        ("model=3", "is a section"),
        ("depth", "expected key=value"),
        ("model.head_dim=48", "not a multiple"),
        ("model.fp32_width=200", "model width 200 is not a multiple"),
    ],
)
def test_bad_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config("cpu", [override])


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="choose one of .*cpu"):
        load_config("nope")


def test_toml_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\ndepthh = 2\n")
    with pytest.raises(ConfigError, match=r"bad.toml.*unknown key 'model.depthh'"):
        load_config(str(bad))


def test_cli_prints_one_line_and_exits_2(tmp_path):
    import sys

    from chatforge.cli import main

    argv = sys.argv
    sys.argv = ["chatforge", "run", "--run-dir", str(tmp_path), "model.depth=x"]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = argv
    assert exc.value.code == 2


def test_every_command_has_help():
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        assert runner.invoke(app, [name, "--help"]).exit_code == 0, name
        for sub in getattr(command, "commands", {}):
            assert runner.invoke(app, [name, sub, "--help"]).exit_code == 0, (name, sub)


def test_fp32_width_replaces_the_width_only_where_matmuls_run_in_fp32():
    """The cpu preset's rule: a CPU without fast bf16 trains the narrower model."""
    import torch

    from chatforge.model.gpt import GPTConfig
    from chatforge.train.pretrain import build_model

    cfg = load_config("cpu", ["model.fp32_width=192"])
    assert GPTConfig.from_model_config(cfg.model, 97).n_embd == 256
    assert GPTConfig.from_model_config(cfg.model, 97, fp32=True).n_embd == 192
    cfg = load_config("cpu", ["model.width=128"])  # a width set explicitly wins everywhere
    assert GPTConfig.from_model_config(cfg.model, 97, fp32=True).n_embd == 128
    assert load_config("smoke").model.fp32_width == load_config("d12").model.fp32_width == 0
    cpu = torch.device("cpu")
    assert build_model(load_config("cpu", ["model.fp32_width=192", "pretrain.train.precision=fp32"]), 97, cpu).cfg.n_embd == 192
    assert build_model(load_config("cpu", ["model.fp32_width=192", "pretrain.train.precision=bf16"]), 97, cpu).cfg.n_embd == 256
    assert build_model(load_config("cpu", ["model.fp32_width=0", "pretrain.train.precision=fp32"]), 97, cpu).cfg.n_embd == 256
