"""Readers that turn public instruction/chat datasets into one shape: a list of messages.

Supported layouts (detected from the first record, or named with `fmt`):
- ``messages``: OpenAI-style ``{"messages": [{"role", "content"}, ...]}`` (also the built-in
  corpus's conversations, whose assistant contents may be lists of tool-use parts);
- ``alpaca``: ``{"instruction", "input", "output"}`` (``response`` instead of ``output`` as in
  GPTeacher; optional ``system`` and ``history`` [[user, assistant], ...] as in LLaMA-Factory;
  self-instruct's ``instances`` [{input, output}] give one conversation per instance);
- ``sharegpt``: ``{"conversations": [{"from": human|gpt|system, "value"}]}``, plus a
  ``chosen`` reply appended when present (LLaMA-Factory's preference layout);
- ``hh``: HH-RLHF ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ..."}`` transcripts.

Files are JSONL or a JSON list, optionally gzip-compressed. A malformed record inside a file
is skipped and counted by reason; a file with no usable record, or one where most records are
bad (probably the wrong format), raises InputError naming the file, the first bad record and
why. `strict=True` raises on the first bad record instead.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatforge.errors import InputError
from chatforge.tokenizer.chat import check_messages, parts_of

FORMATS = ("messages", "alpaca", "sharegpt", "hh")
Messages = list[dict[str, str]]

_SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "system": "system",
}
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


class BadRecord(ValueError):
    """One record cannot be read; the message is the reason."""


@dataclass
class ReadStats:
    """What a reader did with one file: records seen, conversations kept, skips by reason."""

    path: str
    format: str
    records: int = 0
    conversations: int = 0
    skipped: Counter = field(default_factory=Counter)
    first_error: str = ""

    def summary(self) -> str:
        skips = ", ".join(f"{n} {why}" for why, n in self.skipped.most_common(3))
        return (
            f"{self.path}: {self.format}, {self.records} records -> {self.conversations} "
            f"conversations" + (f" (skipped {sum(self.skipped.values())}: {skips})" if skips else "")
        )


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _iter_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(record number from 1, parsed record or BadRecord) for a JSON list or JSONL file."""
    try:
        with _open_text(path) as f:
            head = f.read(1 << 16)
            first = head.lstrip()[:1]
            if first == "[":
                data = json.loads(head + f.read())
                for i, rec in enumerate(data, 1):
                    yield i, rec
                return
            if first == "{":
                text = head + f.read()
                lines = text.splitlines()
                for i, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    try:
                        yield i, json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield i, BadRecord(f"invalid JSON ({exc.msg})")
                return
            if not first:
                return
            raise InputError(f"{path}: not JSON or JSONL (starts with {head.lstrip()[:20]!r})")
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


def detect_format(record: Any) -> str | None:
    """Layout of one record, or None when it matches none of FORMATS."""
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record:
        return "alpaca"
    if isinstance(record.get("chosen"), str) and "Human:" in record["chosen"]:
        return "hh"
    return None


def _str_field(rec: dict, key: str, required: bool = True) -> str:
    value = rec.get(key, "")
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadRecord(f"field {key!r} is not a string")
    if required and not value.strip():
        raise BadRecord(f"field {key!r} is missing or empty")
    return value


def _from_messages(rec: dict) -> list[Messages]:
    msgs = rec.get("messages")
    if not isinstance(msgs, list):
        raise BadRecord("'messages' is not a list")
    return [[{"role": m.get("role"), "content": m.get("content")} if isinstance(m, dict) else m
             for m in msgs]]


def _from_alpaca(rec: dict) -> list[Messages]:
    instruction = _str_field(rec, "instruction")
    prefix: Messages = []
    if rec.get("system"):
        prefix.append({"role": "system", "content": _str_field(rec, "system")})
    for pair in rec.get("history") or []:
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise BadRecord("'history' is not a list of [user, assistant] pairs")
        prefix += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    if "instances" in rec:  # self-instruct: one task, several input/output instances
        instances = rec["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRecord("'instances' is not a non-empty list")
    else:
        instances = [rec]
    out = []
    for inst in instances:
        if not isinstance(inst, dict):
            raise BadRecord("an instance is not an object")
        extra = _str_field(inst, "input", required=False).strip()
        answer_key = "output" if "output" in inst else "response"
        answer = _str_field(inst, answer_key)
        user = instruction.strip() + (f"\n\n{extra}" if extra else "")
        out.append(prefix + [{"role": "user", "content": user}, {"role": "assistant", "content": answer}])
    return out


def _sharegpt_turn(turn: Any) -> dict[str, str]:
    if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
        raise BadRecord("a turn lacks 'from' or 'value'")
    role = _SHAREGPT_ROLES.get(str(turn["from"]).lower())
    if role is None:
        raise BadRecord(f"unknown speaker {turn['from']!r}")
    if not isinstance(turn["value"], str):
        raise BadRecord("a turn's 'value' is not a string")
    return {"role": role, "content": turn["value"]}


def _from_sharegpt(rec: dict) -> list[Messages]:
    turns = rec.get("conversations")
    if not isinstance(turns, list):
        raise BadRecord("'conversations' is not a list")
    msgs = [_sharegpt_turn(t) for t in turns]
    if isinstance(rec.get("chosen"), dict):
        msgs.append(_sharegpt_turn(rec["chosen"]))
    if isinstance(rec.get("system"), str) and rec["system"].strip():
        msgs.insert(0, {"role": "system", "content": rec["system"]})
    return [msgs]


def parse_hh_transcript(text: str) -> Messages:
    """Messages of an HH-RLHF transcript "\\n\\nHuman: ...\\n\\nAssistant: ..."."""
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise BadRecord("transcript does not start with '\\n\\nHuman:'")
    msgs: Messages = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        role = "user" if speaker == "Human" else "assistant"
        content = content.strip()
        if msgs and msgs[-1]["role"] == role:
            # A few transcripts repeat a speaker; merging keeps the turns alternating.
            msgs[-1]["content"] += "\n\n" + content
        else:
            msgs.append({"role": role, "content": content})
    return msgs


def _from_hh(rec: dict) -> list[Messages]:
    return [parse_hh_transcript(_str_field(rec, "chosen"))]


_READERS = {"messages": _from_messages, "alpaca": _from_alpaca, "sharegpt": _from_sharegpt, "hh": _from_hh}


def _check(msgs: Messages) -> None:
    reason = check_messages(msgs)
    if reason:
        raise BadRecord(reason)
    if msgs[-1]["role"] != "assistant":
        raise BadRecord("conversation does not end with an assistant reply")
    if any(not "".join(p["text"] for p in parts_of(m["content"])).strip()
           for m in msgs if m["role"] == "assistant"):
        raise BadRecord("empty assistant reply")


def read_conversations(
    path: str | Path, fmt: str = "auto", strict: bool = False
) -> tuple[list[Messages], ReadStats]:
    """All valid conversations of one file, and what was skipped and why."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if fmt != "auto" and fmt not in FORMATS:
        raise InputError(f"{path}: unknown conversation format {fmt!r} (choose {', '.join(FORMATS)})")
    stats = ReadStats(str(path), fmt)
    out: list[Messages] = []
    reader = None if fmt == "auto" else _READERS[fmt]
    for i, rec in _iter_records(path):
        stats.records += 1
        try:
            if isinstance(rec, BadRecord):
                raise rec
            if reader is None:
                detected = detect_format(rec)
                if detected is None:
                    keys = ", ".join(sorted(rec)[:6]) if isinstance(rec, dict) else type(rec).__name__
                    raise BadRecord(f"unrecognised layout (fields: {keys}); expected one of {', '.join(FORMATS)}")
                stats.format, reader = detected, _READERS[detected]
            convs = reader(rec)
            for msgs in convs:
                _check(msgs)
        except BadRecord as exc:
            if strict:
                raise InputError(f"{path}: record {i}: {exc}") from None
            stats.skipped[str(exc)] += 1
            stats.first_error = stats.first_error or f"record {i}: {exc}"
            continue
        out.extend(convs)
        stats.conversations += len(convs)
    bad = sum(stats.skipped.values())
    if not out:
        raise InputError(f"{path}: no usable conversation" + (f" ({stats.first_error})" if bad else " (empty file)"))
    if bad > stats.records / 2:
        raise InputError(f"{path}: {bad} of {stats.records} records are invalid, first: {stats.first_error}")
    return out, stats
