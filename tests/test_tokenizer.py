"""Byte-level BPE: exact round trip, Turkish-aware pre-tokenisation, special tokens, tiktoken parity."""

from __future__ import annotations

import json
import pickle
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from conftest import shared_file
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models
from typer.testing import CliRunner

from chatforge.cli import app
from chatforge.errors import ConfigError, InputError
from chatforge.tokenizer import bpe
from chatforge.tokenizer.bpe import (
    SPECIAL_TOKENS,
    BPETokenizer,
    Tokenizer,
    iter_text_files,
    load_tokenizer,
    train_bpe,
)

EN = "the a little cat dog saw ran home in park and then it was happy sad 's don't 1999 42".split()
TR = "bir küçük kedi köpek gördü eve koştu parkta ve sonra çok mutlu üzgün İstanbul'da ığdır şeker Çağrı öğretmen".split()


def make_texts(n: int = 400, seed: int = 0) -> list[str]:
    """Bilingual sentences from small word lists: enough repetition for BPE to merge."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        words = EN if rng.random() < 0.5 else TR
        texts.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + ".\n")
    return texts


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    return train_bpe(make_texts(), vocab_size=600)


@pytest.fixture(scope="module")
def cl100k() -> Tokenizer:
    return load_tokenizer(shared_file("tokenizer-reference", "cl100k_base.tiktoken"))


# Characters that break naive tokenizers: CR/LF mixes, NUL, zero-width and BOM, combining marks
# with no base, emoji ZWJ sequences and flags, RTL, supplementary planes, lone C1 controls.
ODD = ["\r\n", "\r", "\x00", "\u200b", "\ufeff", "\u0301", "e\u0301", "👨\u200d👩\u200d👧", "🇹🇷",
       "\u202e", "𝔘", "\x85", "\t \t", "\u3000", "İ", "ı", "<|bos|>", "<|", "'d", "123456"]
odd_text = st.lists(st.sampled_from(ODD) | st.text(max_size=8), max_size=12).map("".join)
any_text = st.text() | odd_text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(any_text)
@example("")
@example("\x00\r\n\u0301🤖 İstanbul'da\n\n\n   x")
def test_round_trip_any_unicode(tok: BPETokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")
    assert not set(ids) & tok.special_ids


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(any_text, max_size=6))
def test_encode_batch_equals_encode(tok: BPETokenizer, texts: list[str]) -> None:
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(any_text)
def test_tiktoken_round_trip(cl100k: Tokenizer, text: str) -> None:
    assert cl100k.decode(cl100k.encode(text)) == text


def test_tiktoken_cl100k_ids_match_reference(cl100k: Tokenizer) -> None:
    enc = cl100k
    assert enc.encode("Hello world") == [9906, 1917]
    assert enc.encode("Merhaba dünya") == [27814, 10796, 64, 52119, 23741]
    assert len(enc.encode("Bugün hava çok güzel")) == 7
    assert enc.encode_batch(["Hello world", "Merhaba dünya"]) == [[9906, 1917], [27814, 10796, 64, 52119, 23741]]
    # Chat special tokens sit after the 100,256 ranks and only appear when allowed.
    assert enc.special_id("<|bos|>") == 100256
    assert enc.vocab_size == 100256 + len(SPECIAL_TOKENS)
    assert enc.bos_id not in enc.encode("<|bos|>")
    assert enc.encode("<|bos|>", allowed_special=True) == [enc.bos_id]


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("güzel", ["güzel"]),
        ("İstanbul'da", ["İstanbul", "'da"]),
        ("Ankara'dan İzmir'e", ["Ankara", "'dan", " İzmir", "'e"]),
        ("ÇĞIİÖŞÜ çğıiöşü", ["ÇĞIİÖŞÜ", " çğıiöşü"]),
        ("gu\u0308zel", ["gu\u0308zel"]),  # NFD: the combining diaeresis stays in the word
        ("don't I'll", ["don", "'t", " I", "'ll"]),  # English contractions still split
        ("2024 yılında", ["2", "0", "2", "4", " yılında"]),
    ],
)
def test_pre_tokenisation_keeps_words_whole(tok: BPETokenizer, text: str, pieces: list[str]) -> None:
    assert tok.pre_tokenize(text) == pieces


LETTERS = "abcçdefgğhıijklmnoöprsştuüvyzABCÇDEFGĞHIİJKLMNOÖPRSŞTUÜVYZ"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=LETTERS + " '’.,!?0123456789\n-\u0307", max_size=60))
def test_pre_tokens_never_cut_between_letters(tok: BPETokenizer, text: str) -> None:
    pieces = tok.pre_tokenize(text)
    assert "".join(pieces) == text
    for left, right in zip(pieces, pieces[1:], strict=False):
        cut = unicodedata.category(left[-1])[0] in "LM" and unicodedata.category(right[0])[0] in "LM"
        assert not cut, (left, right)


def test_digits_are_single_tokens(tok: BPETokenizer) -> None:
    ids = tok.encode("x 1234567890")
    digit_pieces = [tok.decode_bytes([i]) for i in ids][-10:]
    assert digit_pieces == [bytes([c]) for c in b"1234567890"]


def test_special_tokens(tok: BPETokenizer) -> None:
    ids = [tok.special_id(s) for s in SPECIAL_TOKENS]
    assert ids == list(range(len(SPECIAL_TOKENS)))  # reserved at the bottom, in order
    assert (tok.bos_id, tok.eot_id, tok.pad_id) == tuple(ids[:3])
    text = "<|user_start|>selam<|user_end|><|assistant_start|>"
    plain = tok.encode(text)
    assert not set(plain) & tok.special_ids
    assert tok.decode(plain) == text
    special = tok.encode(text, allowed_special=True)
    assert special[0] == tok.special_id("<|user_start|>")
    assert special[-1] == tok.special_id("<|assistant_start|>")
    assert tok.decode(special) == text
    with pytest.raises(KeyError, match="not a special token"):
        tok.special_id("<|nope|>")


def test_vocab_size_and_merges(tok: BPETokenizer) -> None:
    assert 256 + len(SPECIAL_TOKENS) < tok.vocab_size <= 600
    assert len(tok.encode("küçük kedi parkta")) < len("küçük kedi parkta".encode())
    with pytest.raises(ConfigError, match="vocab_size=100: must be at least"):
        train_bpe(["abc"], vocab_size=100)


def test_training_is_deterministic(tok: BPETokenizer) -> None:
    again = train_bpe(make_texts(), vocab_size=600)
    assert again.to_json() == tok.to_json()


def test_training_is_deterministic_across_processes(tmp_path: Path) -> None:
    """Hash-map order in another process must not change the merges."""
    corpus = tmp_path / "c.json"
    corpus.write_text(json.dumps(make_texts()))
    code = (
        "import json, sys; from chatforge.tokenizer.bpe import train_bpe; "
        "sys.stdout.write(train_bpe(json.load(open(sys.argv[1])), vocab_size=600).to_json())"
    )
    runs = {
        subprocess.run([sys.executable, "-c", code, str(corpus)], capture_output=True, text=True,
                       check=True).stdout
        for _ in range(2)
    }
    assert len(runs) == 1


def test_max_chars_limits_training_text() -> None:
    small = train_bpe(make_texts(), vocab_size=600, max_chars=200)
    assert small.vocab_size < 600


def test_save_load_round_trip(tok: BPETokenizer, tmp_path: Path) -> None:
    path = tok.save(tmp_path / "tok")
    assert path == tmp_path / "tok" / "tokenizer.json"
    for source in (tmp_path / "tok", path):
        loaded = load_tokenizer(source)
        assert loaded.vocab_size == tok.vocab_size
        assert loaded.special_id("<|output_end|>") == tok.special_id("<|output_end|>")
        sample = "İstanbul'da 12 küçük kedi <|bos|>"
        assert loaded.encode(sample) == tok.encode(sample)
        assert loaded.encode(sample, allowed_special=True) == tok.encode(sample, allowed_special=True)
    # Worker processes (data loaders, Ray) receive tokenizers by pickling.
    assert pickle.loads(pickle.dumps(tok)).encode("küçük kedi") == tok.encode("küçük kedi")


def test_tiktoken_save_load(cl100k: Tokenizer, tmp_path: Path) -> None:
    cl100k.save(tmp_path)
    assert load_tokenizer(tmp_path).encode("Hello world") == [9906, 1917]


def test_load_errors(tok: BPETokenizer, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(InputError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        load_tokenizer(bad)
    # A tokenizer.json without our chat special tokens cannot serve the chat template.
    doc = json.loads(tok.to_json())
    doc["added_tokens"] = []
    for name in SPECIAL_TOKENS:
        del doc["model"]["vocab"][name]
    stripped = tmp_path / "stripped.json"
    stripped.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="special tokens"):
        load_tokenizer(stripped)
    word_level = HFTokenizer(models.WordLevel({"漢": 0, **{t: i + 1 for i, t in enumerate(SPECIAL_TOKENS)}}, unk_token="漢"))
    word_level.save(str(tmp_path / "wl.json"))
    with pytest.raises(InputError, match="not byte-level"):
        load_tokenizer(tmp_path / "wl.json")
    ranks = tmp_path / "x.tiktoken"
    ranks.write_text("not-base64 zero\n")
    with pytest.raises(InputError, match=r"x.tiktoken:1"):
        load_tokenizer(ranks)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([-1])


def test_iter_text_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "a.txt"
    plain.write_bytes("satır bir\r\nline two\n".encode() * 10)
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text('{"text": "x"}\n\n{"text": "y"}\n')
    monkeypatch.setattr(bpe, "_CHUNK_CHARS", 7)  # several pieces, each ending at a line end
    pieces = list(iter_text_files([plain]))
    assert len(pieces) > 1 and all(p.endswith("\n") for p in pieces)
    assert "".join(pieces).encode() == plain.read_bytes()  # \r\n kept: no newline translation
    assert list(iter_text_files([jsonl])) == ["x", "y"]
    assert len(list(iter_text_files([tmp_path]))) == len(pieces) + 2
    with pytest.raises(InputError, match="no such file"):
        list(iter_text_files([tmp_path / "nope.txt"]))
    latin = tmp_path / "latin.txt"
    latin.write_bytes("çok".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        list(iter_text_files([latin]))
    jsonl.write_text('{"txt": 1}\n')
    with pytest.raises(InputError, match="b.jsonl:1"):
        list(iter_text_files([jsonl]))


def test_cli_encode_tiktoken() -> None:
    path = shared_file("tokenizer-reference", "cl100k_base.tiktoken")
    result = CliRunner().invoke(app, ["tokenizer", "encode", "--tokenizer", str(path), "Merhaba dünya"])
    assert result.exit_code == 0, result.output
    assert "27814 10796 64 52119 23741" in result.output
    assert "'Mer'" in result.output


def test_cli_train_then_encode(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(make_texts()))
    runner = CliRunner()
    result = runner.invoke(app, ["tokenizer", "train", str(corpus), "--out", str(tmp_path / "t"), "--vocab-size", "500"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["vocab_size"] <= 500
    result = runner.invoke(app, ["tokenizer", "encode", "--tokenizer", str(tmp_path / "t"), "--json", "İstanbul'da"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert "".join(out["pieces"]) == "İstanbul'da"
    result = runner.invoke(app, ["tokenizer", "encode", "--tokenizer", str(tmp_path / "nope"), "x"])
    assert isinstance(result.exception, InputError)


def hf_reference(tok: BPETokenizer, allowed_special: bool) -> HFTokenizer:
    """The tokenizers-library encoder of `tok`: the reference its tiktoken fast path must equal."""
    hf = HFTokenizer.from_str(tok.to_json())
    hf.encode_special_tokens = not allowed_special
    return hf


WHITESPACE_AND_CO = ["\n", "\r\n", " ", "  \n", "\u00a0", "\u2028", "\x85", "\x1c", "\x0b", "\u3000",
                     ".", "a", "ç", "İ", "1", "²", "٣", "\u0301", "'d", "'S", "\t", "<|bos|>", "漢"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(any_text | st.lists(st.sampled_from(WHITESPACE_AND_CO), max_size=30).map("".join))
def test_tiktoken_engine_equals_tokenizers_library(tok: BPETokenizer, text: str) -> None:
    """Encoding runs on tiktoken (its regex engine and merge-by-rank loop); the ids must be
    those of the Hugging Face tokenizer that was trained, regex corner cases included."""
    for allowed in (False, True):
        expected = hf_reference(tok, allowed).encode(text, add_special_tokens=False).ids
        assert tok.encode(text, allowed_special=allowed) == expected


def test_tiktoken_engine_equals_tokenizers_library_on_real_text() -> None:
    texts = list(iter_text_files([
        shared_file("tinyshakespeare", "input.txt"),
        shared_file("turkish-text", "Sentence-Boundary-Train.txt"),
    ]))
    tok = train_bpe(texts, vocab_size=2000, max_chars=1_000_000)
    lines = [
        line
        for path in sorted(shared_file("lingua-langid-sentences").glob("*.txt"))
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
    ]
    reference = [e.ids for e in hf_reference(tok, False).encode_batch(lines, add_special_tokens=False)]
    assert tok.encode_batch(lines) == reference
    book = texts[0][:300_000]  # one long text: a single call, not a batch
    assert tok.encode(book) == hf_reference(tok, False).encode(book, add_special_tokens=False).ids
