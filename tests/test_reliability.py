"""Faults a user hits in the first hour: each one is repaired or counted, never a traceback."""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from chatforge import cli, cost
from chatforge.config import load_config
from chatforge.cost.hardware import DEVICES
from chatforge.data import stage as data_stage
from chatforge.data.sources import TabularSource, WarcSource
from chatforge.engine import SamplingParams
from chatforge.errors import ConfigError, InputError
from chatforge.model.checkpoint import save_model
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.runs import RunDir, atomic_path, atomic_write_bytes
from chatforge.tokenizer.bpe import iter_text_files, load_tokenizer, train_bpe


def wet_record(i: int) -> bytes:
    """One WET conversion record whose text names its index."""
    body = f"Record number {i} is a plain text page about rivers and hills.".encode()
    head = (
        "WARC/1.0\r\nWARC-Type: conversion\r\n"
        f"WARC-Target-URI: https://example.org/{i}\r\nWARC-Record-ID: <urn:uuid:{i:08d}>\r\n"
        f"WARC-Date: 2024-01-01T00:00:00Z\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body + b"\r\n\r\n"


def urls(source) -> list[str]:
    return [d.url for d in source]


# ---------------------------------------------------------------- lone surrogates


def test_a_lone_surrogate_skips_its_record_only(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "good one"}\n{"text": "bad \\ud800 one"}\n{"text": "good two"}\n')
    source = TabularSource(str(path))
    assert [d.text for d in source] == ["good one", "good two"]
    assert source.skipped == {"lone_surrogate": 1}


def test_a_lone_surrogate_in_metadata_or_a_json_list_is_skipped(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('[{"text": "a", "title": "\\udfff"}, {"text": "b"}]')
    source = TabularSource(str(path))
    assert [d.text for d in source] == ["b"]
    assert source.skipped == {"lone_surrogate": 1}


def test_invalid_utf8_in_parquet_costs_its_row_not_its_batch(tmp_path):
    path = tmp_path / "s.parquet"
    # Arrow stores strings as UTF-8, so a surrogate can only arrive through surrogatepass bytes.
    bad = "bad \ud800".encode("utf-8", "surrogatepass")
    table = pa.table({"text": pa.array([b"good", bad], pa.binary()).cast(pa.string(), safe=False)})
    pq.write_table(table, path)
    source = TabularSource(str(path), kind="parquet")
    assert [d.text for d in source] == ["good"]
    assert source.skipped == {"invalid_utf8": 1}


def test_tokenizer_training_replaces_lone_surrogates(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"text": f"word{i} \ud800 more"}) + "\n" for i in range(50)))
    tok = train_bpe(iter_text_files([path]), vocab_size=300)
    assert tok.decode(tok.encode("word1 \ufffd more")) == "word1 \ufffd more"


# ---------------------------------------------------------------- WARC resynchronisation


def test_intact_warc_records_after_a_corrupt_gzip_member_are_read(tmp_path):
    members = [gzip.compress(wet_record(i)) for i in range(12)]
    bad = bytearray(members[3])
    bad[15:35] = bytes(20)  # damage the deflate data of member 3
    members[3] = bytes(bad)
    path = tmp_path / "c.warc.wet.gz"
    path.write_bytes(b"".join(members))
    source = WarcSource(str(path), kind="wet")
    assert urls(source) == [f"https://example.org/{i}" for i in range(12) if i != 3]
    assert source.skipped == {"corrupt_gzip": 1}


def test_a_bad_crc_member_loses_its_record_and_no_other(tmp_path):
    members = [gzip.compress(wet_record(i)) for i in range(6)]
    bad = bytearray(members[2])
    bad[-8] ^= 0xFF  # the CRC: all the data decompresses, then fails the check
    members[2] = bytes(bad)
    path = tmp_path / "crc.warc.gz"
    path.write_bytes(b"".join(members))
    source = WarcSource(str(path), kind="wet")
    assert urls(source) == [f"https://example.org/{i}" for i in range(6) if i != 2]
    assert source.skipped == {"corrupt_gzip": 1}


def test_garbage_between_gzip_members_is_counted_and_skipped(tmp_path):
    members = [gzip.compress(wet_record(i)) for i in range(4)]
    path = tmp_path / "g.warc.gz"
    path.write_bytes(members[0] + members[1] + b"not gzip at all" * 20 + members[2] + members[3])
    source = WarcSource(str(path), kind="wet")
    assert urls(source) == [f"https://example.org/{i}" for i in range(4)]
    assert source.skipped == {"corrupt_gzip": 1}


def test_a_truncated_warc_gz_counts_once(tmp_path):
    data = b"".join(gzip.compress(wet_record(i)) for i in range(5))
    path = tmp_path / "t.warc.gz"
    path.write_bytes(data[:-30])
    source = WarcSource(str(path), kind="wet")
    assert urls(source) == [f"https://example.org/{i}" for i in range(4)]
    assert source.skipped == {"truncated_gzip": 1}


@pytest.mark.parametrize("garbage", [b"\x00\xff garbage bytes \xfe\r\n" * 3, b"random line\n"])
def test_garbage_inside_a_plain_warc_is_counted(tmp_path, garbage):
    records = [wet_record(i) for i in range(4)]
    path = tmp_path / "p.warc"
    path.write_bytes(records[0] + records[1] + garbage + records[2] + records[3])
    source = WarcSource(str(path), kind="wet")
    assert urls(source) == [f"https://example.org/{i}" for i in range(4)]
    assert sum(source.skipped.values()) == 1


# ---------------------------------------------------------------- file modes


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(old)
    for name in ("a.bin", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


# ---------------------------------------------------------------- cost


def _cpu_run(root):
    """A run directory as `chatforge run` leaves it on a CPU: manifests naming the CPU model."""
    (root / "manifests").mkdir(parents=True)
    for i, stage in enumerate(("data", "tokenizer", "pretrain")):
        manifest = {"stage": stage, "status": "complete", "wall_s": 60.0 * (i + 1), "started": i,
                    "device": "cpu", "device_name": "Intel(R) Xeon(R) Processor", "n_devices": 1,
                    "metrics": {"tokens": 2e6, "params": 1e6} if stage == "pretrain" else {}}
        (root / "manifests" / f"{stage}.json").write_text(json.dumps(manifest))
    return root


def test_a_cpu_run_is_costed_as_cpu_hours(tmp_path):
    rc = cost.measure_run(_cpu_run(tmp_path / "run"), overrides={"cpu_cores": 2},
                          scale_params=1e9)
    assert [s.device for s in rc.stages] == ["cpu"] * 3
    assert rc.total("device_hours") == pytest.approx(360 * 2 / 3600)
    assert rc.total("usd") == pytest.approx(0.2 * DEVICES["cpu"].usd_per_hour)
    assert any("Intel(R) Xeon(R) Processor" in n and "cores" in n for n in rc.notes)
    assert rc.scaled is not None and rc.scaled.tokens == pytest.approx(2e9)


def test_chatforge_cost_run_dir_works_after_a_cpu_run(tmp_path, capsys):
    root = _cpu_run(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cost", str(root), "--json"])
    assert exit_info.value.code == 0
    assert json.loads(capsys.readouterr().out)["stages"][0]["device"] == "cpu"


@pytest.mark.parametrize(
    "args",
    [
        ["--params", "1e9", "--set", "pue=-1"],
        ["--params", "1e9", "--set", "pue=nan"],
        ["--params", "1e9", "--set", "electricity_usd_per_kwh=-0.1"],
        ["--params", "1e9", "--set", "tokens_per_param=inf"],
        ["--params", "1e9", "--price", "-1"],
        ["--params", "1e9", "--price", "nan", "--json"],
        ["--params", "1e300"],
        ["--params", "inf"],
    ],
)
def test_cost_rejects_values_that_would_print_nonsense(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["cost", *args])
    out = capsys.readouterr()
    assert exit_info.value.code == 2 and out.out == ""
    assert len(out.err.strip().splitlines()) == 1


def test_cost_api_rejects_nan_and_negative_assumptions():
    with pytest.raises(ConfigError, match="params"):
        cost.estimate(math.nan)
    with pytest.raises(ConfigError, match="pue"):
        cost.estimate(1e9, overrides={"pue": -1.0})
    with pytest.raises(ConfigError, match="price"):
        cost.estimate(1e9, price=-2.0)


# ---------------------------------------------------------------- chat options


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory):
    """A run directory with a tokenizer and a tiny random 'pre-trained' model."""
    root = tmp_path_factory.mktemp("chat_run")
    tok = train_bpe([f"word{i} and more words\n" for i in range(200)], vocab_size=300)
    tok.save(root / "tokenizer")
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=32, n_head=2, n_kv_head=2, seq_len=32)
    save_model(GPT(config), root / "checkpoints" / "pretrain")
    return root


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--max-tokens", "0"], "--max-tokens"),
        (["--top-p", "0"], "--top-p"),
        (["--top-p", "2"], "--top-p"),
        (["--top-k", "-5"], "--top-k"),
        (["--temperature", "nan"], "--temperature"),
        (["--temperature", "-1"], "--temperature"),
        (["--device", "foo"], "--device"),
        (["--device", "cuda:0" if not torch.cuda.is_available() else "cuda:99"], "--device"),
    ],
)
def test_bad_chat_options_are_one_line_errors(chat_run, extra, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["chat", str(chat_run), "--prompt", "hi", *extra])
    out = capsys.readouterr()
    assert exit_info.value.code == 2 and out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0]


def test_good_chat_options_answer(chat_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["chat", str(chat_run), "--prompt", "hi", "--max-tokens", "3", "--top-p", "1"])
    assert exit_info.value.code == 0


def test_a_truncated_model_file_is_a_one_line_error(chat_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(chat_run, run)
    weights = run / "checkpoints" / "pretrain" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["chat", str(run), "--prompt", "hi"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and "model.safetensors" in err


@pytest.mark.parametrize(
    "bad",
    [{"max_new_tokens": 0}, {"temperature": -1.0}, {"temperature": math.nan}, {"top_k": -5},
     {"top_p": 0.0}, {"top_p": 2.0}, {"top_p": math.nan}],
)
def test_sampling_params_are_checked_in_one_place(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        SamplingParams(**bad)


# ---------------------------------------------------------------- tokenizer encode


def test_encode_rejects_text_that_is_not_utf8(tmp_path, capsys):
    tok = train_bpe([f"word{i} text\n" for i in range(100)], vocab_size=280)
    tok.save(tmp_path / "tok")
    bad = b"ok \xff".decode("utf-8", "surrogateescape")  # what the shell hands typer for $'\xff'
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tokenizer", "encode", bad, "--tokenizer", str(tmp_path / "tok")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and "0xff" in err


def test_an_empty_tiktoken_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "e.tiktoken").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_tokenizer(tmp_path / "e.tiktoken")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tokenizer", "encode", "hi", "--tokenizer", str(tmp_path / "e.tiktoken")])
    assert exit_info.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


# ---------------------------------------------------------------- data command


GOOD_TEXT = ("The river runs through the old town and past the mill, where the farmers bring their "
             "grain every autumn to be ground into flour for the long winter months ahead.")


def run_data_cli(tmp_path, capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "--out", str(tmp_path / "out"), "--workers", "1", *args])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_data_warns_in_one_line_about_skipped_records(tmp_path, capsys):
    path = tmp_path / "some.jsonl"
    path.write_text(json.dumps({"text": GOOD_TEXT}) + '\n{"text": "bad \\ud800"}\nnot json\n')
    code, out, err = run_data_cli(tmp_path, capsys, "-s", f"jsonl:{path}")
    assert code == 0 and json.loads(out)["total"]["read"]["docs"] == 1
    (line,) = [e for e in err.splitlines() if "skipped" in e]
    assert "2 unreadable records" in line and "lone_surrogate" in line and "bad_json" in line


@pytest.mark.parametrize("content", ["", '{"text": "bad \\ud800"}\nnot json\n'])
def test_data_on_an_empty_or_all_bad_input_fails(tmp_path, capsys, content):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    code, out, err = run_data_cli(tmp_path, capsys, "-s", f"jsonl:{path}")
    errors = [e for e in err.splitlines() if e.startswith("error:")]  # after the progress lines
    assert code == 2 and out == "" and len(errors) == 1 and "no record could be read" in errors[0]


def test_data_mix_for_a_source_not_given_is_an_error(tmp_path, capsys):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"text": GOOD_TEXT}) + "\n")
    code, _, err = run_data_cli(tmp_path, capsys, "-s", f"jsonl:{path}", "--mix", "wiki=2")
    assert code == 2 and "'wiki' is not among the inputs" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- found by the fuzz pass


def test_a_json_list_cut_after_an_element_is_counted(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text('[{"text": "one"}, {"text": "two"},')
    source = TabularSource(str(path))
    assert [d.text for d in source] == ["one", "two"]
    assert source.skipped == {"truncated": 1}


@pytest.mark.parametrize("damage", [b"WARC-T\x00ype: conversion", b"WARC-Type:\x00 conversion"])
def test_a_control_character_in_a_warc_header_counts_the_record(tmp_path, damage):
    records = [wet_record(i) for i in range(3)]
    records[1] = records[1].replace(b"WARC-Type: conversion", damage)
    path = tmp_path / "h.warc"
    path.write_bytes(b"".join(records))
    source = WarcSource(str(path), kind="wet")
    assert urls(source) == ["https://example.org/0", "https://example.org/2"]
    assert source.skipped == {"bad_warc_header": 1}


def test_the_data_stage_rejects_a_mixture_for_a_source_the_web_lacks(tmp_path):
    cfg = load_config("smoke", ["data.mixture=papers=2", "data.web_pages=10"])
    with pytest.raises(ConfigError, match="'papers' is not among the inputs"):
        data_stage.run(cfg, RunDir(tmp_path / "run"))
