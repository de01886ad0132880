"""Fuzzing every reader with truncation, inserted garbage and random bytes.

What must hold for any damage: no exception escapes the reader, and a record that is not
kept is accounted for (the source counted at least one skip). Where the format can
resynchronise (JSONL and text lines, WARC records, gzip members), every record the damage
did not touch is kept too.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chatforge.data.sources import open_source

MARK = re.compile(r"marker(\d{3})x")


def words(i: int) -> str:
    return f"Record marker{i:03d}x tells of rivers, hills and the people who live there."


@dataclass
class Built:
    """Files of one source: name -> bytes, and per file the byte span of each record (when
    the format can resynchronise after damage; None where damage may end the file)."""

    files: dict[str, bytes]
    spans: dict[str, list[tuple[int, int, int]] | None]  # file -> [(start, end, record)]
    spec: str  # with {dir} for the directory


def _lines(n: int, line: Callable[[int], bytes], suffix: str, spec: str) -> Built:
    data, spans = b"", []
    for i in range(n):
        piece = line(i) + b"\n"
        spans.append((len(data), len(data) + len(piece), i))
        data += piece
    return Built({f"a{suffix}": data}, {f"a{suffix}": spans}, spec)


def wet_record(i: int) -> bytes:
    body = words(i).encode()
    head = (
        "WARC/1.0\r\nWARC-Type: conversion\r\n"
        f"WARC-Target-URI: https://example.org/{i}\r\nWARC-Record-ID: <urn:uuid:{i:08d}>\r\n"
        f"WARC-Date: 2024-01-01T00:00:00Z\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body + b"\r\n\r\n"


def build_wet(n: int, gz: bool) -> Built:
    data, spans = b"", []
    for i in range(n):
        piece = gzip.compress(wet_record(i)) if gz else wet_record(i)
        spans.append((len(data), len(data) + len(piece), i))
        data += piece
    name = "a.warc.wet.gz" if gz else "a.warc"
    return Built({name: data}, {name: spans}, "wet:{dir}/" + name)


def build_wiki(n: int, compress: bool) -> Built:
    pages = "".join(
        f"<page><title>P{i}</title><ns>0</ns><id>{i + 1}</id><revision><id>{i + 1}</id>"
        f"<text>{words(i)} More text follows here.</text></revision></page>"
        for i in range(n)
    )
    xml = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/"><siteinfo><dbname>xxwiki'
           f"</dbname></siteinfo>{pages}</mediawiki>").encode()
    name = "dump.xml.bz2" if compress else "dump.xml"
    return Built({name: bz2.compress(xml) if compress else xml}, {name: None}, "wiki:{dir}/" + name)


def build_files(n: int, suffix: str, kind: str, body: Callable[[int], bytes]) -> Built:
    """One record per file: damage to one file must not cost the others."""
    files = {f"f{i:03d}{suffix}": body(i) for i in range(n)}
    return Built(files, {name: None for name in files}, kind + ":{dir}")


def _tex(i: int) -> bytes:
    return ("\\documentclass{article}\\begin{document}\\section{Intro}" + words(i) * 3
            + "\\end{document}\n").encode()


def _code(i: int) -> bytes:
    return (f'def function_{i}(x):\n    """{words(i)}"""\n    return x + {i}\n' * 3).encode()


def build_json_list(n: int) -> Built:
    data = json.dumps([{"text": words(i), "id": i} for i in range(n)]).encode()
    return Built({"a.json": data}, {"a.json": None}, "json:{dir}/a.json")


def build_parquet(n: int) -> Built:
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": [words(i) for i in range(n)]}), buf, row_group_size=2)
    return Built({"a.parquet": buf.getvalue()}, {"a.parquet": None}, "parquet:{dir}/a.parquet")


def build_gz_jsonl(n: int) -> Built:
    data = gzip.compress(b"".join(json.dumps({"text": words(i)}).encode() + b"\n" for i in range(n)))
    return Built({"a.jsonl.gz": data}, {"a.jsonl.gz": None}, "jsonl:{dir}/a.jsonl.gz")


FORMATS: dict[str, Callable[[int], Built]] = {
    "jsonl": lambda n: _lines(n, lambda i: json.dumps({"text": words(i)}).encode(), ".jsonl",
                              "jsonl:{dir}/a.jsonl"),
    "jsonl.gz": build_gz_jsonl,
    "text-lines": lambda n: _lines(n, lambda i: words(i).encode(), ".txt", "text:{dir}/a.txt:line"),
    "wet": lambda n: build_wet(n, gz=False),
    "wet.gz": lambda n: build_wet(n, gz=True),
    "wiki": lambda n: build_wiki(n, compress=False),
    "wiki.bz2": lambda n: build_wiki(n, compress=True),
    "books": lambda n: build_files(n, ".txt", "books", lambda i: (words(i) + "\n\n") .encode() * 4),
    "code": lambda n: build_files(n, ".py", "code", _code),
    "papers": lambda n: build_files(n, ".tex", "papers", _tex),
    "text": lambda n: build_files(n, ".txt", "text", lambda i: words(i).encode()),
    "json": build_json_list,
    "parquet": build_parquet,
}


# Plain text has no framing: a cut in it leaves a shorter text, garbage in it is still text.
PLAIN = {"text-lines", "text", "books", "code", "papers"}


def damage(data: bytes, how: str, at: int, garbage: bytes) -> bytes:
    if how == "truncate":
        return data[:at]
    if how == "insert":
        return data[:at] + garbage + data[at:]
    return garbage * (1 + len(data) // max(1, len(garbage)))  # the whole file random bytes


def read(directory: Path, spec: str) -> tuple[set[int], int, int]:
    """(records whose marker survived, documents, skips counted)."""
    source = open_source(spec.format(dir=directory))
    kept: set[int] = set()
    docs = 0
    for doc in source:
        docs += 1
        kept.update(int(m) for m in MARK.findall(doc.text))
    return kept, docs, sum(source.skipped.values())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(sorted(FORMATS)),
    n=st.integers(3, 6),
    how=st.sampled_from(["truncate", "insert", "random"]),
    where=st.floats(0, 1),
    garbage=st.binary(min_size=1, max_size=48),
    victim=st.integers(0, 100),
)
# A space inside "WARC-Type: conversion" left a record of type "con version", passed over uncounted.
@example(kind="wet", n=3, how="insert", where=0.03125, garbage=b" ", victim=0)
def test_damaged_inputs_are_kept_or_counted(tmp_path_factory, kind, n, how, where, garbage, victim):
    built = FORMATS[kind](n)
    directory = tmp_path_factory.mktemp(kind)
    names = sorted(built.files)
    target = names[victim % len(names)]
    original = built.files[target]
    at = max(1, int(where * len(original)))  # an empty file is empty, not damaged
    for name, data in built.files.items():
        (directory / name).write_bytes(damage(data, how, at, garbage) if name == target else data)

    kept, docs, skipped = read(directory, built.spec)  # must not raise

    every = set(range(n))
    assert kept <= every
    # Records in files the damage did not touch are all kept.
    for name in names:
        if name != target and len(names) > 1:
            assert int(name[1:4]) in kept, (kind, name)
    spans = built.spans[target]
    if spans is not None and how != "random":
        # Resynchronising formats: a record the damage did not touch is kept.
        # Garbage inserted where a record starts runs into its first line: that one is touched.
        touched = {i for start, end, i in spans if start <= at < end or (how == "truncate" and at < end)}
        assert every - touched <= kept, (kind, how, at, sorted(kept))
    # Accounting, by documents (garbage inside a record's text may leave it kept, damaged).
    if (len(names) > 1 and how != "random") or (spans is not None and how == "insert"):
        # Each file, or each record of a framed stream, becomes a document or a counted skip.
        assert docs + skipped >= n, (kind, how, at, docs, skipped)
    # A cut between two records (in the separator after one) looks like a shorter file:
    # nothing to count; and a cut plain text is a shorter text.
    clean_cut = how == "truncate" and (
        kind in PLAIN or any(end - 4 <= at <= end for _, end, _ in spans or [])
    )
    if docs < n and not clean_cut and how != "random":  # random bytes hold no records
        assert skipped >= 1, (kind, how, at, docs)


@settings(max_examples=10, deadline=None)
@given(kind=st.sampled_from(sorted(FORMATS)))
def test_undamaged_inputs_keep_every_record(tmp_path_factory, kind):
    built = FORMATS[kind](4)
    directory = tmp_path_factory.mktemp(kind)
    for name, data in built.files.items():
        (directory / name).write_bytes(data)
    kept, _, skipped = read(directory, built.spec)
    assert (kept, skipped) == (set(range(4)), 0)
