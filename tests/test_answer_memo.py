"""Remembered answers: a lookup gives what generation gives, and anything that could change an
answer (weights, prompt, settings, seed) makes it generate again."""

from __future__ import annotations

import sqlite3

import pytest
import torch
from conftest import sharpened_gpt

from chatforge.answer_memo import AnswerMemo, remembered
from chatforge.engine import Engine, SamplingParams
from chatforge.errors import RunDirError
from chatforge.tokenizer.bpe import train_bpe

PROMPTS = [[5, 17, 3], [40, 41, 42, 43, 44], [7], [90, 91]]


@pytest.fixture()
def parts():
    tok = train_bpe(["plain ascii words only, and a few more words\n"] * 10, vocab_size=300)
    return sharpened_gpt(20, vocab_size=tok.vocab_size, n_layer=2, n_embd=64, n_head=4, n_kv_head=4, seq_len=64), tok


class _Counting(Engine):
    """An engine that counts the prompts it actually generates for."""

    generated = 0

    def _run(self, prompts, *args, **kwargs):
        _Counting.generated += len(prompts)
        return super()._run(prompts, *args, **kwargs)


def _fields(completions):
    return [(c.tokens, c.text, c.finish_reason, c.prompt_tokens, c.forced, c.parts) for c in completions]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_second_ask_is_a_lookup_with_the_same_answers(parts, tmp_path, temperature):
    model, tok = parts
    params = SamplingParams(max_new_tokens=8, temperature=temperature, seed=3, stop_ids=())
    fresh = Engine(model, tok).generate(PROMPTS, params)
    _Counting.generated = 0
    with remembered(tmp_path / "answers.db"):
        first = _Counting(model, tok).generate(PROMPTS, params)
        assert _Counting.generated == len(PROMPTS)
        again = _Counting(model, tok, batch_size=1).generate(PROMPTS, params)
        assert _Counting.generated == len(PROMPTS)  # nothing generated the second time
        # a superset: only the new prompt is generated, the others keep their answers
        more = _Counting(model, tok).generate([*PROMPTS, [11, 12]], params)
        assert _Counting.generated == len(PROMPTS) + 1
    assert _fields(first) == _fields(again) == _fields(fresh) == _fields(more[:-1])
    # another process later: the file keeps them
    with remembered(tmp_path / "answers.db"):
        assert _fields(_Counting(model, tok).generate(PROMPTS, params)) == _fields(fresh)
    assert _Counting.generated == len(PROMPTS) + 1


def test_what_could_change_an_answer_misses(parts, tmp_path):
    model, tok = parts
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=3, stop_ids=())
    with remembered(tmp_path / "answers.db"):
        _Counting(model, tok).generate(PROMPTS, params)
        _Counting.generated = 0
        _Counting(model, tok).generate(PROMPTS, SamplingParams(**{**params.__dict__, "seed": 4}))
        assert _Counting.generated == len(PROMPTS)  # another seed
        _Counting(model, tok).generate(PROMPTS[1:], params)
        assert _Counting.generated == 2 * len(PROMPTS) - 1  # sampled: each prompt's seed follows its index
        _Counting(model, tok).generate(PROMPTS, SamplingParams(**{**params.__dict__, "max_new_tokens": 9}))
        assert _Counting.generated == 3 * len(PROMPTS) - 1
        with torch.no_grad():
            model.lm_head.weight[0, 0] += 1.0  # weights changed in place: a new digest
        changed = _Counting(model, tok).generate(PROMPTS, params)
        assert _Counting.generated == 4 * len(PROMPTS) - 1
        assert _fields(changed) == _fields(Engine(model, tok).generate(PROMPTS, params))
        # streaming callers get every token as it is made, so they always generate
        _Counting(model, tok).generate(PROMPTS, params, on_text=lambda r, d: None)
        assert _Counting.generated == 5 * len(PROMPTS) - 1
    _Counting(model, tok).generate(PROMPTS, params)  # outside the block: no memo at all
    assert _Counting.generated == 6 * len(PROMPTS) - 1


def test_a_file_that_is_not_an_answer_store_is_a_one_line_error(tmp_path):
    bad = tmp_path / "answers.db"
    bad.write_bytes(b"this is not sqlite at all, not even close" * 10)
    with pytest.raises(RunDirError, match="not an answer store"):
        AnswerMemo(bad)
    good = tmp_path / "ok.db"
    AnswerMemo(good).put({"k": {"tokens": [1], "text": "a"}})
    assert AnswerMemo(good).get(["k", "missing"]) == {"k": {"tokens": [1], "text": "a"}}
    assert sqlite3.connect(good).execute("PRAGMA integrity_check").fetchone() == ("ok",)
