"""Benchmark tasks: lm-eval's GSM8K filters on tricky answers, both MMLU layouts, MMLU and
TruthfulQA scores against log-likelihoods computed by brute force, the scoreboard merge."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
import torch

from chatforge.eval import stage
from chatforge.eval.harness import EvalModel
from chatforge.eval.tasks import code, gsm8k, mmlu, truthfulqa
from chatforge.tokenizer.bpe import train_bpe
from tests.conftest import shared_file, sharpened_gpt

GOLD = "She pays 2 * 3 = <<2*3=6>>6 dollars.\n#### 1,234"

# reply -> (strict extraction, flexible extraction, strict correct, flexible correct) vs GOLD
TABLE = [
    ("So she pays 6 + 1228.\n#### 1234", "1234", "1234", True, True),
    ("#### 1,234", "1,234", "1,234", True, True),
    ("The answer is $1,234.", "[invalid]", "$1,234.", False, True),
    ("#### 1234.\n\nQuestion: next one has 7 apples", "1234.", "7", True, False),
    ("It is 12 then 1234", "[invalid]", "1234", False, True),
    ("no number here", "[invalid]", "[invalid]", False, False),
    ("#### -5 but really 1234", "-5", "1234", False, True),
    ("answer: 1234.00", "[invalid]", "1234.00", False, False),
    ("7", "[invalid]", "7", False, False),
    ("####1234", "[invalid]", "1234", False, True),
]


@pytest.mark.parametrize(("reply", "strict", "flexible", "strict_ok", "flexible_ok"), TABLE)
def test_gsm8k_strict_and_flexible_extraction_match_lm_eval(reply, strict, flexible, strict_ok, flexible_ok):
    assert gsm8k.strict_answer(reply) == strict
    assert gsm8k.flexible_answer(reply) == flexible
    assert gsm8k.matches(strict, GOLD) is strict_ok
    assert gsm8k.matches(flexible, GOLD) is flexible_ok


def test_mmlu_reads_the_header_layout_and_the_headerless_letter_layout_alike(tmp_path):
    rows = [["What is 1+1?", "1", "2", "3", "4"], ['Pick "None", the literal', "None", "x", "y", "z"]]
    hf, orig = tmp_path / "hf", tmp_path / "orig"
    for root, answers, header in ((hf, ["1", "0"], True), (orig, ["B", "A"], False)):
        (root / "test").mkdir(parents=True)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if header:
            writer.writerow(mmlu.HEADER)
        writer.writerows([*r, a] for r, a in zip(rows, answers, strict=True))
        writer.writerow(["broken", "row"])
        (root / "test" / "toy_subject_test.csv").write_text(buf.getvalue())
    a, b = mmlu.load(hf, "test"), mmlu.load(orig, "test")
    assert [(i.question, i.choices, i.answer, i.doc_id) for i in a.by_subject["toy_subject"]] == \
           [(i.question, i.choices, i.answer, i.doc_id) for i in b.by_subject["toy_subject"]]
    assert a.by_subject["toy_subject"][1].choices[0] == "None"  # not a missing value
    assert a.skipped["bad_row"] == b.skipped["bad_row"] == 1


def test_mmlu_reads_the_shared_copy():
    root = shared_file("mmlu")
    test = mmlu.load(root, "test")
    assert len(test.by_subject) == 57 and all(s in mmlu.CATEGORY for s in test.by_subject)
    assert sum(len(v) for v in mmlu.load(root, "dev").by_subject.values()) == 285


@pytest.fixture(scope="module")
def em():
    tok = train_bpe(["Answer: A B C D. Q: true or false? The river is long.\n"] * 10, vocab_size=300)
    model = sharpened_gpt(10, seed=3, vocab_size=tok.vocab_size, n_layer=1, n_embd=32, n_head=2, n_kv_head=2,
                          seq_len=1024)
    return EvalModel(model, tok, batch_size=2)


def _ll(em: EvalModel, text: str, cont: str) -> float:
    """Brute force: score ids(text + cont) after ids(text), one plain forward pass."""
    ctx = [em.tok.bos_id] + em.tok.encode(text)
    whole = [em.tok.bos_id] + em.tok.encode(text + cont)
    with torch.no_grad():
        logp = em.model(torch.tensor([whole[:-1]])).log_softmax(-1)[0]
    return sum(float(logp[i - 1, whole[i]]) for i in range(len(ctx), len(whole)))


def test_mmlu_5_shot_prediction_is_the_argmax_of_brute_force_logliks(em):
    split = mmlu.Split()
    for i in range(8):
        split.by_subject["anatomy" if i % 2 else "astronomy"].append(
            mmlu.Item("anatomy" if i % 2 else "astronomy", i // 2, f"Question {i}?", ["w", "x", "y", "z"], i % 4))
    result = mmlu.score(em, split, split, shots=2)
    for row in result.rows:
        subject = row["task"].split("/")[1]
        item = split.by_subject[subject][row["doc_id"]]
        shots = split.by_subject[subject][:2]
        text = mmlu.description(subject) + "".join(f"{mmlu.doc_text(s)} {mmlu.LETTERS[s.answer]}\n\n" for s in shots)
        text += mmlu.doc_text(item)
        want = [_ll(em, text, f" {L}") for L in mmlu.LETTERS]
        assert row["loglik"] == pytest.approx(want, abs=1e-4)
        assert row["pred"] == mmlu.LETTERS[max(range(4), key=lambda k: want[k])]
    accs = [r["correct"] for r in result.rows]
    assert result.metrics["acc"] == sum(accs) / len(accs)
    assert result.metrics["acc/category/stem"] == result.metrics["acc"]  # both subjects are stem


def test_truthfulqa_mc1_and_mc2_from_brute_force_logliks(em, tmp_path):
    path = tmp_path / "mc_task.json"
    path.write_text(json.dumps([{"question": "Is the river long?",
                                 "mc1_targets": {"Yes, it is long.": 1, "No.": 0, "It is a lake.": 0},
                                 "mc2_targets": {"Yes, it is long.": 1, "It is long.": 1, "No.": 0}}]))
    result = truthfulqa.score(em, truthfulqa.read(path))
    text = f"{truthfulqa.PRIMER}\n\nQ: Is the river long?\nA:"
    mc1 = [_ll(em, text, f" {c}") for c in ("Yes, it is long.", "No.", "It is a lake.")]
    mc2 = [math.exp(_ll(em, text, f" {c}")) for c in ("Yes, it is long.", "It is long.", "No.")]
    assert result.metrics["mc1"] == float(max(range(3), key=lambda k: mc1[k]) == 0)
    assert result.metrics["mc2"] == pytest.approx((mc2[0] + mc2[1]) / sum(mc2), rel=1e-4)


def test_truthfulqa_reads_the_shared_mc_task_json():
    qs = truthfulqa.read(shared_file("truthfulqa", "mc_task.json"))
    assert len(qs.items) == 790 and all(it.mc1[1][0] == 1 for it in qs.items)


def test_chat_code_reply_becomes_the_function_body():
    reply = "Here is the function:\n\n```python\nTABLE = {}\n\ndef f(x: int) -> int:\n    \"\"\"Doc.\"\"\"\n    if x:\n\n        return x + 1\n    return 0\n\nprint(f(1))\n```\n"
    body = code.function_body(reply, "f")
    assert body == '    """Doc."""\n    if x:\n\n        return x + 1\n    return 0\n\n'
    assert code.function_body("no code", "f") == ""


def test_scoreboard_merges_keys_of_other_stages(tmp_path):
    (tmp_path / "scoreboard.json").write_text(json.dumps({"sft": {"rm_score": 1.5, "qa_exact_match": 0.1}}))
    board = stage.update_scoreboard(tmp_path, {"sft": {"qa_exact_match": 0.4}, "base": {"qa_exact_match": 0.0}})
    assert board == {"sft": {"rm_score": 1.5, "qa_exact_match": 0.4}, "base": {"qa_exact_match": 0.0}}
    (tmp_path / "sft.json").write_text(json.dumps({"samples": ["kept"]}))
    stage.write_results(tmp_path, "sft", {})
    assert json.loads((tmp_path / "sft.json").read_text()) == {"samples": ["kept"]}


def test_refusal_sets_are_cut_to_the_limit_in_turns_over_language_and_category():
    """The built-in files list English first: their first rows alone would be English."""
    rows = [{"prompt": f"{lang}{cat}{i}", "lang": lang, "category": cat}
            for lang in ("en", "tr") for cat in ("kill", "hack") for i in range(3)]
    got = stage._spread(rows, 6)
    assert [(r["lang"], r["category"]) for r in got[:4]] == [("en", "kill"), ("en", "hack"), ("tr", "kill"), ("tr", "hack")]
    assert [r["prompt"] for r in got[4:]] == ["enkill1", "enhack1"]
    assert stage._spread(rows, None) == rows == stage._spread(rows, 12)
