"""Tool use: the safe calculator, and the engine running a call and feeding its output back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chatforge.engine import Engine, SamplingParams
from chatforge.errors import ConfigError
from chatforge.model.gpt import GPTConfig
from chatforge.serve.chat_cli import ChatSession
from chatforge.tokenizer.bpe import train_bpe
from chatforge.tokenizer.chat import (
    ASSISTANT_END,
    OUTPUT_END,
    OUTPUT_START,
    PYTHON_END,
    PYTHON_START,
    render_conversation,
    render_prompt,
)
from chatforge.tools import ToolError, calculate, format_number, run_tool


@pytest.mark.parametrize("expr, value", [
    ("17 + 25", 42), ("17+25", 42), (" 3 * (4 - 1) ", 9), ("84 / 2", 42), ("7 / 2", 3.5),
    ("7 // 2", 3), ("-2 ** 2", -4), ("2 ^ 10", 1024), ("12 × 3", 36), ("90 ÷ 3", 30),
    ("10 % 4", 2), ("1.5 * 2", 3.0), ("2 ** -1", 0.5),
])
def test_calculator_evaluates_arithmetic(expr, value):
    assert calculate(expr) == value


@pytest.mark.parametrize("expr, why", [
    ("__import__('os').system('ls')", "not arithmetic"), ("open('/etc/passwd')", "not arithmetic"),
    ("x + 1", "not arithmetic"), ("(1).__class__", "not arithmetic"), ("[1, 2]", "not arithmetic"),
    ("'a' * 3", "not arithmetic"), ("True + 1", "not arithmetic"), ("1 if 1 else 2", "not arithmetic"),
    ("lambda: 1", "not arithmetic"), ("1; 2", "not arithmetic"), ("1 << 9999", "not arithmetic"),
    ("9 ** 9 ** 9", "exponent"), ("2 ** 100000", "exponent"), ("10 ** 200", "digits"),
    ("99999999999 ** 99", "digits"), ("1e308 * 10", "digits"), ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"), ("0 ** -1", "division by zero"), ("(-8) ** 0.5", "real"),
    ("1 + " * 100 + "1", "longer than"), ("", "empty"), ("1 +", "not arithmetic"),
])
def test_calculator_rejects_anything_but_bounded_arithmetic(expr, why):
    with pytest.raises(ToolError, match=why):
        calculate(expr)


def test_results_are_written_back_plainly():
    assert format_number(42) == "42" and format_number(3.0) == "3" and format_number(1 / 3) == "0.3333333333"
    assert run_tool("17 + 25", ["calculator"]) == "42"
    assert run_tool("import os", ["calculator"]).startswith("error: not arithmetic")
    with pytest.raises(ToolError, match="unknown tool"):
        run_tool("1", ["shell"])
    with pytest.raises(ConfigError, match="tools"):
        SamplingParams(tools=("shell",))


class _Reader(nn.Module):
    """A stand-in model that sees its whole input: it writes a tool call, then after the tool's
    <|output_end|> copies the output tokens it was fed, then ends its turn. Its reply thus shows
    exactly what the engine fed back."""

    def __init__(self, tok, call: str, seq_len: int = 128):
        super().__init__()
        self.tok = tok
        self.cfg = GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=8, n_head=1, n_kv_head=1, seq_len=seq_len)
        self.script = [tok.special_id(PYTHON_START), *tok.encode(call), tok.special_id(PYTHON_END)]
        self.dummy = nn.Parameter(torch.zeros(1))

    def new_cache(self, batch: int, max_len: int):
        self.history: list[list[int]] = [[] for _ in range(batch)]
        self.rows = list(range(batch))
        return _Cache(self)

    def _next(self, seen: list[int], prompt_len: int) -> int:
        sp = self.tok.special_id
        generated = seen[prompt_len:]
        if len(generated) < len(self.script):
            return self.script[len(generated)]
        if sp(OUTPUT_END) not in generated:  # the tool did not answer: end the turn
            return sp(ASSISTANT_END)
        start, end = generated.index(sp(OUTPUT_START)), generated.index(sp(OUTPUT_END))
        fed = generated[start + 1 : end]
        copied = generated[end + 1 :]
        return fed[len(copied)] if len(copied) < len(fed) else sp(ASSISTANT_END)

    def forward(self, idx, cache=None, key_valid=None, last_only=False):
        B, T = idx.shape
        if not any(self.history):
            self.prompt_len = T
        logits = torch.zeros(B, T, self.cfg.vocab_size)
        for b in range(B):
            h = self.history[self.rows[b]]
            h += idx[b].tolist()
            logits[b, -1, self._next(h, self.prompt_len)] = 1.0
        return logits


class _Cache:
    def __init__(self, model: _Reader):
        self.model = model

    def reorder(self, keep: torch.Tensor) -> None:
        self.model.rows = [self.model.rows[i] for i in keep.tolist()]


@pytest.fixture(scope="module")
def tok():
    return train_bpe(["What is 17 + 25? It is 42. 3 * 4 = 12\n"] * 20, vocab_size=300)


def test_engine_runs_a_tool_call_and_feeds_its_output_back(tok):
    model = _Reader(tok, "17 + 25")
    prompt = render_prompt(tok, [{"role": "user", "content": "What is 17 + 25?"}])
    calls = []
    comp = Engine(model, tok).generate([prompt], SamplingParams(max_new_tokens=40),
                                       on_tool=lambda row, code, out: calls.append((row, code, out)))[0]
    sp = tok.special_id
    output = [sp(OUTPUT_START), *tok.encode("42"), sp(OUTPUT_END)]
    assert calls == [(0, "17 + 25", "42")]
    assert comp.tokens == model.script + output + tok.encode("42") + [sp(ASSISTANT_END)]
    assert comp.forced == [False] * len(model.script) + [True] * len(output) + [False] * (len(tok.encode("42")) + 1)
    assert comp.text == "42" and comp.finish_reason == "stop"
    assert comp.parts == [{"type": "python", "text": "17 + 25"}, {"type": "python_output", "text": "42"},
                          {"type": "text", "text": "42"}]
    # The reply as history renders back to exactly the tokens that were generated.
    msgs = [{"role": "user", "content": "What is 17 + 25?"}, {"role": "assistant", "content": comp.content()}]
    assert render_conversation(tok, msgs)[0] == prompt + comp.tokens


def test_tool_calls_in_a_batch_do_not_disturb_other_rows(tok):
    model = _Reader(tok, "3 * 4")
    prompts = [render_prompt(tok, [{"role": "user", "content": q}]) for q in ("What is 3 * 4?", "3 * 4")]
    both = Engine(model, tok).generate(prompts, SamplingParams(max_new_tokens=40))
    alone = Engine(_Reader(tok, "3 * 4"), tok).generate(prompts[1:], SamplingParams(max_new_tokens=40))
    assert [c.text for c in both] == ["12", "12"] and both[1].tokens == alone[0].tokens


def test_without_tools_the_call_is_not_run(tok):
    model = _Reader(tok, "17 + 25")
    prompt = render_prompt(tok, [{"role": "user", "content": "What is 17 + 25?"}])
    comp = Engine(model, tok).generate([prompt], SamplingParams(max_new_tokens=40, tools=()))[0]
    assert comp.tokens == model.script + [tok.special_id(ASSISTANT_END)] and not any(comp.forced)
    assert comp.text == "" and comp.parts == [{"type": "python", "text": "17 + 25"}]



def test_chat_session_keeps_the_call_in_its_history(tok):
    session = ChatSession(Engine(_Reader(tok, "17 + 25"), tok), tok, SamplingParams(max_new_tokens=40))
    shown = []
    comp = session.reply("What is 17 + 25?", on_tool=lambda code, out: shown.append(f"{code} -> {out}"))
    assert shown == ["17 + 25 -> 42"] and comp.text == "42"
    assert session.history[-1] == {"role": "assistant", "content": comp.parts}
