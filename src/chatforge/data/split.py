"""Split a document too long for one record into pieces under the limit, at natural boundaries.

A whole novel (1.2 MB for Moby Dick) or a plain-text dump is one input file, and dropping it
for its length loses all of it. Pieces are cut at the strongest boundary the text has: books at
chapter headings ("CHAPTER 1.", "Chapter IV", "BÖLÜM 3", "2. Bölüm", a roman numeral alone on a
line, "EPILOGUE"), papers at section headings ("3.1 Results", "References"), then, inside a
section still over the limit and for every other source, at paragraphs (blank lines), then at
lines; each level packs its units greedily into pieces of at most `PIECE_CHARS` (or `limit`,
if lower) characters. Books are cut at their chapters even when under the limit. A heading
only counts at the start of a paragraph, and a run of short sections (a table of contents, a
title page, a dedication) joins the section that follows it, so pieces are chapters, not the
lines of the contents list. What no boundary can bring under the limit (one gigantic line, a
minified file) is returned apart, for the caller to drop and count.
"""

from __future__ import annotations

import re

# Sections shorter than this join the next one (contents lists, title pages, part titles).
MIN_SECTION_CHARS = 1000
# Packed pieces hold at most this many characters (or the limit, if lower): about 17k English
# words. Gopher's quality rule removes documents of over 100,000 words (~600k characters), so
# pieces packed up to the 1M limit would be cut only to be dropped.
PIECE_CHARS = 100_000
# Sources whose documents are always cut at their sections, whatever their length: a whole
# novel is one file of often more than 100,000 words, which Gopher's rule would drop, and its
# chapters are the units a reader, a deduplicator and a training window see.
ALWAYS_SECTIONED = frozenset({"books"})

_NUMBER = (
    r"(?:\d{1,4}|[IVXLCDM]{1,8}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|first|second|third|"
    r"fourth|fifth|last)"
)
_CHAPTER_WORD = (
    r"(?:chapter|book|part|act|scene|canto|volume|kapitel|teil|chapitre|livre|cap[ií]tulo|"
    r"capitolo|hoofdstuk|rozdzia[lł]|глава|часть|b[öo]l[üu]m|k[ıi]s[ıi]m|kitap|perde)"
)
_OPENER_WORD = (
    r"(?:prologue|epilogue|preface|foreword|introduction|afterword|appendix|conclusion|"
    r"[öo]ns[öo]z|sons[öo]z|giri[şs]|pr[ée]face|vorwort|nachwort)"
)
_TAIL = r"(?:\s*[.:\-–—)\]]\s*.{0,80})?"  # an optional title after punctuation: "1. Loomings."
_BOOK_HEADING = re.compile(
    rf"^(?:{_CHAPTER_WORD}\s+{_NUMBER}{_TAIL}|{_NUMBER}\.?\s+{_CHAPTER_WORD}{_TAIL}"
    rf"|[IVXLCDM]{{1,8}}\.?|{_OPENER_WORD}{_TAIL})$",
    re.IGNORECASE,
)
_PAPER_HEADING = re.compile(
    r"^(?:\d{1,2}(?:\.\d{1,2}){0,3}\.?\s+[A-Z][^\n]{0,80}|(?:[IVX]{1,5}\.|[A-H]\.)\s+[A-Z][^\n]{0,80}"
    r"|abstract|introduction|related work|background|methods?|methodology|experiments?|results|"
    r"discussion|conclusions?|references|bibliography|acknowledge?ments?|appendix[^\n]{0,60})$",
    re.IGNORECASE,
)
_HEADINGS = {"books": _BOOK_HEADING, "papers": _PAPER_HEADING}


def heading_pattern(source: str) -> re.Pattern[str] | None:
    """The section-heading pattern of a source kind (None: the source has no sections)."""
    return _HEADINGS.get(source)


def sections(text: str, heading: re.Pattern[str]) -> list[str]:
    """The text cut before every heading that opens a paragraph; short runs join the next."""
    lines = text.split("\n")
    starts = [0]
    offset = 0
    for i, line in enumerate(lines):
        opens_paragraph = i == 0 or not lines[i - 1].strip()
        if offset and opens_paragraph and len(line) <= 120 and heading.match(line.strip()):
            starts.append(offset)
        offset += len(line) + 1
    bounds = [*starts, len(text) + 1]
    raw = [text[a : b - 1].strip() for a, b in zip(bounds, bounds[1:], strict=False)]
    merged: list[str] = []
    pending = ""
    for part in filter(None, raw):
        pending = f"{pending}\n\n{part}" if pending else part
        if len(part) >= MIN_SECTION_CHARS:  # short ones wait for the next long one
            merged.append(pending)
            pending = ""
    if pending:  # a short tail (an end note) stays with the last section
        if merged:
            merged[-1] = f"{merged[-1]}\n\n{pending}"
        else:
            merged.append(pending)
    return merged


def pack(units: list[str], sep: str, limit: int) -> list[str]:
    """Consecutive units joined by `sep` into as few pieces of at most `limit` chars as greedy fills."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        extra = len(unit) + (len(sep) if current else 0)
        if current and size + extra > limit:
            pieces.append(sep.join(current))
            current, size = [], 0
            extra = len(unit)
        current.append(unit)
        size += extra
    if current:
        pieces.append(sep.join(current))
    return pieces


def _fit(text: str, target: int, limit: int, levels: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(pieces packed to `target`, in order; parts that no boundary in `levels` brings under `limit`)."""
    if len(text) <= target:
        return [text], []
    if not levels:
        return ([text], []) if len(text) <= limit else ([], [text])
    sep, rest = levels[0], levels[1:]
    units = [u for u in text.split(sep) if u.strip()]
    if len(units) <= 1:
        return _fit(text, target, limit, rest)
    fitting: list[str] = []
    pieces: list[str] = []
    unsplittable: list[str] = []
    for unit in units:
        if len(unit) <= target:
            fitting.append(unit)
            continue
        pieces += pack(fitting, sep, target)
        fitting = []
        sub, bad = _fit(unit, target, limit, rest)
        pieces += sub
        unsplittable += bad
    pieces += pack(fitting, sep, target)
    return pieces, unsplittable


def split_text(text: str, limit: int, source: str = "") -> tuple[list[str], list[str]]:
    """(pieces of at most `limit` chars, in order; parts that cannot be split under it).

    Text under the limit comes back whole, except books (`ALWAYS_SECTIONED`). Books and papers
    are cut at their sections first, each section its own piece; a section still too long, and
    any other text, packs paragraphs, then lines, into pieces of at most `PIECE_CHARS`.
    """
    if limit < 1:
        raise ValueError(f"split limit must be positive, got {limit}")
    if len(text) <= limit and source not in ALWAYS_SECTIONED:
        return [text], []
    heading = heading_pattern(source)
    parts = sections(text, heading) if heading else [text]
    pieces: list[str] = []
    unsplittable: list[str] = []
    for part in parts:
        sub, bad = _fit(part, min(limit, PIECE_CHARS), limit, ("\n\n", "\n"))
        pieces += sub
        unsplittable += bad
    return pieces, unsplittable
