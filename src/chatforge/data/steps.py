"""Cleaning steps: pure functions over a batch of documents, with per-source statistics.

A step function takes a list of Documents (plus its parameters) and returns a `StepOutput`:
the documents kept (possibly with rewritten text), the documents removed with a reason, and
counters. `Step` wraps one with its parameters, so it pickles to a process pool or a Ray
worker alike, and turns the output into `StepStats`: documents and bytes per source in, out,
and removed per reason. Executors only decide where steps run; they never change what a step
does, which is why the local and Ray executors give the same output.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chatforge.config import DataConfig
from chatforge.data import quality
from chatforge.data.decontam import ContaminationIndex
from chatforge.data.document import Document
from chatforge.data.normalize import clean_text
from chatforge.data.pii import mask_pii
from chatforge.data.split import pack, split_text

LANGUAGE_KEY = "language"  # metadata key holding the detected (or the code's) language
ORDER_KEY = "_order"  # metadata key of the global order used to pick cluster survivors
# The low bits of an order key number the pieces of a document split for its length, so each
# piece has its own key and pieces sort right after one another, before the next document.
PART_BITS = 12
MAX_PARTS = 1 << PART_BITS


def order_key(task: int, position: int) -> int:
    """The order key of a read task's document at `position` (its pieces add 0..MAX_PARTS-1)."""
    return ((task << 32) | position) << PART_BITS


def nbytes(doc: Document) -> int:
    return len(doc.text.encode("utf-8"))


@dataclass
class StepOutput:
    kept: list[Document]
    removed: list[tuple[Document, str]] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StepStats:
    """Documents and bytes per source going in and out of a step, and removed per reason."""

    step: str
    docs_in: Counter[str] = field(default_factory=Counter)
    bytes_in: Counter[str] = field(default_factory=Counter)
    docs_out: Counter[str] = field(default_factory=Counter)
    bytes_out: Counter[str] = field(default_factory=Counter)
    removed_docs: dict[str, Counter[str]] = field(default_factory=dict)  # reason -> source -> n
    removed_bytes: dict[str, Counter[str]] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # time spent in the step (summed over batches and workers)
    # (reason, (id, source, url)) of each removed document; drained by the worker into a log.
    removed_log: list[tuple[str, tuple[str, str, str]]] = field(default_factory=list)

    def merge(self, other: StepStats) -> StepStats:
        for name in ("docs_in", "bytes_in", "docs_out", "bytes_out", "notes"):
            getattr(self, name).update(getattr(other, name))
        for name in ("removed_docs", "removed_bytes"):
            mine = getattr(self, name)
            for reason, counts in getattr(other, name).items():
                mine.setdefault(reason, Counter()).update(counts)
        self.findings.extend(other.findings)
        self.seconds += other.seconds
        return self


@dataclass(frozen=True)
class Step:
    """A named step function with its parameters; calling it returns (kept, stats)."""

    name: str
    fn: Callable[..., StepOutput]
    params: dict[str, Any] = field(default_factory=dict)

    def __call__(self, docs: list[Document]) -> tuple[list[Document], StepStats]:
        start = time.perf_counter()
        out = self.fn(docs, **self.params)
        stats = StepStats(self.name, notes=out.notes, findings=out.findings,
                          seconds=time.perf_counter() - start)
        for d in docs:
            stats.docs_in[d.source] += 1
            stats.bytes_in[d.source] += nbytes(d)
        for d in out.kept:
            stats.docs_out[d.source] += 1
            stats.bytes_out[d.source] += nbytes(d)
        for d, reason in out.removed:
            stats.removed_docs.setdefault(reason, Counter())[d.source] += 1
            stats.removed_bytes.setdefault(reason, Counter())[d.source] += nbytes(d)
            stats.removed_log.append((reason, (d.id, d.source, d.url)))
        return out.kept, stats


def _with_text(doc: Document, text: str) -> Document:
    return doc if text == doc.text else dataclasses.replace(doc, text=text)


def _prose(doc: Document, skip_sources: tuple[str, ...]) -> bool:
    return doc.source not in skip_sources


def _judge(out: StepOutput, doc: Document, reason: str | None) -> None:
    """Keep the document, or remove it for `reason`."""
    if reason:
        out.removed.append((doc, reason))
    else:
        out.kept.append(doc)


# --- step functions -------------------------------------------------------------------------


def _pieces(doc: Document, texts: list[str]) -> list[Document]:
    """Documents for the pieces of `doc`: its id with a part suffix, its metadata and source."""
    order = doc.metadata.get(ORDER_KEY)
    out = []
    for part, text in enumerate(texts):
        meta = {**doc.metadata, "parent_id": doc.id, "part": part, "parts": len(texts)}
        if order is not None:
            meta[ORDER_KEY] = order + part
        out.append(dataclasses.replace(doc, id=f"{doc.id}#part{part:04d}", text=text, metadata=meta))
    return out


def normalize_step(docs: list[Document], form: str = "NFC", max_chars: int = 1_000_000) -> StepOutput:
    """Unicode-normalise and tidy whitespace; split books and documents over `max_chars`.

    Pieces follow `chatforge.data.split` (books at chapters whatever their length, papers at
    sections, the rest at paragraphs, then lines). Notes count the documents split and the
    pieces made; a part no
    boundary brings under the limit is removed as "too_long" (one per document that had any).
    """
    out = StepOutput([])
    for d in docs:
        text = clean_text(d.text, form)
        if not text:
            out.removed.append((d, "empty"))
            continue
        texts, unsplittable = split_text(text, max_chars, d.source)
        if texts == [text]:  # one piece: the document as it was
            out.notes["changed"] += text != d.text
            out.kept.append(_with_text(d, text))
            continue
        if len(texts) > MAX_PARTS:  # thousands of short chapters: pack them, still at chapters
            texts = pack(texts, "\n\n", max_chars)
        if len(texts) > MAX_PARTS:  # more pieces than order keys can number
            texts, unsplittable = [], [text]
        if unsplittable:
            out.removed.append((_with_text(d, "\n".join(unsplittable)), "too_long"))
        if texts:
            out.notes["split_documents"] += 1
            out.notes["pieces"] += len(texts)
            out.kept += _pieces(d, texts)
    return out


def without_names(text: str, min_words: int = 8) -> str:
    """The text with capitalised words dropped, for language identification.

    Names carry no evidence of the language they are written in, and a page dense with
    foreign-looking names (the built-in world's are Turkish-like) fools character n-gram
    models: lingua calls such English pages Tagalog with confidence 0.99. Lowercase words
    keep the function words that decide the language; if too few remain, the text is used
    as it is.
    """
    kept = [w for w in text.split() if not w[:1].isupper()]
    return " ".join(kept) if len(kept) >= min_words else text


def language_step(
    docs: list[Document], keep: tuple[str, ...], threshold: float, skip_sources: tuple[str, ...],
) -> StepOutput:
    """Detect each prose document's language; keep listed languages above the threshold."""
    from chatforge.data.langid import detect_batch

    out = StepOutput([])
    prose = [d for d in docs if _prose(d, skip_sources)]
    texts = [without_names(d.text) for d in prose]
    detected = dict(zip((id(d) for d in prose), detect_batch(texts), strict=True))
    for d in docs:
        if id(d) not in detected:
            lang = d.metadata.get(LANGUAGE_KEY) or d.source
            out.kept.append(dataclasses.replace(d, metadata={**d.metadata, LANGUAGE_KEY: lang}))
            continue
        lang, confidence = detected[id(d)]
        if lang not in keep:
            out.removed.append((d, f"language_{lang or 'unknown'}"))
        elif confidence < threshold:
            out.removed.append((d, "language_low_confidence"))
        else:
            meta = {**d.metadata, LANGUAGE_KEY: lang, "language_score": round(float(confidence), 4)}
            out.kept.append(dataclasses.replace(d, metadata=meta))
    return out


def _thresholds(cache: dict[str, Any], cfg: Any, lang: str, overrides: tuple[str, ...]) -> Any:
    if lang not in cache:
        cache[lang] = quality.thresholds_for(cfg, lang, list(overrides))
    return cache[lang]


def gopher_repetition_step(
    docs: list[Document], cfg: Any, overrides: tuple[str, ...], skip_sources: tuple[str, ...],
) -> StepOutput:
    """Remove documents failing the Gopher repetition rules."""
    out, cache = StepOutput([]), {}
    for d in docs:
        t = _thresholds(cache, cfg, d.metadata.get(LANGUAGE_KEY, ""), overrides)
        reason = quality.gopher_repetition(d.text, t) if _prose(d, skip_sources) else None
        _judge(out, d, reason)
    return out


def gopher_quality_step(
    docs: list[Document], cfg: Any, overrides: tuple[str, ...], skip_sources: tuple[str, ...],
) -> StepOutput:
    """Remove documents failing the Gopher quality rules (per-language stop words)."""
    out, cache = StepOutput([]), {}
    for d in docs:
        lang = d.metadata.get(LANGUAGE_KEY, "")
        reason = (
            quality.gopher_quality(d.text, lang, _thresholds(cache, cfg, lang, overrides))
            if _prose(d, skip_sources) else None
        )
        _judge(out, d, reason)
    return out


def c4_step(
    docs: list[Document], cfg: Any, overrides: tuple[str, ...], skip_sources: tuple[str, ...],
) -> StepOutput:
    """Drop C4-bad lines, then documents with too little left (or lorem ipsum / braces)."""
    out, cache = StepOutput([]), {}
    for d in docs:
        if not _prose(d, skip_sources):
            out.kept.append(d)
            continue
        t = _thresholds(cache, cfg, d.metadata.get(LANGUAGE_KEY, ""), overrides)
        text, reason = quality.c4_filter(d.text, t)
        if reason:
            out.removed.append((d, reason))
        else:
            out.notes["lines_rewritten"] += text != d.text
            out.kept.append(_with_text(d, text))
    return out


def fineweb_step(
    docs: list[Document], cfg: Any, overrides: tuple[str, ...], skip_sources: tuple[str, ...],
) -> StepOutput:
    """Remove documents failing FineWeb's line-punctuation, short-line and duplicate-line rules."""
    out, cache = StepOutput([]), {}
    for d in docs:
        t = _thresholds(cache, cfg, d.metadata.get(LANGUAGE_KEY, ""), overrides)
        reason = quality.fineweb_filter(d.text, t) if _prose(d, skip_sources) else None
        _judge(out, d, reason)
    return out


def drop_listed_step(docs: list[Document], listed: dict[int, int], reason: str) -> StepOutput:
    """Remove documents whose order key is listed (duplicates found by a global grouping).

    `listed` maps a removed document's order key to the order key of the one kept instead.
    """
    out = StepOutput([])
    for d in docs:
        _judge(out, d, reason if d.metadata[ORDER_KEY] in listed else None)
    return out


def decontam_step(docs: list[Document], index: ContaminationIndex) -> StepOutput:
    """Remove documents sharing an n-gram with an evaluation item; record which item where."""
    out = StepOutput([])
    for d in docs:
        matches = index.find(d.text) if len(index) else []
        if not matches:
            out.kept.append(d)
            continue
        out.removed.append((d, "contaminated"))
        for m in matches:
            out.notes[m.benchmark] += 1
            out.findings.append({"benchmark": m.benchmark, "item": m.item, "coverage": m.coverage,
                                 "id": d.id, "source": d.source, "url": d.url})
    return out


def pii_step(docs: list[Document]) -> StepOutput:
    """Mask e-mails, public IPs and phone numbers; removes nothing."""
    out = StepOutput([])
    for d in docs:
        text, counts = mask_pii(d.text)
        out.notes.update(counts)
        out.kept.append(_with_text(d, text))
    return out


# --- step lists -------------------------------------------------------------------------------


def filter_steps(cfg: DataConfig) -> list[Step]:
    """Per-document steps run right after reading.

    FineWeb's filters, reordered so that the language-independent ones (Gopher repetition,
    C4, FineWeb) run before language identification: lingua is the costliest step after HTML
    extraction, and it cannot judge junk (keyword lists, menus) anyway, so junk would be
    removed as "low confidence" instead of for what it is. Gopher quality needs the language
    (stop words, per-language thresholds) and comes last.
    """
    skip = tuple(cfg.prose_skip_sources)
    q = {"cfg": cfg.quality, "overrides": tuple(cfg.quality_overrides), "skip_sources": skip}
    return [
        Step("normalize", normalize_step, {"max_chars": cfg.max_doc_chars}),
        Step("gopher_repetition", gopher_repetition_step, q),
        Step("c4", c4_step, q),
        Step("fineweb", fineweb_step, q),
        Step("language", language_step, {
            "keep": tuple(cfg.languages), "threshold": cfg.langid_threshold, "skip_sources": skip,
        }),
        Step("gopher_quality", gopher_quality_step, q),
    ]


def final_steps(
    cfg: DataConfig, exact: dict[int, int], near: dict[int, int], index: ContaminationIndex,
) -> list[Step]:
    """Steps after the global dedup groupings: drop duplicates, decontaminate, mask PII."""
    steps = [
        Step("exact_dedup", drop_listed_step, {"listed": exact, "reason": "exact_duplicate"}),
        Step("near_dedup", drop_listed_step, {"listed": near, "reason": "near_duplicate"}),
        Step("decontam", decontam_step, {"index": index}),
    ]
    if cfg.pii_masking:
        steps.append(Step("pii", pii_step))
    return steps
