"""The harness's shared-context log-likelihoods equal a brute-force full-sequence computation,
and the aggregates follow lm-eval's definitions."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import sharpened_gpt

from chatforge.engine import SamplingParams
from chatforge.eval.harness import (
    EvalModel,
    LoglikRequest,
    encode_pair,
    fit_prompt,
    generate,
    loglikelihoods,
    mean_stderr,
)
from chatforge.model.gpt import GPT
from chatforge.tokenizer.bpe import train_bpe

TEXT = ["The river runs to the sea. Question: how many apples? Answer: 12 apples.\n"] * 20


@pytest.fixture(scope="module")
def tok():
    return train_bpe(TEXT, vocab_size=320)


def tiny_model(vocab: int, seq_len: int = 48) -> GPT:
    return sharpened_gpt(8, vocab_size=vocab, n_layer=2, n_embd=32, n_head=4, n_kv_head=2, seq_len=seq_len)


def brute_force(model: GPT, context: list[int], cont: list[int], keep: int) -> tuple[float, bool]:
    """log p(cont | last `keep` context tokens) from one plain forward, token by token."""
    seq = context[-keep:] + cont
    assert len(seq) - 1 <= model.cfg.seq_len
    x = torch.tensor([seq[:-1]])
    with torch.no_grad():
        logp = model(x).log_softmax(-1)[0]
    n = len(cont)
    total, greedy = 0.0, True
    for k in range(n):
        pos = len(seq) - 1 - n + k
        total += float(logp[pos, seq[pos + 1]])
        greedy &= int(logp[pos].argmax()) == seq[pos + 1]
    return total, greedy


def test_shared_context_logliks_equal_brute_force_per_choice(tok):
    model = tiny_model(tok.vocab_size)
    rng = torch.Generator().manual_seed(1)
    requests = []
    for n_ctx in (3, 11, 30, 60):  # 60 > seq_len: the context is truncated on the left
        ctx = torch.randint(0, tok.vocab_size, (n_ctx,), generator=rng).tolist()
        conts = [torch.randint(0, tok.vocab_size, (k,), generator=rng).tolist() for k in (1, 4, 2, 7)]
        requests.append(LoglikRequest(ctx, conts))
    em = EvalModel(model, tok, batch_size=3)  # chunks of mixed lengths, one with a single item
    got = loglikelihoods(em, requests)
    for req, scores in zip(requests, got, strict=True):
        # An item too long for the model loses its oldest context tokens once, for all
        # choices: as many as the longest choice needs.
        keep = model.cfg.seq_len + 1 - max(len(c) for c in req.continuations)
        for cont, (ll, greedy) in zip(req.continuations, scores, strict=True):
            want, want_greedy = brute_force(model, req.context, cont, keep)
            assert ll == pytest.approx(want, abs=1e-4)
            assert greedy == want_greedy


def test_contexts_sharing_a_few_shot_prefix_compute_it_once_and_score_the_same(tok, monkeypatch):
    # Two "subjects": 20-token few-shot prefixes shared by their items, questions of varied
    # length after them (one equal to the prefix plus a single token), and one loose item.
    model = tiny_model(tok.vocab_size)
    rng = torch.Generator().manual_seed(2)
    ids = lambda n: torch.randint(0, tok.vocab_size, (n,), generator=rng).tolist()  # noqa: E731
    prefixes = [ids(20), ids(20)]
    requests = [LoglikRequest(prefixes[i % 2] + ids(1 + 3 * i), [ids(k) for k in (1, 3)]) for i in range(7)]
    requests.append(LoglikRequest(ids(9), [ids(2)]))
    fed: list[tuple[int, int]] = []  # (batch, tokens) of every forward over the contexts
    real_hidden = GPT.hidden_states

    def spy(self, idx, cache=None, key_valid=None):
        fed.append(tuple(idx.shape))
        return real_hidden(self, idx, cache, key_valid)

    monkeypatch.setattr(GPT, "hidden_states", spy)
    got = loglikelihoods(EvalModel(model, tok, batch_size=8), requests)
    monkeypatch.undo()
    for req, scores in zip(requests, got, strict=True):
        for cont, (ll, greedy) in zip(req.continuations, scores, strict=True):
            want, want_greedy = brute_force(model, req.context, cont, len(req.context))
            assert ll == pytest.approx(want, abs=1e-4)
            assert greedy == want_greedy
    # Each prefix ran once at batch 1 (its 20 tokens); its items fed only their own (< 20).
    assert sorted(shape for shape in fed if shape[1] >= 20) == [(1, 20), (1, 20)]


def test_greedy_flag_is_true_for_the_model_s_own_greedy_continuation(tok):
    model = tiny_model(tok.vocab_size)
    ctx = [tok.bos_id] + tok.encode("The river")
    x = list(ctx)
    for _ in range(5):
        with torch.no_grad():
            x.append(int(model(torch.tensor([x]))[0, -1].argmax()))
    cont = x[len(ctx):]
    other = [(cont[0] + 1) % tok.vocab_size] + cont[1:]
    (ll_own, g_own), (ll_other, g_other) = loglikelihoods(EvalModel(model, tok), [LoglikRequest(ctx, [cont, other])])[0]
    assert g_own and not g_other and ll_own > ll_other


def test_encode_pair_moves_trailing_spaces_onto_the_continuation(tok):
    ctx, cont = encode_pair(tok, "Answer: ", "12 apples")
    ctx2, cont2 = encode_pair(tok, "Answer:", " 12 apples")
    assert (ctx, cont) == (ctx2, cont2)
    assert tok.decode(ctx) == "Answer:" and tok.decode(cont) == " 12 apples"
    assert ctx + cont == tok.encode("Answer: 12 apples")


def test_mean_stderr_is_sample_std_over_sqrt_n():
    mean, se = mean_stderr([1, 0, 1, 1])
    assert mean == 0.75
    assert se == pytest.approx(math.sqrt((3 * 0.25**2 + 0.75**2) / 3 / 4))
    assert math.isnan(mean_stderr([1.0])[1])


def test_batched_generation_equals_one_by_one_and_keeps_order(tok):
    model = tiny_model(tok.vocab_size)
    em = EvalModel(model, tok, batch_size=2)
    prompts = [[tok.bos_id] + tok.encode(t) for t in ("The river", "Question: how many", "Answer", "sea")]
    params = SamplingParams(max_new_tokens=6)
    batched = [c.tokens for c in generate(em, prompts, params)]
    alone = [generate(EvalModel(model, tok, batch_size=1), [p], params)[0].tokens for p in prompts]
    assert batched == alone


def test_fit_prompt_keeps_bos_and_the_newest_tokens():
    assert fit_prompt([0, 1, 2, 3, 4, 5], room=2, seq_len=5) == [0, 4, 5]
    assert fit_prompt([0, 1], room=2, seq_len=5) == [0, 1]
