"""Preference pairs as token tensors, shared by the reward model and DPO.

A pair is a prompt (a user turn, or a whole dialogue as `messages`) with a chosen and a
rejected answer. Each answer is rendered as the chat template renders an assistant turn
(prompt ids end with the assistant-start token, the answer ends with assistant-end), so
the reward model reads its score at the end-of-turn token and DPO sums log-probabilities
over exactly the tokens the policy would generate. Long pairs lose the start of the prompt
first, then the end of the answers, to fit the context.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from chatforge.engine import Engine, SamplingParams, length_batches
from chatforge.model.loss import IGNORE_INDEX
from chatforge.tokenizer.bpe import Tokenizer
from chatforge.tokenizer.chat import render_prompt, render_prompt_within

MIN_PROMPT_TOKENS = 8  # the least of a prompt kept when a pair is cut to fit


def prompt_messages(pref: dict) -> list[dict[str, str]]:
    """The dialogue before the answer: `messages` (list or JSON text) if given, else one user turn."""
    messages = pref.get("messages")
    if isinstance(messages, str):
        messages = json.loads(messages)
    return list(messages) if messages else [{"role": "user", "content": pref["prompt"]}]


def answer_ids(tok: Tokenizer, answer: str) -> list[int]:
    return tok.encode(answer) + [tok.special_id("<|assistant_end|>")]


@dataclass
class EncodedPair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


def encode_answers(tok: Tokenizer, pref: dict, answers: Sequence[str], max_len: int) -> tuple[list[int], list[list[int]]]:
    """Prompt ids and each answer's ids, cut so prompt + the longest answer fits `max_len` tokens."""
    prompt = render_prompt(tok, prompt_messages(pref))
    encoded = [answer_ids(tok, a) for a in answers]
    longest = max(map(len, encoded))
    if len(prompt) + longest > max_len:
        keep = max(MIN_PROMPT_TOKENS, max_len - longest)
        prompt = prompt[-keep:] if len(prompt) > keep else prompt
        room = max_len - len(prompt)
        encoded = [a[:room] for a in encoded]
    return prompt, encoded


def encode_pair(tok: Tokenizer, pref: dict, max_len: int) -> EncodedPair:
    """Prompt and answer ids, cut so prompt + the longer answer fits `max_len` tokens."""
    prompt, (chosen, rejected) = encode_answers(tok, pref, (pref["chosen"], pref["rejected"]), max_len)
    return EncodedPair(prompt, chosen, rejected)


def sequences(pairs: Sequence[EncodedPair], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """Rows [chosen_0 .. chosen_{n-1}, rejected_0 .. rejected_{n-1}] of prompt + answer, laid
    out as `answer_rows` lays them out."""
    return answer_rows([(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs], pad_id)


def answer_rows(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """(prompt, answer) ids as padded rows of prompt + answer.

    Returns (inputs (n, T), answer targets (n, T) with IGNORE_INDEX off the answer, and the
    index of each row's last real token (its end-of-turn token when not cut)).
    """
    width = max(len(prompt) + len(answer) for prompt, answer in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    last = torch.zeros(len(rows), dtype=torch.long)
    for i, (prompt, answer) in enumerate(rows):
        row, start = prompt + answer, len(prompt)
        ids[i, : len(row)] = torch.tensor(row)
        # position t predicts token t + 1: answer tokens are targets of the positions before them
        targets[i, start - 1 : len(row) - 1] = torch.tensor(answer)
        last[i] = len(row) - 1
    return ids, targets, last


def sequence_logprobs(model, ids: Tensor, targets: Tensor) -> Tensor:
    """Summed log-probability of each row's answer tokens (the model's forward, per token)."""
    return model(ids, targets=targets, reduction="none").sum(dim=1)


def prefs_digest(prefs: Sequence[dict]) -> str:
    """A digest of preference pairs' text, for the training stages' upstream identity."""
    blob = json.dumps([[p["prompt"], p["chosen"], p["rejected"]] for p in prefs], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@torch.no_grad()
def reward_scores(rm, tok: Tokenizer, prompts: Sequence[dict], answers: Sequence[str],
                  batch_size: int = 32) -> list[float]:
    """The reward of each (prompt, answer): what PPO optimises and the scoreboard reports.
    Scored in batches of similar length (less padding), returned in the answers' order."""
    device = next(rm.parameters()).device
    rows = []
    for p, a in zip(prompts, answers, strict=True):
        prompt, (answer,) = encode_answers(tok, p, [a], rm.cfg.seq_len)
        rows.append((prompt, answer))
    out = [0.0] * len(rows)
    for batch in length_batches(range(len(rows)), lambda i: len(rows[i][0]) + len(rows[i][1]), batch_size):
        ids, targets, last = answer_rows([rows[r] for r in batch], tok.pad_id)
        scores = rm(ids.to(device), last.to(device), targets.to(device))
        for r, score in zip(batch, scores.tolist(), strict=True):
            out[r] = score
    return out


@torch.no_grad()
def greedy_answers(model, tok: Tokenizer, prompts: Sequence[dict], max_new_tokens: int) -> list:
    """Greedy completions of `prompts` (the held-out answers every RL stage scores); a prompt
    too long for the context keeps its end (the request), leaving room for the answer."""
    ids = [render_prompt_within(tok, prompt_messages(p), model.cfg.seq_len - max_new_tokens) for p in prompts]
    return Engine(model, tok).generate(ids, SamplingParams(max_new_tokens=max_new_tokens))


def greedy_replies(model, tok: Tokenizer, prompts: Sequence[dict], max_new_tokens: int = 48) -> list[str]:
    """Greedy reply texts, at most half the context long."""
    return [c.text for c in greedy_answers(model, tok, prompts, min(max_new_tokens, model.cfg.seq_len // 2))]
