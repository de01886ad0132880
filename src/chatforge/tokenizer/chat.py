"""The one chat template, shared by SFT, RLHF, evaluation and serving.

A conversation renders as

    <|bos|><|system_start|>S<|system_end|><|user_start|>U<|user_end|><|assistant_start|>A<|assistant_end|>...

Message text is encoded with special tokens disabled, so a user who types "<|assistant_end|>"
gets plain text, never a control token. For SFT the loss mask is True only on assistant
content tokens and their <|assistant_end|> (what the model must learn to produce); the
<|assistant_start|> that opens a turn is part of the prompt. `jinja_chat_template()` renders
the same text for Hugging Face tooling (`tokenizer.apply_chat_template`).

Tool use (nanochat's scheme): an assistant message's content may be a list of parts
{"type": "text" | "python" | "python_output", "text": ...}. A `python` part (a tool call)
renders as <|python_start|>CODE<|python_end|> and is trained on, since the model must learn to
make the call; a `python_output` part renders as <|output_start|>RESULT<|output_end|> and is
never trained on, since the engine forces those tokens from the tool's real output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chatforge.tokenizer.bpe import Tokenizer

ROLES = ("system", "user", "assistant")
BOS = "<|bos|>"
EOT = "<|eot|>"
ASSISTANT_START = "<|assistant_start|>"
ASSISTANT_END = "<|assistant_end|>"
_OPEN = {r: f"<|{r}_start|>" for r in ROLES}
_CLOSE = {r: f"<|{r}_end|>" for r in ROLES}
PYTHON_START, PYTHON_END = "<|python_start|>", "<|python_end|>"
OUTPUT_START, OUTPUT_END = "<|output_start|>", "<|output_end|>"
# Part type -> (opening token, closing token, trained on); text parts have no delimiters.
PARTS = {"text": ("", "", True), "python": (PYTHON_START, PYTHON_END, True),
         "python_output": (OUTPUT_START, OUTPUT_END, False)}

Message = Mapping[str, object]  # content: str, or (assistant only) a list of parts


def parts_of(content: object) -> list[Mapping[str, str]]:
    """The parts of a message's content (a string is one text part)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)  # type: ignore[call-overload]


def content_text(content: object) -> str:
    """The visible text of a message's content: its text parts, without tool calls or outputs."""
    return "".join(p["text"] for p in parts_of(content) if p["type"] == "text")


def _check_parts(i: int, m: Mapping[str, object]) -> str | None:
    content = m["content"]
    if isinstance(content, str):
        return None
    if m["role"] != "assistant" or not isinstance(content, list):
        return f"message {i} content is not a string (only assistant messages may be a list of parts)"
    for j, p in enumerate(content):
        if not isinstance(p, Mapping) or p.get("type") not in PARTS or not isinstance(p.get("text"), str):
            return f"message {i} part {j} is not {{'type': one of {', '.join(PARTS)}, 'text': string}}"
    return None


def check_messages(messages: Sequence[Message]) -> str | None:
    """Why `messages` is not a valid conversation, or None when it is.

    Valid: an optional system message first, then user and assistant turns alternating,
    starting with the user; every content a string, or for an assistant a list of parts.
    """
    if not messages:
        return "no messages"
    turns = list(messages)
    for i, m in enumerate(turns):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            return f"message {i} lacks 'role' or 'content'"
        if m["role"] not in ROLES:
            return f"message {i} has unknown role {m['role']!r} (expected one of {', '.join(ROLES)})"
        reason = _check_parts(i, m)
        if reason:
            return reason
    if turns[0]["role"] == "system":
        turns = turns[1:]
    for i, m in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            return f"turn {i} is {m['role']!r} where {expected!r} was expected (turns must alternate)"
    return None


def render_text(messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
    """The template as text (what the Jinja template produces for the same messages)."""
    out = [BOS]
    for m in messages:
        out.append(_OPEN[m["role"]])
        for p in parts_of(m["content"]):
            start, end, _ = PARTS[p["type"]]
            out += [start, p["text"], end]
        out.append(_CLOSE[m["role"]])
    if add_generation_prompt:
        out.append(ASSISTANT_START)
    return "".join(out)


def render_conversation(tok: Tokenizer, messages: Sequence[Message]) -> tuple[list[int], list[bool]]:
    """Token ids of a whole conversation and its loss mask (True = train on this token)."""
    ids = [tok.bos_id]
    mask = [False]
    for m in messages:
        role = m["role"]
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        train = role == "assistant"
        ids.append(tok.special_id(_OPEN[role]))
        mask.append(False)
        for p in parts_of(m["content"]):
            start, end, trained = PARTS[p["type"]]
            piece = ([tok.special_id(start)] if start else []) + tok.encode(p["text"]) \
                + ([tok.special_id(end)] if end else [])
            ids += piece
            mask += [train and trained] * len(piece)
        ids.append(tok.special_id(_CLOSE[role]))
        mask.append(train)  # the model must learn to end its turn
    return ids, mask


def render_prompt(tok: Tokenizer, messages: Sequence[Message]) -> list[int]:
    """Ids of the conversation so far plus <|assistant_start|>: what generation continues."""
    ids, _ = render_conversation(tok, messages)
    return ids + [tok.special_id(ASSISTANT_START)]


PROMPT_HEAD = 8  # ids kept from a cut prompt's start: <|bos|> and the first turn's opening


def render_prompt_within(tok: Tokenizer, messages: Sequence[Message], budget: int) -> list[int]:
    """`render_prompt` in at most `budget` ids: a longer prompt loses its middle, so the
    template's head and the end (the latest request, where an attack leaves the harmful part,
    and <|assistant_start|>) survive. Every stage that shortens a prompt cuts it this way."""
    ids = render_prompt(tok, messages)
    if len(ids) <= budget:
        return ids
    head = min(PROMPT_HEAD, budget // 4)
    return ids[:head] + ids[len(ids) - (budget - head):]


def stop_token_ids(tok: Tokenizer) -> tuple[int, ...]:
    """Tokens that end an assistant reply: its end-of-turn or end-of-text, and (for a model
    that forgot to close its turn) the start of a new user turn or document."""
    return (tok.special_id(ASSISTANT_END), tok.eot_id, tok.special_id("<|user_start|>"), tok.bos_id)


def jinja_chat_template() -> str:
    """A Jinja chat template rendering exactly `render_text` (for HF `apply_chat_template`)."""
    return _JINJA_TEMPLATE


# Whitespace control (`{%-`, `-%}`) keeps the template's own line breaks out of the output, so
# the rendered text equals `render_text` under plain Jinja and under HF's trim/lstrip settings.
_JINJA_TEMPLATE = (
    "{{- '<|bos|>' -}}\n"
    "{%- for message in messages -%}\n"
    "{%- if message['role'] == 'system' -%}<|system_start|>{{ message['content'] }}<|system_end|>\n"
    "{%- elif message['role'] == 'user' -%}<|user_start|>{{ message['content'] }}<|user_end|>\n"
    "{%- elif message['role'] == 'assistant' and message['content'] is string -%}"
    "<|assistant_start|>{{ message['content'] }}<|assistant_end|>\n"
    "{%- elif message['role'] == 'assistant' -%}<|assistant_start|>\n"
    "{%- for part in message['content'] -%}\n"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}\n"
    "{%- elif part['type'] == 'python' -%}<|python_start|>{{ part['text'] }}<|python_end|>\n"
    "{%- elif part['type'] == 'python_output' -%}<|output_start|>{{ part['text'] }}<|output_end|>\n"
    "{%- else -%}{{ raise_exception('unknown part type: ' + part['type']) }}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}<|assistant_end|>\n"
    "{%- else -%}{{ raise_exception('unknown role: ' + message['role']) }}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}<|assistant_start|>{%- endif -%}\n"
)
