"""Tools the assistant calls during generation: a safe calculator, and Python in the sandbox.

The model writes a call as <|python_start|>CODE<|python_end|>; the engine runs `run_tool(CODE)`
and feeds <|output_start|>RESULT<|output_end|> back (nanochat's scheme). The calculator parses
CODE with `ast` and evaluates only numbers, + - * / // % ** and unary signs (never `eval`), with
bounds on the expression's length, the exponent and the size of every intermediate result, so
no call can burn the CPU or memory ("9**9**9" is refused, not computed). Anything else is
Python, run only when the `python` tool is enabled, in `eval.sandbox.run_program`'s isolated
process with a short timeout. Errors come back as output text ("error: ..."), as a person at a
calculator would see them: the model reads them, generation never crashes on a bad call.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Collection

from chatforge.errors import ChatforgeError
from chatforge.eval.sandbox import run_program

CALCULATOR, PYTHON = "calculator", "python"
TOOLS = (CALCULATOR, PYTHON)
MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 256
MAX_RESULT_DIGITS = 60  # |value| < 10**60 at every step
MAX_OUTPUT_CHARS = 200  # what a call may feed back into the context
PYTHON_TIMEOUT_S = 5.0

_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
# Signs people (and the built-in word problems) write for the operators.
_SPELLINGS = {"×": "*", "÷": "/", "−": "-", "^": "**"}


class ToolError(ChatforgeError):
    """A tool call that cannot be run; the message is fed back to the model."""


def _bounded(value: float) -> float:
    """`value`, unless it is too large to write back (infinity included)."""
    if abs(value) >= 10**MAX_RESULT_DIGITS:
        raise ToolError(f"result has more than {MAX_RESULT_DIGITS} digits")
    return value


def _power(base: float, exp: float) -> float:
    """`base ** exp`, refused before computing when the result would be huge."""
    if abs(exp) > MAX_EXPONENT:
        raise ToolError(f"exponent {exp} is larger than {MAX_EXPONENT}")
    if base == 0 and exp < 0:
        raise ToolError("division by zero")
    if abs(base) > 1 and exp > 0 and exp * math.log10(abs(base)) >= MAX_RESULT_DIGITS:
        raise ToolError(f"result has more than {MAX_RESULT_DIGITS} digits")
    value = base**exp
    if isinstance(value, complex):
        raise ToolError("result is not a real number")
    return value


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _bounded(_power(left, right))
        if isinstance(node.op, ast.Div | ast.FloorDiv | ast.Mod) and right == 0:
            raise ToolError("division by zero")
        value = _BINARY[type(node.op)](left, right)
        if isinstance(node.op, ast.Div) and isinstance(left, int) and isinstance(right, int) \
                and left % right == 0:
            value = left // right  # 84 / 2 is 42, not 42.0
        return _bounded(value)
    raise ToolError(f"not arithmetic: {ast.unparse(node)[:40]!r}")


def calculate(expression: str) -> float:
    """The value of an arithmetic expression; ToolError for anything else or out of bounds."""
    text = expression.strip()
    for sign, py in _SPELLINGS.items():
        text = text.replace(sign, py)
    if not text:
        raise ToolError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"not arithmetic: {text[:40]!r}") from None
    except (ValueError, MemoryError, RecursionError) as exc:  # null bytes, absurd nesting
        raise ToolError(f"cannot parse: {exc}") from None
    try:
        return _eval(tree.body)
    except (OverflowError, RecursionError):
        raise ToolError("result too large") from None


def format_number(value: float) -> str:
    """How a result is written back: integers plainly, other values to 10 significant digits."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}"


def run_python(code: str) -> str:
    """stdout of `code` run in the sandbox (its error's last line when it fails)."""
    result = run_program(code, timeout_s=PYTHON_TIMEOUT_S, memory_mb=256, max_output_bytes=1 << 14)
    if result.status == "ok":
        return result.stdout.strip()
    last = (result.stderr.strip().splitlines() or [result.reason])[-1]
    return f"error: {last}"


def run_tool(code: str, tools: Collection[str]) -> str:
    """The output fed back for one call: the calculator's value, else Python's, else an error."""
    unknown = set(tools) - set(TOOLS)
    if unknown:
        raise ToolError(f"unknown tool(s) {', '.join(sorted(unknown))} (known: {', '.join(TOOLS)})")
    try:
        if CALCULATOR not in tools:
            raise ToolError("the calculator is off")
        out = format_number(calculate(code))
    except ToolError as exc:
        out = run_python(code) if PYTHON in tools else f"error: {exc}"
    return out[:MAX_OUTPUT_CHARS]
