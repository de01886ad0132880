"""Conversation readers on small fakes and on the real public samples in ../shared/data."""

from __future__ import annotations

import gzip
import json

import pytest
from conftest import shared_file

from chatforge.align.conversations import parse_hh_transcript, read_conversations
from chatforge.errors import InputError
from chatforge.tokenizer.chat import check_messages


def _write(path, records, jsonl=True):
    text = "\n".join(json.dumps(r) for r in records) if jsonl else json.dumps(records)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def test_openai_messages_jsonl(tmp_path):
    rec = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                        {"role": "assistant", "content": "a"}]}
    convs, stats = read_conversations(_write(tmp_path / "m.jsonl", [rec, rec]))
    assert convs == [rec["messages"]] * 2 and stats.format == "messages"


def test_alpaca_with_input_history_and_response_key(tmp_path):
    recs = [
        {"instruction": "Add.", "input": "2 and 3", "output": "5"},
        {"instruction": "Again?", "input": "", "response": "Yes", "history": [["hi", "hello"]]},
    ]
    convs, _ = read_conversations(_write(tmp_path / "a.json", recs, jsonl=False))
    assert convs[0] == [{"role": "user", "content": "Add.\n\n2 and 3"}, {"role": "assistant", "content": "5"}]
    assert [m["role"] for m in convs[1]] == ["user", "assistant", "user", "assistant"]
    assert convs[1][0]["content"] == "hi" and convs[1][-1]["content"] == "Yes"


def test_sharegpt_multi_turn_and_chosen(tmp_path):
    recs = [
        {"conversations": [{"from": "system", "value": "be kind"}, {"from": "human", "value": "q1"},
                           {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"},
                           {"from": "gpt", "value": "a2"}]},
        {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "good"},
         "rejected": {"from": "gpt", "value": "bad"}},
    ]
    convs, _ = read_conversations(_write(tmp_path / "s.json", recs, jsonl=False))
    assert [m["role"] for m in convs[0]] == ["system", "user", "assistant", "user", "assistant"]
    assert convs[1][-1] == {"role": "assistant", "content": "good"}


def test_hh_transcript_gzip(tmp_path):
    chosen = "\n\nHuman: Hi there\n\nAssistant: Hello.\n\nHuman: Bye\n\nAssistant: Goodbye!"
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"chosen": chosen, "rejected": chosen}) + "\n")
    convs, stats = read_conversations(path)
    assert stats.format == "hh"
    assert convs[0] == [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello."},
                        {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye!"}]
    assert parse_hh_transcript("\n\nHuman: a\n\nHuman: b\n\nAssistant: c")[0]["content"] == "a\n\nb"


def test_bad_records_are_skipped_and_counted(tmp_path):
    good = {"instruction": "x", "output": "y"}
    lines = [json.dumps(good)] * 8 + ["{not json", json.dumps({"instruction": "x", "output": ""})]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    convs, stats = read_conversations(path)
    assert len(convs) == 8 and stats.records == 10 and sum(stats.skipped.values()) == 2
    assert "record 9" in stats.first_error and "invalid JSON" in stats.first_error
    with pytest.raises(InputError, match=r"mixed\.jsonl: record 9: invalid JSON"):
        read_conversations(path, strict=True)


def test_errors_name_file_record_and_reason(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_conversations(tmp_path / "missing.jsonl")
    bad = _write(tmp_path / "bad.jsonl", [{"text": "plain document"}] * 3)
    with pytest.raises(InputError, match=r"bad\.jsonl: no usable conversation \(record 1: unrecognised layout"):
        read_conversations(bad)
    turns = _write(tmp_path / "turns.jsonl", [{"messages": [{"role": "assistant", "content": "a"}]}])
    with pytest.raises(InputError, match=r"turns\.jsonl: record 1: turn 0 is 'assistant'"):
        read_conversations(turns, strict=True)
    mostly_bad = _write(tmp_path / "mostly.jsonl", [{"instruction": "x", "output": ""}] * 3 + [{"instruction": "x", "output": "y"}])
    with pytest.raises(InputError, match=r"3 of 4 records are invalid"):
        read_conversations(mostly_bad)
    (tmp_path / "csv.txt").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not JSON or JSONL"):
        read_conversations(tmp_path / "csv.txt")


REAL = [
    (("llamafactory-demo", "alpaca_en_demo.json"), "alpaca", 999),
    (("llamafactory-demo", "identity.json"), "alpaca", 91),
    (("llamafactory-demo", "dpo_en_demo.json"), "sharegpt", 300),
    (("codealpaca", "code_alpaca_2k.json"), "alpaca", 2000),
    (("gpteacher", "roleplay-simple-deduped-roleplay-instruct.json"), "alpaca", 1900),
    (("self-instruct", "seed_tasks.jsonl"), "alpaca", 175),
    (("self-instruct", "user_oriented_instructions.jsonl"), "alpaca", 252),
    (("fastchat", "dummy_conversation.json"), "sharegpt", 500),
    (("turkish-instruct", "finance_turkish_dataset.json"), "alpaca", 378),
    (("turkish-instruct", "machine_learning_turkish_dataset.json"), "alpaca", 135),
    (("hh-rlhf", "helpful-base-test.jsonl.gz"), "hh", 2300),
]


@pytest.mark.parametrize(("parts", "fmt", "at_least"), REAL, ids=[p[0][0] + "/" + p[0][1] for p in REAL])
def test_real_samples_parse(parts, fmt, at_least):
    convs, stats = read_conversations(shared_file(*parts))
    assert stats.format == fmt
    assert len(convs) >= at_least
    assert sum(stats.skipped.values()) <= 0.01 * stats.records
    for msgs in convs:
        assert check_messages(msgs) is None and msgs[-1]["role"] == "assistant"
    if fmt in ("sharegpt", "hh"):
        assert max(len(m) for m in convs) >= 4  # multi-turn conversations survive
