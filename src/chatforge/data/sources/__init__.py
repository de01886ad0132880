"""Readers that stream raw inputs as `Document`s, and `open_source` for "kind:path" specs.

Every reader is a `Source`: iterate `iter_documents()` (it streams, one record at a time);
records that cannot be read are skipped and counted in `.skipped` by reason, never raised.
A missing path or unknown kind raises `InputError` when the source is opened.
"""

from __future__ import annotations

from chatforge.data.sources.base import Source
from chatforge.data.sources.books import BooksSource
from chatforge.data.sources.code import CodeSource
from chatforge.data.sources.hf import HfSource
from chatforge.data.sources.html import HtmlSource
from chatforge.data.sources.papers import PapersSource
from chatforge.data.sources.tabular import TabularSource
from chatforge.data.sources.warc import WarcSource, WatSource
from chatforge.data.sources.wiki import WikiSource
from chatforge.errors import InputError

__all__ = [
    "KINDS",
    "BooksSource",
    "CodeSource",
    "HfSource",
    "HtmlSource",
    "PapersSource",
    "Source",
    "TabularSource",
    "WarcSource",
    "WatSource",
    "WikiSource",
    "open_source",
    "parse_spec",
]

# Kinds whose spec may end in ":FIELD" (the text column; for text:, the split mode).
_WITH_FIELD = {"jsonl", "json", "parquet", "text", "hf"}
KINDS = (
    "warc",
    "wet",
    "wat",
    "wiki",
    "books",
    "code",
    "papers",
    "html",
    "jsonl",
    "json",
    "parquet",
    "text",
    "hf",
)


def _split_field(rest: str) -> tuple[str, str | None]:
    """'data/x.jsonl:content' -> ('data/x.jsonl', 'content'); a bare path has no field."""
    path, sep, field = rest.rpartition(":")
    if not sep or not path or "/" in field or "*" in field or "." in field:
        return rest, None
    return path, field


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """'jsonl:data/*.jsonl:body' -> ('jsonl', 'data/*.jsonl', 'body'), the kind checked."""
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or not rest:
        raise InputError(f"source '{spec}': expected KIND:PATH with KIND one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise InputError(
            f"source '{spec}': unknown source type '{kind}' (known: {', '.join(KINDS)})"
        )
    if kind in _WITH_FIELD:
        path, field = _split_field(rest)
        return kind, path, field
    return kind, rest, None


def open_source(spec: str, *, extractor: str = "resiliparse") -> Source:
    """A Source from 'kind:PATH' ('jsonl:PATH:FIELD', 'hf:NAME:FIELD', globs allowed)."""
    kind, rest, field = parse_spec(spec)
    if kind in ("warc", "wet"):
        return WarcSource(rest, extractor=extractor, kind=kind)
    if kind == "wat":
        return WatSource(rest)
    if kind == "wiki":
        return WikiSource(rest)
    if kind == "books":
        return BooksSource(rest)
    if kind == "code":
        return CodeSource(rest)
    if kind == "papers":
        return PapersSource(rest)
    if kind == "html":
        return HtmlSource(rest, extractor=extractor)
    if kind == "hf":
        return HfSource(rest, field=field or "text")
    if kind == "text":
        return TabularSource(rest, kind="text", split=field or "file")
    return TabularSource(
        rest, kind="parquet" if kind == "parquet" else "jsonl", field=field or "text"
    )
