"""Bounds on every numeric CLI option, and usage errors as one line naming the option.

A bare int or float option takes any value, NaN and infinities included (and a range check
alone lets NaN through: every comparison with NaN is false). So the command tree is hardened
once, before it parses anything (`command_of`): every int and float option, in every command
and sub-command, gets a `Range` check that rejects non-finite values and values outside its
bounds, with no code in the command itself. How a command declares an option's bounds:

- `typer.Option(min=1, max=100)`: closed bounds;
- `typer.Option(callback=bounds(0, 1, min_open=True))`: open bounds (0 < x <= 1), or
  `callback=positive(1)` for that common case;
- neither: the default [0, DEFAULT_MAX].

tests/test_cli_options.py sweeps every numeric option of every command with -1, nan, inf,
1e300 and "abc", so an option added later is checked the day it is added.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, get_args

import typer

# Largest value of an option declared without a range: above any real count of parameters,
# tokens, steps or seconds, and far below where float arithmetic overflows.
DEFAULT_MAX = 1e18

# The click exception classes, found from typer's public BadParameter: typer >= 0.20 vendors
# click, older typer uses the click package, and both keep this hierarchy.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class Range:
    """An option's bounds, checked after typer has converted the value (as its callback)."""

    def __init__(
        self,
        min: float = 0,
        max: float = DEFAULT_MAX,
        *,
        min_open: bool = False,
        max_open: bool = False,
        then: Callable[..., Any] | None = None,
    ) -> None:
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open
        self.then = then  # the option's own callback, run after the check

    def describe(self) -> str:
        low = f"{self.min} <{'' if self.min_open else '='} x"
        return f"{low} <{'' if self.max_open else '='} {self.max}"

    def check(self, value: float) -> str | None:
        """Why `value` is out of range, or None."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value} is not a finite number"
        low_ok = value > self.min if self.min_open else value >= self.min
        high_ok = value < self.max if self.max_open else value <= self.max
        return None if low_ok and high_ok else f"{value} is not in the range {self.describe()}"

    def __call__(self, ctx: Any, param: Any, value: Any) -> Any:
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None and (why := self.check(v)) is not None:
                raise typer.BadParameter(why, ctx=ctx, param=param)
        return self.then(ctx, param, value) if self.then is not None else value


def bounds(
    min: float = 0, max: float = DEFAULT_MAX, *, min_open: bool = False, max_open: bool = False
) -> Callable[..., Any]:
    """An option callback declaring its range: `typer.Option(callback=bounds(0, 1, min_open=True))`."""
    declared = Range(min, max, min_open=min_open, max_open=max_open)

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        return declared(ctx, param, value)

    check.bounds = declared  # type: ignore[attr-defined]  # typer's wrapper copies it
    return check


def positive(max: float = DEFAULT_MAX) -> Callable[..., Any]:
    """The range 0 < x <= max, for counts and fractions where 0 means nothing."""
    return bounds(0, max, min_open=True)


def _numeric(param: Any) -> type | None:
    """int or float for a numeric option or argument (bools are not numbers here)."""
    descriptor = getattr(param, "type_descriptor", None)  # typer >= 0.20
    if descriptor is not None:
        kinds = {descriptor.annotation, *get_args(descriptor.annotation)}
    else:  # click types
        kinds = {getattr(param.type, "name", "")}
        kinds = {int} if kinds & {"integer", "integer range"} else {float} if kinds & {"float", "float range"} else set()
    if bool in kinds:
        return None
    return float if float in kinds else int if int in kinds else None


def _bounds(param: Any) -> tuple[Any, Any]:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is None and high is None:  # click keeps a declared range on the type
        kind = getattr(param, "type", None)
        low, high = getattr(kind, "min", None), getattr(kind, "max", None)
    return (0 if low is None else low), (DEFAULT_MAX if high is None else high)


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(sub-command path, command) for a command and every command below it."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


def numeric_params(command: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(sub-command path, parameter) of every int or float parameter in the tree."""
    for path, cmd in walk(command):
        for param in cmd.params:
            if _numeric(param) is not None:
                yield path, param


def command_of(app: typer.Typer) -> Any:
    """The click command of a typer app, every numeric option bounded and finite."""
    command = typer.main.get_command(app)
    for _, param in numeric_params(command):
        if getattr(param.callback, "bounds", None) is None:  # not declared with `bounds`
            param.callback = Range(*_bounds(param), then=param.callback)
    return command


def one_line(error: Exception) -> str:
    """A usage error as one line naming the option (click's own adds usage and a hint)."""
    param = getattr(error, "param", None)
    message = getattr(error, "message", str(error))
    if param is not None and getattr(param, "opts", None):
        names = [o for o in param.opts if o.startswith("-")] or [param.name.upper()]
        return " ".join(f"{'/'.join(names)}: {message}".split())
    return " ".join(error.format_message().split())  # type: ignore[attr-defined]


def invoke(command: Any, args: Sequence[str] | None = None) -> int:
    """Run `command` on `args` (default: sys.argv) without click's own error printing; usage
    errors propagate as `ClickException`. Returns the exit code."""
    result = command.main(args=list(args) if args is not None else None, standalone_mode=False)
    return result if isinstance(result, int) else 0
