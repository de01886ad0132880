"""Quality filters pinned at their thresholds with tiny crafted documents; normalisation,
PII masking, decontamination and the step wrappers."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest

from chatforge.config import DataConfig, QualityConfig
from chatforge.data import quality
from chatforge.data.decontam import ContaminationIndex, build_index
from chatforge.data.document import Document
from chatforge.data.normalize import canonical_words, clean_text
from chatforge.data.pii import mask_pii
from chatforge.data.steps import ORDER_KEY, Step, decontam_step, normalize_step, pii_step
from chatforge.errors import ConfigError, InputError

Q = QualityConfig()
_SYL = ["ba", "ko", "ri", "mu", "te", "la", "ne", "si", "do", "fu", "ga", "pe"]


def uniq(n: int, syllables: int = 3) -> list[str]:
    """n distinct lowercase pseudo-words of 2*syllables letters."""
    return ["".join(p) for p in itertools.islice(itertools.product(_SYL, repeat=syllables), n)]


def sentence_lines(n_lines: int, words_per_line: int = 8, end: str = ".") -> list[str]:
    """Distinct lines of distinct words, each with two stop words."""
    pool = iter(uniq(n_lines * words_per_line))
    return [
        " ".join(["the", "and"] + [next(pool) for _ in range(words_per_line - 2)]) + end
        for _ in range(n_lines)
    ]


# --- Gopher quality ------------------------------------------------------------------------


def test_gopher_word_count_bounds():
    text = lambda n: " ".join(["the", "and"] + uniq(n - 2)) + "."  # noqa: E731
    assert quality.gopher_quality(text(50), "en", Q) is None
    assert quality.gopher_quality(text(49), "en", Q) == "gopher_too_few_words"
    small = dataclasses.replace(Q, gopher_max_words=60)
    assert quality.gopher_quality(text(60), "en", small) is None
    assert quality.gopher_quality(text(61), "en", small) == "gopher_too_many_words"
    assert Q.gopher_min_words == 50 and Q.gopher_max_words == 100_000


def test_gopher_mean_word_length_bounds():
    three = ["the", "and"] + ["a" + w[:2] for w in uniq(48)]  # all 3 letters: mean exactly 3
    assert quality.gopher_quality(" ".join(three), "en", Q) is None
    assert quality.gopher_quality(" ".join(three[:-1] + ["ab"]), "en", Q) == "gopher_short_words"
    # mean exactly 10: 2 stop words (3+3) + 46 ten-letter + 2 seventeen-letter words = 500 / 50
    ten = ["the", "and"] + [w + "xxxx" for w in uniq(46)] + ["q" * 17, "r" * 17]
    assert quality.gopher_quality(" ".join(ten), "en", Q) is None
    assert quality.gopher_quality(" ".join(ten[:-1] + ["r" * 18]), "en", Q) == "gopher_long_words"


def test_gopher_hash_and_ellipsis_ratio():
    base = ["the", "and"] + uniq(98)  # 100 words
    tagged = lambda k, mark: [w + mark if i < k else w for i, w in enumerate(base[2:])]  # noqa: E731
    assert quality.gopher_quality(" ".join(base[:2] + tagged(10, "#")), "en", Q) is None
    assert quality.gopher_quality(" ".join(base[:2] + tagged(11, "#")), "en", Q) == "gopher_hash_ratio"
    assert quality.gopher_quality(" ".join(base[:2] + tagged(10, "...")), "en", Q) is None
    assert quality.gopher_quality(" ".join(base[:2] + tagged(11, "…")), "en", Q) == "gopher_ellipsis_ratio"


def test_gopher_bullet_lines():
    lines = sentence_lines(10)
    nine = ["- " + line for line in lines[:9]] + lines[9:]
    assert quality.gopher_quality("\n".join(nine), "en", Q) is None
    every = ["• " + line for line in lines]
    assert quality.gopher_quality("\n".join(every), "en", Q) == "gopher_bullet_lines"


def test_gopher_ellipsis_lines():
    lines = sentence_lines(10)
    three = [line[:-1] + "..." if i < 3 else line for i, line in enumerate(lines)]
    assert quality.gopher_quality("\n".join(three), "en", Q) is None
    four = [line[:-1] + "..." if i < 4 else line for i, line in enumerate(lines)]
    assert quality.gopher_quality("\n".join(four), "en", Q) == "gopher_ellipsis_lines"


def test_gopher_alphabetic_words():
    words = ["the", "and"] + uniq(78) + ["1234"] * 20  # 80 of 100 have a letter
    assert quality.gopher_quality(" ".join(words), "en", Q) is None
    words = ["the", "and"] + uniq(77) + ["1234"] * 21
    assert quality.gopher_quality(" ".join(words), "en", Q) == "gopher_non_alpha_words"


def test_gopher_stop_words_per_language():
    words = uniq(60)
    assert quality.gopher_quality(" ".join(["the", "of"] + words), "en", Q) is None
    assert quality.gopher_quality(" ".join(["the"] + words), "en", Q) == "gopher_few_stop_words"
    # Turkish uses its own list; a language without a list skips the rule.
    assert quality.gopher_quality(" ".join(["ve", "bir"] + words), "tr", Q) is None
    assert quality.gopher_quality(" ".join(["the", "of"] + words), "tr", Q) == "gopher_few_stop_words"
    assert quality.gopher_quality(" ".join(words), "xx", Q) is None


# --- Gopher repetition -----------------------------------------------------------------------


def test_gopher_duplicate_paragraph_fraction():
    unique = [line * 1 for line in sentence_lines(6, 12)]
    ok = "\n\n".join(unique + ["short one"] * 4)  # 3 repeats of 10 paragraphs
    assert quality.gopher_repetition(ok, Q) != "gopher_dup_paragraphs"
    bad = "\n\n".join(unique + ["short one"] * 5)  # 4 of 11
    assert quality.gopher_repetition(bad, Q) == "gopher_dup_paragraphs"


def test_gopher_duplicate_paragraph_chars():
    # One long paragraph repeated once among many: the fraction is small, the characters decide.
    many = sentence_lines(30, 8)
    for repeated_words, expected_over in ((40, False), (60, True)):
        long_para = " ".join(uniq(repeated_words, 4))
        text = "\n\n".join(many + [long_para, long_para])
        share = len(long_para) / len(text)
        assert (share > Q.gopher_dup_para_char_frac) == expected_over
        assert (quality.gopher_repetition(text, Q) == "gopher_dup_paragraph_chars") == expected_over


def test_gopher_duplicate_line_fraction_and_chars():
    unique = sentence_lines(6, 12)
    ok = "\n".join(unique + ["short one"] * 4)
    assert quality.gopher_repetition(ok, Q) != "gopher_dup_lines"
    bad = "\n".join(unique + ["short one"] * 5)
    assert quality.gopher_repetition(bad, Q) == "gopher_dup_lines"
    # One long repeated line among many: line fraction small, character share decides.
    many = sentence_lines(30, 8)
    for repeated_words, expected_over in ((40, False), (60, True)):
        long_line = " ".join(uniq(repeated_words, 4))
        text = "\n".join(many + [long_line, long_line])
        share = len(long_line) / len(text)
        assert (share > Q.gopher_dup_line_char_frac) == expected_over
        reason = quality.gopher_repetition(text, Q)
        assert (reason == "gopher_dup_line_chars") == expected_over


@pytest.mark.parametrize("n,limit", [(2, 0.20), (3, 0.18), (4, 0.16)])
def test_gopher_top_ngram_share(n: int, limit: float):
    gram = " ".join(uniq(n, 5))  # long words so the repeated gram dominates quickly
    filler = uniq(400)
    for copies in range(2, 60):
        text = " ".join(filler[:150] + [gram] * copies)
        share = len(gram) * copies / len(text)
        if share > limit:
            break
        assert quality.gopher_repetition(text, Q) != f"gopher_top_{n}gram"
    assert quality.gopher_repetition(text, Q) is not None


def test_gopher_top_ngram_ignores_single_occurrences():
    assert quality._top_ngram_chars(["alpha", "beta", "gamma"], 2) == 0
    assert quality._top_ngram_chars(["ab", "cd", "ab", "cd"], 2) == 2 * len("ab cd")


@pytest.mark.parametrize("n,limit", list(zip(range(5, 11), Q.gopher_dup_ngram_frac, strict=True)))
def test_gopher_duplicated_ngram_share(n: int, limit: float):
    block = uniq(n, 4)
    filler = uniq(2000)
    # Shrink the filler (from a size just under the limit) until the block's share crosses it.
    start = int(len(" ".join(block)) / (0.9 * limit) / (len(filler[0]) + 1))
    for size in range(start, 10, -2):
        text = " ".join(filler[:size] + block + filler[size : size + 3] + block)
        share = quality._duplicated_ngram_chars(text.split(), n) / len(text)
        if share > limit:
            assert quality.gopher_repetition(text, Q) is not None
            return
        assert quality.gopher_repetition(text, Q) != f"gopher_dup_{n}gram"
    raise AssertionError("share never crossed the limit")


def test_duplicated_ngram_chars_counts_repeats_only():
    words = "a b c d e a b c d e".split()
    assert quality._duplicated_ngram_chars(words, 5) == len("a b c d e")
    assert quality._duplicated_ngram_chars("a b c d e f".split(), 5) == 0


# --- C4 ----------------------------------------------------------------------------------


def c4_doc(extra: list[str], n: int = 5) -> str:
    return "\n".join(sentence_lines(n) + extra)


def test_c4_sentence_minimum():
    assert quality.c4_filter(c4_doc([], 5), Q)[1] is None
    assert quality.c4_filter(c4_doc([], 4), Q)[1] == "c4_too_few_sentences"


def test_c4_drops_short_javascript_policy_and_long_word_lines():
    bad_lines = [
        "Home About",  # 2 words
        "Please enable JavaScript to view this site.",
        "By using this site you accept our privacy policy today.",
        "We use cookies to improve the experience of visitors.",
        "one two " + "x" * 1001,
    ]
    text, reason = quality.c4_filter(c4_doc(bad_lines + ["three words here"]), Q)
    assert reason is None
    assert text.split("\n") == sentence_lines(5) + ["three words here"]
    assert quality.c4_filter(c4_doc(["one two " + "x" * 1000]), Q)[0].endswith("x" * 1000)


def test_c4_document_rules_and_citations():
    assert quality.c4_filter(c4_doc(["Lorem ipsum dolor sit amet."]), Q)[1] == "c4_lorem_ipsum"
    assert quality.c4_filter(c4_doc(["function f() { return 1; }"]), Q)[1] == "c4_curly_bracket"
    text, _ = quality.c4_filter(c4_doc(["The river is long.[1] It is wide [citation needed]."]), Q)
    assert "[1]" not in text and "citation needed" not in text


def test_c4_terminal_punctuation_rule_is_optional():
    doc = c4_doc(["a line without an end"])
    assert "a line without an end" in quality.c4_filter(doc, Q)[0]
    on = dataclasses.replace(Q, c4_terminal_punct=True)
    assert "a line without an end" not in quality.c4_filter(doc, on)[0]


# --- FineWeb -------------------------------------------------------------------------------


def test_fineweb_punctuated_line_share():
    for punct, expected in ((12, None), (11, "fineweb_punct_lines")):
        lines = sentence_lines(100, 8, end="")
        lines = [line + "." if i < punct else line for i, line in enumerate(lines)]
        assert quality.fineweb_filter("\n".join(lines), Q) == expected


def test_fineweb_short_line_share():
    for short, expected in ((67, None), (68, "fineweb_short_lines")):
        lines = sentence_lines(100, 8)
        words = iter(uniq(400, 3))
        lines = [f"{next(words)} {next(words)} {next(words)} {next(words)}." if i < short else line
                 for i, line in enumerate(lines)]
        assert all(len(line) <= 30 for line in lines[:short])
        assert quality.fineweb_filter("\n".join(lines), Q) == expected


def test_fineweb_duplicate_line_chars():
    lines = sentence_lines(40, 8)
    for copies, expected in ((1, None), (8, "fineweb_dup_line_chars")):
        text = "\n".join(lines + [lines[0]] * copies)
        share = len(lines[0]) * copies / len(text.replace("\n", ""))
        assert (share > Q.fineweb_max_dup_line_chars) == (expected is not None)
        assert quality.fineweb_filter(text, Q) == expected


def test_fineweb_newline_ratio():
    t = dataclasses.replace(Q, fineweb_max_short_lines=1.0)  # these lines are short too
    assert quality.fineweb_filter("\n".join(sentence_lines(20, 4)), t) is None  # 19/80
    words = iter(uniq(200))
    three = [f"{next(words)} {next(words)} {next(words)}." for _ in range(20)]  # 19/60 > 0.3
    assert quality.fineweb_filter("\n".join(three), t) == "fineweb_newline_ratio"


def test_language_overrides():
    t = quality.thresholds_for(Q, "tr", ["tr:gopher_max_mean_word_len=12", "en:gopher_min_words=10"])
    assert t.gopher_max_mean_word_len == 12 and t.gopher_min_words == 50
    with pytest.raises(ConfigError):
        quality.thresholds_for(Q, "tr", ["tr:gopher_min_words"])
    with pytest.raises(ConfigError):
        quality.thresholds_for(Q, "tr", ["tr:no_such_key=1"])


# --- normalisation, PII, decontamination, steps ---------------------------------------------


def test_clean_text_and_canonical_words():
    assert clean_text("Cafe\u0301\u200b  au\u00a0lait\r\n\n\n\nnext\x07") == "Café au lait\n\nnext"
    assert canonical_words("Çay, 1953'te İstanbul'da — ÉTÉ!") == ["cay", "0000", "te", "istanbul", "da", "ete"]


def test_pii_masking():
    text, counts = mask_pii(
        "Write to ana.kaya@example.org, call +90 212 555 12 34 or (212) 555-0100. "
        "Server 93.184.216.34, router 192.168.1.1, year 1999, price 12.50, version 3.2.1."
    )
    assert "<EMAIL>" in text and text.count("<PHONE>") == 2 and "<IP>" in text
    assert "192.168.1.1" in text and "1999" in text and "12.50" in text and "3.2.1" in text
    assert counts == {"email": 1, "phone": 2, "ip": 1}


def test_decontamination_reports_items(tmp_path):
    items = [
        {"id": "q1", "question": "Which river flows through the old town of Karasu near the sea?",
         "choices": ["Aras", "Kura", "Tigris", "Volga"], "answer": "Aras"},
        {"id": "q2", "question": "How many legs does a small beetle have in total?", "answer": "six"},
        {"id": "q3", "question": "Too short?", "answer": "yes"},
    ]
    path = tmp_path / "quiz.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    index = build_index([path], n=13, min_words=8)
    assert len(index) == 2 and index.skipped_short == 1
    leaked = "Intro text. Which river flows through the OLD town of Karasu, near the sea? Aras, Kura..."
    assert [(m.benchmark, m.item) for m in index.find(leaked)] == [("quiz", "q1")]
    # The short (10-word) item is matched whole; a fragment of it is not.
    assert [m.item for m in index.find("so how many legs does a small beetle have in total? six!")] == ["q2"]
    assert index.find("how many legs does a small beetle have") == []
    docs = [Document("a", "warc", leaked, "http://x"), Document("b", "warc", "clean text here", "http://y")]
    kept, stats = Step("decontam", decontam_step, {"index": index})(docs)
    # 2 of the 5 13-grams of q1 (question + "Aras Kura") are in the page.
    assert [d.id for d in kept] == ["b"]
    assert stats.findings == [
        {"benchmark": "quiz", "item": "q1", "coverage": 0.4, "id": "a", "source": "warc", "url": "http://x"}
    ]
    with pytest.raises(InputError):
        build_index([tmp_path / "missing.jsonl"])


def test_empty_index_finds_nothing():
    assert ContaminationIndex().find("anything at all") == []


def test_step_stats_count_docs_and_bytes_per_reason():
    docs = [
        Document("1", "warc", "ok text", metadata={ORDER_KEY: 1}),
        Document("2", "books", "  \u200b ", metadata={ORDER_KEY: 2}),
        Document("3", "warc", "x" * 50, metadata={ORDER_KEY: 3}),
    ]
    kept, stats = Step("normalize", normalize_step, {"max_chars": 40})(docs)
    assert [d.id for d in kept] == ["1"]
    assert stats.removed_docs == {"empty": {"books": 1}, "too_long": {"warc": 1}}
    assert stats.removed_bytes["too_long"]["warc"] == 50
    assert stats.docs_in == {"warc": 2, "books": 1} and stats.docs_out == {"warc": 1}
    kept, stats = Step("pii", pii_step)([Document("4", "warc", "mail a@b.com now")])
    assert kept[0].text == "mail <EMAIL> now" and stats.notes["email"] == 1
    assert docs[0].text == "ok text"  # steps never mutate their input


def test_data_config_defaults_follow_reference():
    cfg = DataConfig()
    assert (cfg.minhash_bands, cfg.minhash_rows, cfg.minhash_ngram, cfg.decontam_ngram) == (14, 8, 5, 13)
    assert cfg.languages == ["en", "tr"] and cfg.langid_threshold == 0.65


@pytest.mark.parametrize("override", ["data.minhash_bands=0", "data.langid_threshold=1.5",
                                      "data.languages=", "data.partitions=0"])
def test_bad_data_config_is_a_config_error(override):
    from chatforge.config import load_config

    with pytest.raises(ConfigError, match="data."):
        load_config("cpu", [override])
