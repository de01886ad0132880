"""Every numeric option of every command rejects out-of-range, NaN and non-numbers up front.

The sweep walks the typer app itself, so a command or option added later is covered with no
change here (declare its range as chatforge.cli_checks describes).
"""

from __future__ import annotations

import pytest

from chatforge import cli, cli_checks

BAD_VALUES = ["-1", "nan", "inf", "-inf", "1e300", "abc"]


def _numeric_options() -> list[tuple[tuple[str, ...], str]]:
    command = cli_checks.command_of(cli.app)
    found = []
    for path, param in cli_checks.numeric_params(command):
        flags = [o for o in param.opts if o.startswith("--")]
        found.append((path, flags[0] if flags else param.name))
    return found


OPTIONS = _numeric_options()


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_the_sweep_finds_the_numeric_options_of_every_command():
    commands = {path for path, _ in OPTIONS}
    assert {("chat",), ("cost",), ("data",), ("tokenizer", "train")} <= commands
    assert (("chat",), "--top-p") in OPTIONS and (("cost",), "--params") in OPTIONS


@pytest.mark.parametrize(("path", "option"), OPTIONS, ids=[" ".join((*p, o)) for p, o in OPTIONS])
def test_every_numeric_option_rejects_bad_values_in_one_line(path, option, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for value in BAD_VALUES:
        args = [*path, option, value] if option.startswith("-") else [*path, value]
        code, out, err = run_cli(args, capsys)
        assert code == 2, (args, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and option in lines[0], (args, err)
        assert out == ""
        assert list(tmp_path.iterdir()) == [], f"{args} started work"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["chat", "x", "--max-tokens", "0"], "--max-tokens"),
        (["chat", "x", "--top-p", "0"], "--top-p"),
        (["chat", "x", "--top-p", "2"], "--top-p"),
        (["chat", "x", "--temperature", "-1"], "--temperature"),
        (["cost", "--price", "-1"], "--price"),
        (["cost", "--mfu", "0"], "--mfu"),
        (["cost", "--gpus", "0"], "--gpus"),
    ],
)
def test_declared_ranges_are_enforced(args, named, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(args, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and named in err


def test_valid_values_still_pass(capsys):
    code, out, _ = run_cli(["cost", "--params", "1e9", "--mfu", "0.4", "--gpus", "8", "--json"], capsys)
    assert code == 0 and '"params"' in out


def test_usage_errors_are_one_line(capsys):
    code, _, err = run_cli(["cost", "--no-such-option", "1"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--no-such-option" in err


def test_help_still_prints(capsys):
    code, out, _ = run_cli(["cost", "--help"], capsys)
    assert code == 0 and "--params" in out
