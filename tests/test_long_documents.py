"""Documents over `data.max_doc_chars` are split at chapters, sections, paragraphs, lines; not dropped."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
from conftest import shared_file
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from chatforge.cli import app
from chatforge.config import CorpusConfig, DataConfig
from chatforge.corpus.web import article
from chatforge.corpus.world import World
from chatforge.data.clean import run_data
from chatforge.data.document import Document
from chatforge.data.normalize import clean_text
from chatforge.data.sources.books import BooksSource, strip_gutenberg, unwrap
from chatforge.data.split import (
    MIN_SECTION_CHARS,
    PIECE_CHARS,
    heading_pattern,
    sections,
    split_text,
)
from chatforge.data.steps import MAX_PARTS, ORDER_KEY, Step, normalize_step, order_key

WORDS = "river stone light garden window letter morning silver quiet harbour field song".split()


def _paragraph(rng: random.Random, sentences: int = 6) -> str:
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
        for _ in range(sentences)
    )


def _chapter(rng: random.Random, heading: str, paragraphs: int = 8) -> str:
    return heading + "\n\n" + "\n\n".join(_paragraph(rng) for _ in range(paragraphs))


def _words(texts: list[str]) -> list[str]:
    return " ".join(texts).split()


def test_book_splits_at_chapters_and_contents_joins_the_first():
    rng = random.Random(0)
    headings = [f"CHAPTER {n}. The {rng.choice(WORDS).title()}" for n in range(1, 9)]
    contents = "Contents\n\n" + "\n".join(headings)
    book = "\n\n".join([contents] + [_chapter(rng, h) for h in headings])
    limit = len(book) // 3
    pieces, unsplittable = split_text(book, limit, "books")
    assert unsplittable == [] and len(pieces) == 8
    assert all(len(p) <= limit for p in pieces)
    assert pieces[0].startswith("Contents") and pieces[0].count("CHAPTER 1.") == 2
    assert [p.split("\n", 1)[0] for p in pieces[1:]] == headings[1:]
    assert _words(pieces) == book.split()  # nothing lost, nothing reordered


def test_turkish_roman_and_word_headings_cut_but_prose_mentions_do_not():
    rng = random.Random(1)
    for headings in (["BÖLÜM 1", "BÖLÜM 2", "BÖLÜM 3"], ["1. Bölüm", "2. Bölüm", "3. Bölüm"],
                     ["I.", "II.", "III."], ["Chapter One", "Chapter Two", "EPILOGUE"]):
        book = "\n\n".join(_chapter(rng, h) for h in headings)
        pieces, _ = split_text(book, len(book) - 1, "books")
        assert [p.split("\n", 1)[0] for p in pieces] == headings
    # A paragraph that starts like a heading but reads on is prose, and so is a heading word
    # in the middle of a paragraph.
    prose = "\n\n".join(
        [_paragraph(rng), "Chapter 5 of the law says little more about it.", _paragraph(rng),
         _paragraph(rng) + "\nCHAPTER 9.\n" + _paragraph(rng)] * 20
    )
    assert len(sections(prose, heading_pattern("books"))) == 1


def test_long_chapter_packs_paragraphs_then_lines_under_the_limit():
    rng = random.Random(2)
    paragraphs = [_paragraph(rng) for _ in range(40)]
    text = "\n\n".join(paragraphs)
    limit = 3 * max(len(p) for p in paragraphs)
    pieces, bad = split_text(text, limit, "jsonl")
    assert bad == [] and all(len(p) <= limit for p in pieces) and len(pieces) < len(paragraphs)
    assert "\n\n".join(pieces) == text  # cuts fall on paragraph boundaries only
    huge = "\n\n".join(_paragraph(rng) for _ in range(1000))  # several PIECE_CHARS
    pieces, _ = split_text(huge, 10 * len(huge), "jsonl")
    assert pieces == [huge]  # not a book: under the limit it stays whole
    pieces, _ = split_text(huge, len(huge) - 1, "jsonl")
    fewest = -(-len(huge) // PIECE_CHARS)
    assert fewest <= len(pieces) <= fewest + 1 and max(map(len, pieces)) <= PIECE_CHARS  # Gopher-safe
    assert split_text(huge, 10 * len(huge), "books")[0] == pieces  # books are always cut
    lines = "\n".join(_paragraph(rng, 1) for _ in range(300))  # one sentence a line, no blank lines
    pieces, bad = split_text(lines, 2000, "text")
    assert bad == [] and "\n".join(pieces) == lines and all(len(p) <= 2000 for p in pieces)


def test_papers_split_at_section_headings():
    rng = random.Random(3)
    heads = ["Abstract", "1 Introduction", "2 Related Work", "3.1 Results", "References"]
    paper = "\n\n".join(_chapter(rng, h, 4) for h in heads)
    pieces, _ = split_text(paper, len(paper) - 1, "papers")
    assert [p.split("\n", 1)[0] for p in pieces] == heads


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(1, 400), min_size=1, max_size=6), min_size=1, max_size=30),
    st.integers(50, 2000),
    st.sampled_from(["books", "papers", "text"]),
)
def test_pieces_never_exceed_the_limit_and_keep_every_word(shape, limit, source):
    """Any text: pieces are within the limit, and pieces + unsplittable parts hold every word."""
    rng = random.Random(len(shape) * 7919 + limit)
    text = "\n\n".join(
        "\n".join(" ".join(rng.choice(WORDS) for _ in range(max(1, n // 6))) for n in para)
        for para in shape
    )
    pieces, bad = split_text(text, limit, source)
    assert all(len(p) <= limit for p in pieces)
    assert sorted(_words(pieces + bad)) == sorted(text.split())
    assert all(len(b) > limit and "\n" not in b for b in bad)


def test_normalize_step_pieces_keep_id_metadata_source_and_get_their_own_order_keys():
    rng = random.Random(4)
    book = "\n\n".join(_chapter(rng, f"CHAPTER {n}.") for n in range(1, 6))
    giant = "x" * 5000  # one line that no boundary can split
    docs = [
        Document("b1", "books", book, "/books/b1.txt", {"author": "A", ORDER_KEY: order_key(0, 0)}),
        Document("t1", "text", _paragraph(rng) + "\n\n" + giant, "/t1.txt", {ORDER_KEY: order_key(0, 1)}),
        Document("m1", "code", giant, "/min.js", {ORDER_KEY: order_key(0, 2)}),
        Document("s1", "books", "short", "/s.txt", {ORDER_KEY: order_key(0, 3)}),
    ]
    kept, stats = Step("normalize", normalize_step, {"max_chars": 4000})(docs)
    chapters = [d for d in kept if d.metadata.get("parent_id") == "b1"]
    assert len(chapters) == 5 and all(len(d.text) <= 4000 for d in kept)
    assert [d.id for d in chapters] == [f"b1#part{i:04d}" for i in range(5)]
    assert all(d.source == "books" and d.url == "/books/b1.txt" and d.metadata["author"] == "A"
               and d.metadata["parts"] == 5 for d in chapters)
    orders = [d.metadata[ORDER_KEY] for d in kept]
    assert len(set(orders)) == len(orders) and orders == sorted(orders)
    assert max(orders) < order_key(0, 3) + MAX_PARTS
    assert [d.id for d in kept if d.source == "text"] == ["t1#part0000"]  # the prose survives
    assert stats.removed_docs == {"too_long": {"text": 1, "code": 1}}
    assert stats.notes["split_documents"] == 2 and stats.notes["pieces"] == 6
    assert stats.docs_in == {"books": 2, "text": 1, "code": 1}
    assert stats.docs_out == {"books": 6, "text": 1}


def test_dedup_and_decontam_see_the_pieces(tmp_path: Path):
    """A chapter shared by two long books is an exact duplicate piece; the rest of each survives."""
    world = World.build(0, CorpusConfig())
    rng = random.Random(0)
    chapters = ["\n\n".join(p for e in world.entities[3 * i : 3 * i + 3] for p in article(world, e, "en", rng))
                for i in range(5)]
    assert min(map(len, chapters)) > MIN_SECTION_CHARS
    question = ("Which of the quiet harbours beside the silver river was the first one to open its "
                "old stone gates to travellers in the morning?")
    chapters[1] += "\n\n" + question + " The north harbour, they say."
    quiz = tmp_path / "quiz.jsonl"
    quiz.write_text(json.dumps({"id": "q1", "question": question, "answer": "the north harbour"}) + "\n")
    shared = "CHAPTER 3.\n\n" + chapters[4]
    one = "\n\n".join([f"CHAPTER {i + 1}.\n\n{c}" for i, c in enumerate(chapters[:2])] + [shared])
    two = "\n\n".join([f"CHAPTER {i + 1}.\n\n{c}" for i, c in enumerate(chapters[2:4])] + [shared])
    for name, text in (("one", one), ("two", two)):
        (tmp_path / f"{name}.txt").write_text(text)
    limit = max(len(one), len(two)) // 2
    cfg = DataConfig(workers=1, max_doc_chars=limit, pii_masking=False)
    funnel = run_data([f"books:{tmp_path}/*.txt"], tmp_path / "out", cfg, decontam_sets=[quiz])
    assert funnel["total"]["read"]["docs"] == 2 and funnel["notes"]["normalize"]["pieces"] == 6
    assert funnel["removed"]["exact_dedup"]["exact_duplicate"]["docs"] == 1
    assert [f["id"].rsplit("#", 1)[1] for f in funnel["contamination"]] == ["part0001"]
    rows = [r for p in sorted((tmp_path / "out").glob("documents-*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(rows) == 4 and all(len(r["text"]) <= limit for r in rows)
    assert len({json.loads(r["metadata"])["parent_id"] for r in rows}) == 2


def test_unwrap_joins_hard_wrapped_prose_and_keeps_verse():
    rng = random.Random(5)
    words = _paragraph(rng, 8).split()
    lines, line = [], ""
    for w in words:  # wrap at 70 columns, as Project Gutenberg does
        if len(line) + len(w) + 1 > 70:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    verse = "Short line one,\nand two,\nand three."
    text = "\n".join(lines) + "\n\n\n" + verse
    assert unwrap(text) == " ".join(lines) + "\n\n" + verse


def _survival(tmp_path: Path, book: Path, *overrides: str) -> tuple[int, int, int, int]:
    """(chars in the output, chars of the book's body, pieces out, longest piece) via the CLI."""
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["data", "--source", f"books:{book}", "--out", str(out),
                                      "--workers", "1", "pii_masking=false", *overrides])
    assert result.exit_code == 0, result.output
    body = clean_text(next(BooksSource(str(book)).iter_documents()).text)
    texts = [t for p in out.glob("documents-*.parquet") for t in pq.read_table(p).column("text").to_pylist()]
    return sum(map(len, texts)), len(body), len(texts), max(map(len, texts))


def test_gutenberg_novel_comes_out_as_chapters(tmp_path: Path):
    """Pride and Prejudice (721k chars, 122k words: one document would fail Gopher's 100k-word
    rule): 61 chapters, ~all of the body; with a 200k limit the same, no piece over it."""
    path = shared_file("gutenberg", "pg1342.txt")
    out_chars, body_chars, pieces, longest = _survival(tmp_path, path)
    assert pieces >= 55 and out_chars >= 0.98 * body_chars
    out_chars, body_chars, pieces, longest = _survival(tmp_path, path, "max_doc_chars=200000")
    assert pieces >= 55 and longest <= 200_000
    assert out_chars >= 0.98 * body_chars  # lost: chapter headings and illustration tags (C4 lines)
    raw = path.read_text(encoding="utf-8-sig")
    assert body_chars < 0.97 * len(raw)  # the licence header and footer are gone


def test_book_over_the_default_limit_is_not_dropped(tmp_path: Path):
    """A 1 MB book (three real bodies in one Gutenberg frame) at the default 1,000,000 chars."""
    frame = shared_file("gutenberg", "pg1342.txt").read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    bodies = [strip_gutenberg(shared_file("gutenberg", f"{n}.txt").read_text(encoding="utf-8-sig")
                              .replace("\r\n", "\n"))[0] for n in ("pg1342", "pg11", "pg1513")]
    own = bodies[0]
    start = frame.index(own[:200])
    book = tmp_path / "big.txt"
    book.write_text(frame[:start] + "\n\n".join(bodies) + frame[start + len(own):], encoding="utf-8")
    out_chars, body_chars, pieces, longest = _survival(tmp_path, book)
    assert body_chars > DataConfig().max_doc_chars and longest <= DataConfig().max_doc_chars
    assert pieces >= 90 and out_chars >= 0.95 * body_chars  # the play loses a few scenes to Gopher

