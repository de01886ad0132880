"""Batched generation with a KV cache: the one place chatforge generates text.

Chat, evaluation, RLHF rollouts and the server all call `Engine`. The prompts are sorted by
length and cut into batches of at most `batch_size` rows, so a short prompt is not padded to a
long one's length and the cache stays small; within a batch they are left-padded, one forward
pass over the prompts fills the cache (prefill), then each step feeds one token per row
(decode). Rows stop on their own (a stop token, a stop string, max_new_tokens or the model's
context length) and finished rows leave the batch, so the rest keep decoding at the smaller
batch size.

Determinism: prompt r samples with its own generator seeded with `seed + r`, so its sample
does not depend on what else shares the batch or on the batch size (generating that prompt
alone with seed + r gives the same tokens); temperature 0 is greedy. The test suite
pins KV-cache generation to no-cache generation and batched to one-by-one.

Tools (nanochat's scheme, see `chatforge.tools`): when a row emits <|python_start|>CODE
<|python_end|>, the engine runs CODE with the enabled tools and then feeds that row
<|output_start|>RESULT<|output_end|> as forced tokens (fed, not sampled; one per decode step,
so the batch stays in lock-step) before it samples again. Chat, evaluation and the server thus
all get the same tool use. A Completion's `text` is the visible reply (its text parts); `parts`
keeps the calls and outputs, in the chat template's part format, for the conversation history.
"""

from __future__ import annotations

import codecs
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch

from chatforge.answer_memo import active_memo
from chatforge.errors import ChatforgeError, ConfigError
from chatforge.model.gpt import GPT, sample_next
from chatforge.tokenizer.bpe import Tokenizer
from chatforge.tokenizer.chat import (
    OUTPUT_END,
    OUTPUT_START,
    PYTHON_END,
    PYTHON_START,
    stop_token_ids,
)
from chatforge.tools import CALCULATOR, TOOLS, run_tool

# The share of a batch's rows that must have finished before the cache drops them (see _run).
COMPACT_AT = 0.25


def length_batches(indices: Iterable[int], length: Callable[[int], int], batch_size: int) -> Iterator[list[int]]:
    """`indices` sorted by `length(i)` and cut into batches of at most `batch_size`: a batch of
    similar lengths pads little."""
    order = sorted(indices, key=length)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


class ContextLengthError(ChatforgeError):
    """A prompt leaves no room for a reply within the model's context length."""


@dataclass
class SamplingParams:
    """How to sample. `stop_ids=None` means the tokenizer's end-of-turn and end-of-text."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    stop_ids: tuple[int, ...] | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False  # record log p(token) of each generated token (RLHF rollouts)
    # Tools run on a call (see chatforge.tools); () lets the model write the output itself.
    tools: tuple[str, ...] = (CALCULATOR,)

    def __post_init__(self) -> None:
        """One check for every caller (chat, server, evaluation): a bad value is a one-line
        error naming it here, not a NaN probability or an empty reply deep in sampling."""
        checks = (
            ("max_new_tokens", self.max_new_tokens, self.max_new_tokens >= 1, "an integer >= 1"),
            ("temperature", self.temperature, 0 <= self.temperature < math.inf, "a finite number >= 0"),
            ("top_k", self.top_k, self.top_k >= 0, "an integer >= 0 (0 = all tokens)"),
            ("top_p", self.top_p, 0 < self.top_p <= 1, "in (0, 1]"),
        )
        for name, value, ok, want in checks:
            if not ok:  # NaN fails every comparison, so it lands here too
                raise ConfigError(f"sampling: {name}={value!r} must be {want}")
        unknown = sorted(set(self.tools) - set(TOOLS))
        if unknown:
            raise ConfigError(f"sampling: tools={unknown!r} unknown (choose from {', '.join(TOOLS)})")


@dataclass
class Completion:
    """One row's result. `tokens` include the stop token when one ended the row; `text`
    never includes a stop token or stop string."""

    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""  # stop | length | context
    prompt_tokens: int = 0
    # With SamplingParams.logprobs: log-probability of each token under the model's
    # distribution at the sampling temperature (unscaled when greedy), before top-k/top-p;
    # 0.0 for forced tool-output tokens.
    logprobs: list[float] = field(default_factory=list)
    # Per token: True where the engine forced it (a tool's output), so RLHF can skip it.
    forced: list[bool] = field(default_factory=list)
    # The reply in the chat template's part format; text parts joined equal `text`.
    parts: list[dict[str, str]] = field(default_factory=list)

    def content(self) -> str | list[dict[str, str]]:
        """The reply as an assistant message's content: plain text unless it used a tool."""
        if any(p["type"] != "text" for p in self.parts):
            return [dict(p) for p in self.parts]
        return self.text


class _ToolState:
    """One row's tool segments: the call or output being written, and those finished."""

    def __init__(self) -> None:
        self.kind = ""  # "python" or "python_output" while inside a segment
        self.tokens: list[int] = []
        self.done: list[tuple[int, str, list[int]]] = []  # (text offset, kind, tokens)
        self.offset = 0

    def open(self, kind: str, offset: int) -> None:
        self.kind, self.tokens, self.offset = kind, [], offset

    def close(self) -> list[int]:
        self.done.append((self.offset, self.kind, self.tokens))
        tokens, self.kind = self.tokens, ""
        return tokens

    def parts(self, text: str, tok: Tokenizer) -> list[dict[str, str]]:
        if self.kind:  # the row ended inside a segment: keep what was written
            self.close()
        out, pos = [], 0
        for offset, kind, tokens in self.done:
            offset = min(offset, len(text))
            if offset > pos:
                out.append({"type": "text", "text": text[pos:offset]})
                pos = offset
            out.append({"type": kind, "text": tok.decode(tokens)})
        if pos < len(text) or not out:
            out.append({"type": "text", "text": text[pos:]})
        return out


class _TextState:
    """Incremental UTF-8 decoding of one row, holding back a possible stop-string prefix."""

    def __init__(self, stop: Sequence[str]):
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stop = [s for s in stop if s]
        self.text = ""
        self.emitted = 0

    def feed(self, data: bytes) -> tuple[str, bool]:
        """Add a token's bytes; return (text safe to show now, whether a stop string appeared)."""
        self.text += self.decoder.decode(data)
        return self._release(final=False)

    def finish(self) -> str:
        """Flush at the end of the row (an incomplete UTF-8 tail becomes U+FFFD)."""
        self.text += self.decoder.decode(b"", final=True)
        return self._release(final=True)[0]

    def _release(self, final: bool) -> tuple[str, bool]:
        hits = [i for i in (self.text.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            return self._take(len(self.text)), True
        hold = 0 if final else self._held_back()
        return self._take(len(self.text) - hold), False

    def _held_back(self) -> int:
        """Length of the longest tail of the text that could begin a stop string."""
        hold = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(self.text)), hold, -1):
                if self.text.endswith(s[:k]):
                    hold = k
                    break
        return hold

    def _take(self, upto: int) -> str:
        upto = max(upto, self.emitted)
        delta = self.text[self.emitted : upto]
        self.emitted = upto
        return delta


class Engine:
    """Generate from a GPT; `tokenizer` is needed for text, streaming and stop strings.
    `batch_size` bounds the rows decoded together: more amortises each step's fixed cost,
    fewer keeps the rows' lengths (so their padding and cache) alike. The preference stage's
    3,360 answers took 41.7 s at 128, 52.0 s at 64 and 122.9 s in one batch (2-core CPU,
    bench/bench_batching.py)."""

    def __init__(self, model: GPT, tokenizer: Tokenizer | None = None, batch_size: int = 128):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be at least 1")
        self.model = model
        self.tok = tokenizer
        self.batch_size = batch_size

    @property
    def context_length(self) -> int:
        return self.model.cfg.seq_len

    def _stop_ids(self, params: SamplingParams) -> set[int]:
        if params.stop_ids is not None:
            return set(params.stop_ids)
        if self.tok is None:
            return set()
        return set(stop_token_ids(self.tok))

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams | None = None,
        on_text: Callable[[int, str], None] | None = None,
        on_tool: Callable[[int, str, str], None] | None = None,
    ) -> list[Completion]:
        """Complete every prompt (results in the prompts' order); `on_text(row, delta)` receives
        text as it is generated and `on_tool(row, code, output)` each tool call the engine ran,
        `row` being the prompt's index."""
        params = params or SamplingParams()
        self._check(prompts, params)
        results: list[Completion | None] = [None] * len(prompts)
        memo = active_memo() if on_text is None and on_tool is None else None
        keys: list[str] = []
        if memo is not None:  # inside chatforge.answer_memo.remembered: look the answers up first
            keys = memo.keys(self.model, self.tok, prompts, params, self._stop_ids(params))
            for i, found in enumerate(map(memo.get(keys).get, keys)):
                if found is not None:
                    results[i] = Completion(**found)
        todo = [i for i, c in enumerate(results) if c is None]
        for rows in length_batches(todo, lambda i: len(prompts[i]), self.batch_size):
            done: list[Completion] = []
            for row, delta in self._run([prompts[r] for r in rows], params, done, on_tool, rows):
                if on_text is not None:
                    on_text(row, delta)
            for r, completion in zip(rows, done, strict=True):
                results[r] = completion
            if memo is not None:
                memo.put({keys[r]: asdict(c) for r, c in zip(rows, done, strict=True)})
        return [c for c in results if c is not None]

    def stream(self, prompt: Sequence[int], params: SamplingParams | None = None) -> Iterator[str]:
        """Text deltas of one prompt's completion, token by token (whole UTF-8 characters)."""
        params = params or SamplingParams()
        self._check([prompt], params)
        for _, delta in self._run([prompt], params, [], None, [0]):
            yield delta

    def generate_text(self, prompts: Sequence[Sequence[int]], params: SamplingParams | None = None) -> list[str]:
        return [c.text for c in self.generate(prompts, params)]

    def _check(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> None:
        """Every prompt is checked before any is generated: a bad one fails the call at once."""
        if params.stop and self.tok is None:
            raise ValueError("stop strings need a tokenizer")
        ctx = self.context_length
        for i, p in enumerate(prompts):
            if len(p) == 0:
                raise ValueError(f"prompt {i} is empty")
            if len(p) >= ctx:
                raise ContextLengthError(
                    f"prompt {i} has {len(p)} tokens but the model's context length is {ctx}: "
                    "shorten it (or start a new conversation) to leave room for a reply"
                )

    def _tool_ids(self) -> dict[str, int]:
        if self.tok is None:
            return {}
        return {name: self.tok.special_id(name) for name in (PYTHON_START, PYTHON_END, OUTPUT_START, OUTPUT_END)}

    def _tool_step(
        self, tok_id: int, state: _ToolState, ts: _TextState, ids: dict[str, int], params: SamplingParams,
        forced: deque[int], row: int, on_tool: Callable[[int, str, str], None] | None,
    ) -> bool:
        """Track one token of the tool protocol; True when it belongs to a call or output (not
        text). Closing a call runs it and queues its output as forced tokens."""
        if not state.kind and tok_id in (ids[PYTHON_START], ids[OUTPUT_START]):
            state.open("python" if tok_id == ids[PYTHON_START] else "python_output", len(ts.text))
        elif state.kind == "python" and tok_id == ids[PYTHON_END]:
            code = self.tok.decode(state.close())
            if params.tools:
                out = run_tool(code, params.tools)
                forced.extend([ids[OUTPUT_START], *self.tok.encode(out), ids[OUTPUT_END]])
                if on_tool is not None:
                    on_tool(row, code, out)
        elif state.kind == "python_output" and tok_id == ids[OUTPUT_END]:
            state.close()
        elif state.kind:
            state.tokens.append(tok_id)
        else:
            return False
        return True

    @torch.inference_mode()  # cheaper than no_grad per op; nothing here needs autograd
    def _run(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, results: list[Completion],
        on_tool: Callable[[int, str, str], None] | None, rows: Sequence[int],
    ) -> Iterator[tuple[int, str]]:
        """Generate one batch; yield (row, text delta) while generating and fill `results` (one
        per prompt) at the end. `rows` are the prompts' indices in the caller's list: they seed
        the prompts' generators and name them to the callbacks."""
        if not prompts:
            return
        model, ctx = self.model, self.context_length
        device = next(model.parameters()).device
        lengths = [len(p) for p in prompts]
        B, P = len(prompts), max(lengths)
        # Each row may grow to the context length or max_new_tokens, whichever comes first.
        budgets = [min(params.max_new_tokens, ctx - n) for n in lengths]
        stop_ids = self._stop_ids(params)
        gens = [torch.Generator(device=device).manual_seed(params.seed + r) for r in rows]
        texts = [_TextState(params.stop) if self.tok is not None else None for _ in range(B)]
        done = [Completion(prompt_tokens=n) for n in lengths]
        tools = [_ToolState() for _ in range(B)]
        forced: list[deque[int]] = [deque() for _ in range(B)]
        specials = self._tool_ids()
        pad = self.tok.pad_id if self.tok is not None else 0
        idx = torch.full((B, P), pad, dtype=torch.long, device=device)
        valid = torch.zeros(B, P, dtype=torch.bool, device=device)
        for r, p in enumerate(prompts):
            idx[r, P - len(p) :] = torch.tensor(list(p), dtype=torch.long)
            valid[r, P - len(p) :] = True
        cache = model.new_cache(B, P + max(budgets))
        logits = model(idx, cache=cache, key_valid=valid, last_only=True)[:, -1]
        slots: list[int | None] = list(range(B))  # the row each cache row decodes; None: finished
        while True:
            live = [i for i, r in enumerate(slots) if r is not None]
            active = [r for r in slots if r is not None]
            if len(live) < len(slots):
                logits = logits[live]
            if params.temperature <= 0:
                nxt = logits.argmax(-1).tolist()
            else:  # a forced row draws too and discards it: simpler than skipping its generator
                nxt = sample_next(logits, params.temperature, params.top_k, params.top_p,
                                  [gens[r] for r in active]).tolist()
            is_forced = [bool(forced[r]) for r in active]
            nxt = [forced[r].popleft() if f else t for t, r, f in zip(nxt, active, is_forced, strict=True)]
            if params.logprobs:
                scaled = logits.float() / params.temperature if params.temperature > 0 else logits.float()
                chosen = torch.tensor(nxt, device=device)[:, None]
                lps = scaled.log_softmax(-1).gather(1, chosen)[:, 0].tolist()
            keep = []
            for i, r in enumerate(active):
                tok_id, comp, ts = nxt[i], done[r], texts[r]
                comp.tokens.append(tok_id)
                comp.forced.append(is_forced[i])
                if params.logprobs:
                    comp.logprobs.append(0.0 if is_forced[i] else lps[i])
                finished = ""
                if tok_id in stop_ids and not is_forced[i]:
                    finished = "stop"
                else:
                    if ts is not None and not self._tool_step(
                        tok_id, tools[r], ts, specials, params, forced[r], rows[r], on_tool
                    ):
                        delta, hit = ts.feed(self.tok.decode_bytes([tok_id]))
                        if delta:
                            yield rows[r], delta
                        if hit:
                            finished = "stop"
                    if not finished and len(comp.tokens) >= budgets[r]:
                        finished = "length" if budgets[r] == params.max_new_tokens else "context"
                if finished:
                    comp.finish_reason = finished
                    if ts is not None:
                        tail = ts.finish()
                        if tail:
                            yield rows[r], tail
                        comp.text = ts.text
                        comp.parts = tools[r].parts(ts.text, self.tok)
                else:
                    keep.append(i)
            if not keep:
                break
            # A finished row stays in the batch, fed padding, until enough have finished to
            # compact the cache: compacting at every finish would copy it nearly every step.
            parked = len(slots) - len(keep)
            if parked >= max(1, int(COMPACT_AT * len(slots))):
                cache.reorder(torch.tensor([live[i] for i in keep], device=device))
                slots, feed = [active[i] for i in keep], [nxt[i] for i in keep]
            else:
                feed = [pad] * len(slots)
                for i in keep:
                    feed[live[i]] = nxt[i]
                for i in set(range(len(active))) - set(keep):
                    slots[live[i]] = None
            step = torch.tensor(feed, dtype=torch.long, device=device)[:, None]
            logits = model(step, cache=cache)[:, -1]
        results.extend(done)
