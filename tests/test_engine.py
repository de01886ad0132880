"""The generation engine against the naive reference: cache = no cache, batched = one by one."""

from __future__ import annotations

import pytest
import torch
from conftest import sharpened_gpt
from torch import nn

from chatforge.engine import ContextLengthError, Engine, SamplingParams, _TextState
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.tokenizer.bpe import train_bpe

PROMPTS = [[5, 17, 3], [40, 41, 42, 43, 44, 45, 46, 47, 48], [7], [90, 91, 92, 93, 94]]


def _model(vocab: int = 300, seq_len: int = 64, n_kv_head: int = 2) -> GPT:
    return sharpened_gpt(20, vocab_size=vocab, n_layer=2, n_embd=64, n_head=4, n_kv_head=n_kv_head, seq_len=seq_len)


@pytest.fixture(scope="module")
def model() -> GPT:
    return _model()


def test_kv_cache_greedy_equals_no_cache_reference(model):
    engine = Engine(model)
    params = SamplingParams(max_new_tokens=24, stop_ids=())
    for prompt in PROMPTS:
        got = engine.generate([prompt], params)[0].tokens
        reference = model.generate(prompt, 24, temperature=0.0, use_cache=False)
        assert got == reference
        assert len(set(got)) > 3  # a non-trivial sequence, not one repeated token


def test_batched_left_padded_equals_one_by_one(model):
    engine = Engine(model)
    params = SamplingParams(max_new_tokens=24, stop_ids=())
    batched = engine.generate(PROMPTS, params)
    for prompt, comp in zip(PROMPTS, batched, strict=True):
        assert comp.tokens == engine.generate([prompt], params)[0].tokens
        assert comp.prompt_tokens == len(prompt)


def test_rows_that_stop_early_leave_the_others_unchanged(model):
    engine = Engine(model)
    free = engine.generate(PROMPTS, SamplingParams(max_new_tokens=20, stop_ids=()))
    stop = free[0].tokens[3]  # row 0 stops at its 4th token
    stopped = engine.generate(PROMPTS, SamplingParams(max_new_tokens=20, stop_ids=(stop,)))
    assert stopped[0].tokens == free[0].tokens[: free[0].tokens.index(stop) + 1]
    assert stopped[0].finish_reason == "stop"
    for f, s in zip(free[1:], stopped[1:], strict=True):
        cut = f.tokens.index(stop) + 1 if stop in f.tokens else len(f.tokens)
        assert s.tokens == f.tokens[:cut]


def test_sampling_is_seeded_and_independent_of_batch_mates(model):
    engine = Engine(model)
    params = SamplingParams(max_new_tokens=16, temperature=1.0, top_k=50, top_p=0.9, seed=7, stop_ids=())
    a = [c.tokens for c in engine.generate(PROMPTS, params)]
    assert a == [c.tokens for c in engine.generate(PROMPTS, params)]
    for r, prompt in enumerate(PROMPTS):
        alone = SamplingParams(**{**params.__dict__, "seed": 7 + r})
        assert engine.generate([prompt], alone)[0].tokens == a[r]
    other = SamplingParams(**{**params.__dict__, "seed": 8})
    assert [c.tokens for c in engine.generate(PROMPTS, other)] != a


def test_batches_of_any_size_give_the_same_completions_in_the_prompts_order(model):
    """The engine cuts the prompts into length-sorted batches; neither the cut nor the sort
    may show in what each prompt gets, sampled or greedy, nor in the rows callbacks name."""
    prompts = PROMPTS + [[3, 1, 4, 1, 5, 9, 2, 6], [8, 8]]
    for temperature in (0.0, 1.0):
        params = SamplingParams(max_new_tokens=12, temperature=temperature, seed=3, stop_ids=())
        whole = [c.tokens for c in Engine(model, batch_size=64).generate(prompts, params)]
        for size in (1, 2, 4):
            got = Engine(model, batch_size=size).generate(prompts, params)
            assert [c.tokens for c in got] == whole
            assert [c.prompt_tokens for c in got] == [len(p) for p in prompts]
    tok = train_bpe(["plain ascii words only\n"] * 10, vocab_size=300)
    texted = _model(vocab=tok.vocab_size)
    params = SamplingParams(max_new_tokens=6, stop_ids=())
    streamed: dict[int, str] = {}

    def on_text(row: int, delta: str) -> None:
        streamed[row] = streamed.get(row, "") + delta

    got = Engine(texted, tok, batch_size=2).generate(prompts, params, on_text=on_text)
    assert [c.text for c in got] == [streamed.get(r, "") for r in range(len(prompts))]
    assert [c.text for c in got] == Engine(texted, tok).generate_text(prompts, params)


def test_a_bad_prompt_fails_the_call_before_anything_is_generated(model):
    seen: list[int] = []
    with pytest.raises(ContextLengthError, match="prompt 2 has 64 tokens"):
        Engine(model, batch_size=1).generate([[1, 2], [3], [1] * 64], SamplingParams(max_new_tokens=4),
                                             on_text=lambda r, d: seen.append(r))
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        Engine(model, batch_size=1).generate([[1, 2], []], SamplingParams(max_new_tokens=4))
    assert not seen
    with pytest.raises(ValueError, match="batch_size=0"):
        Engine(model, batch_size=0)


def test_gqa_and_mha_models_both_match_reference():
    for kv in (1, 4):
        m = _model(n_kv_head=kv)
        got = Engine(m).generate([PROMPTS[1]], SamplingParams(max_new_tokens=12, stop_ids=()))[0].tokens
        assert got == m.generate(PROMPTS[1], 12, temperature=0.0, use_cache=False)


def test_length_and_context_limits(model):
    engine = Engine(model)
    comp = engine.generate([[1, 2]], SamplingParams(max_new_tokens=5, stop_ids=()))[0]
    assert (len(comp.tokens), comp.finish_reason) == (5, "length")
    near = engine.generate([[1] * 60, [2, 3]], SamplingParams(max_new_tokens=10, stop_ids=()))
    assert (len(near[0].tokens), near[0].finish_reason) == (4, "context")  # 60 + 4 = seq_len 64
    assert (len(near[1].tokens), near[1].finish_reason) == (10, "length")
    with pytest.raises(ContextLengthError, match="context length is 64"):
        engine.generate([[1] * 64], SamplingParams(max_new_tokens=5))


def test_text_state_streams_whole_characters_and_holds_back_stop_prefixes():
    text = "ağaç 🙂 İyi STOP sonra"
    state = _TextState(["STOP"])
    shown, hit = "", False
    for b in text.encode():
        delta, hit = state.feed(bytes([b]))
        assert "\ufffd" not in delta
        assert not delta.endswith("S")  # a possible start of the stop string is held back
        shown += delta
        if hit:
            break
    assert hit and shown == "ağaç 🙂 İyi " and state.text == shown
    # With several stop strings the longest possible prefix of any of them is held back.
    state = _TextState(["xyz", "ab"])
    assert state.feed(b"hello xy") == ("hello ", False)
    assert state.feed(b"a") == ("xy", False)  # "xya" cannot start "xyz"; "a" may start "ab"
    assert state.feed(b"b") == ("", True) and state.text == "hello xy"


class _Scripted(nn.Module):
    """A stand-in model that emits a fixed token script, to drive the engine's text path."""

    def __init__(self, script: list[int], vocab: int, seq_len: int = 128):
        super().__init__()
        self.cfg = GPTConfig(vocab_size=vocab, n_layer=1, n_embd=8, n_head=1, n_kv_head=1, seq_len=seq_len)
        self.script, self.vocab = script, vocab
        self.dummy = nn.Parameter(torch.zeros(1))

    def new_cache(self, batch: int, max_len: int):
        return GPT(self.cfg).new_cache(batch, max_len)

    def forward(self, idx, cache=None, key_valid=None, last_only=False):
        B, T = idx.shape
        step = 0 if cache.length == 0 else cache.length - self.prompt_len + 1
        if cache.length == 0:
            self.prompt_len = T
        cache.length += T
        logits = torch.zeros(B, T, self.vocab)
        logits[:, -1, self.script[min(step, len(self.script) - 1)]] = 1.0
        return logits


def test_streaming_decodes_multibyte_characters_split_across_tokens():
    tok = train_bpe(["plain ascii words only\n"] * 10, vocab_size=300)
    byte_id = {tok.decode_bytes([i]): i for i in range(tok.vocab_size)}
    text = "çay 🙂 İyi"
    script = [byte_id[bytes([b])] for b in text.encode()] + [tok.special_id("<|assistant_end|>")]
    engine = Engine(_Scripted(script, tok.vocab_size), tok)
    deltas = list(engine.stream([tok.bos_id], SamplingParams(max_new_tokens=64)))
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)
    assert len(deltas) == len(text)  # one delta per completed character
    comp = engine.generate([[tok.bos_id]], SamplingParams(max_new_tokens=64, stop=("🙂",)))[0]
    assert comp.text == "çay " and comp.finish_reason == "stop"
    comp = engine.generate([[tok.bos_id]], SamplingParams(max_new_tokens=64))[0]
    assert comp.text == text and comp.tokens == script and comp.finish_reason == "stop"


def test_logprobs_match_a_full_forward_pass(model):
    engine = Engine(model)
    for temperature in (0.0, 0.7):
        params = SamplingParams(max_new_tokens=10, temperature=temperature, seed=1, stop_ids=(), logprobs=True)
        comps = engine.generate(PROMPTS[:2], params)
        for prompt, comp in zip(PROMPTS[:2], comps, strict=True):
            full = torch.tensor([prompt + comp.tokens])
            with torch.no_grad():
                logits = model(full)[0, len(prompt) - 1 : -1]
            if temperature > 0:
                logits = logits / temperature
            expected = logits.log_softmax(-1).gather(1, torch.tensor(comp.tokens)[:, None])[:, 0]
            assert torch.allclose(torch.tensor(comp.logprobs), expected, atol=1e-4)
