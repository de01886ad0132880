"""HTML extraction (resiliparse vs trafilatura) and language ID throughput, side by side.

Pages: ../shared/data/raw-html plus every HTML response in ../shared/data/web-warc. Each
extractor runs in its own fresh process over the same pages, several rounds, so its peak
memory (max RSS) and speed are its own. Also reported: how far the two agree (word-level F1
of their outputs per page) and language ID's documents/s and accuracy on the lingua test
sentences (chatforge's combined detector; bench/bench_langid.py compares each detector alone),
over all languages and over the 8 target languages only; each reader's documents/s on the
shared samples; and the WARC reader's traced peak memory at 1x and 4x input (flat: it streams).

    python bench/bench_extract.py            # full run (the lead's quiet-machine figures)
    python bench/bench_extract.py --quick    # one round, small langid sample: checks it works
Results: bench/results/extract.json
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import resource
import statistics
import time
from collections import Counter
from pathlib import Path

from chatforge.runs import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TARGET = ["en", "tr", "de", "fr", "es", "ru", "ar", "zh"]


def load_pages() -> list[tuple[str, bytes]]:
    """(name, html bytes) for the raw-html files and the HTML responses of the sample WARCs."""
    from warcio.archiveiterator import ArchiveIterator

    pages = [(p.name, p.read_bytes()) for p in sorted((DATA / "raw-html").glob("*.html"))]
    for path in sorted((DATA / "web-warc").glob("*.warc.gz")):
        with open(path, "rb") as f:
            for record in ArchiveIterator(f):
                if record.rec_type != "response" or record.http_headers is None:
                    continue
                if "html" not in (record.http_headers.get_header("Content-Type") or ""):
                    continue
                pages.append(
                    (
                        record.rec_headers.get_header("WARC-Target-URI"),
                        record.content_stream().read(),
                    )
                )
    return pages


def _run_backend(backend: str, pages: list[bytes], rounds: int) -> dict:
    """In a fresh process: extract every page `rounds` times; speed per round and max RSS."""
    from chatforge.data.extract import extract_html

    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    extract_html(pages[0], backend)  # imports and first-call setup are not throughput
    rates, texts = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        texts = [extract_html(page, backend) for page in pages]
        rates.append(len(pages) / (time.perf_counter() - start))
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "docs_per_s": statistics.mean(rates),
        "docs_per_s_std": statistics.stdev(rates) if len(rates) > 1 else 0.0,
        "rounds": rounds,
        "peak_rss_mib": rss_peak / 1024,
        "rss_growth_mib": (rss_peak - rss_start) / 1024,
        "chars_out": sum(len(t) for t in texts),
        "short_line_share": _short_line_share(texts),
        "empty_pages": sum(1 for t in texts if not t.strip()),
        "texts": texts,
    }


def _short_line_share(texts: list[str]) -> float:
    """Share of output lines under 30 characters with no closing punctuation: menus, bylines,
    "Subscribe" prompts. A boilerplate proxy (FineWeb's short-line rule), not ground truth."""
    lines = [line.strip() for t in texts for line in t.splitlines() if line.strip()]
    short = [
        line for line in lines if len(line) < 30 and not line.endswith((".", "!", "?", ":", '"'))
    ]
    return len(short) / max(len(lines), 1)


def _word_f1(a: str, b: str) -> float:
    wa, wb = Counter(a.split()), Counter(b.split())
    overlap = sum((wa & wb).values())
    if not wa and not wb:
        return 1.0
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(wa.values()), overlap / sum(wb.values())
    return 2 * precision * recall / (precision + recall)


def bench_extract(pages: list[tuple[str, bytes]], rounds: int) -> dict:
    html = [page for _, page in pages]
    ctx = mp.get_context("spawn")
    results = {}
    for backend in ("resiliparse", "trafilatura"):
        with ctx.Pool(1) as pool:
            results[backend] = pool.apply(_run_backend, (backend, html, rounds))
    f1 = [
        _word_f1(a, b)
        for a, b in zip(
            results["resiliparse"].pop("texts"), results["trafilatura"].pop("texts"), strict=True
        )
    ]
    return {
        "pages": len(pages),
        "input_mib": sum(len(p) for p in html) / 2**20,
        "backends": results,
        "speedup_resiliparse_over_trafilatura": results["resiliparse"]["docs_per_s"]
        / results["trafilatura"]["docs_per_s"],
        "agreement_word_f1_mean": statistics.mean(f1),
        "agreement_word_f1_min": min(f1),
    }


def bench_langid(step: int, all_languages: bool) -> dict:
    from chatforge.data.langid import detect, detect_batch

    sentences = {}
    for lang in TARGET:
        lines = (
            (DATA / "lingua-langid-sentences" / f"{lang}.txt")
            .read_text(encoding="utf-8")
            .splitlines()
        )
        sentences[lang] = [line.strip() for line in lines if line.strip()][::step]
    configs = {"target_8": TARGET} | ({"all_75": None} if all_languages else {})
    out = {}
    for name, languages in configs.items():
        start = time.perf_counter()
        detect("warm-up: the models load here", languages)
        load_s = time.perf_counter() - start
        per_language, n, correct = {}, 0, 0
        start = time.perf_counter()
        for lang, texts in sentences.items():
            hits = sum(code == lang for code, _ in detect_batch(texts, languages))
            per_language[lang] = hits / len(texts)
            n, correct = n + len(texts), correct + hits
        batch_s = time.perf_counter() - start
        sample = [t for texts in sentences.values() for t in texts[:50]]
        start = time.perf_counter()
        for text in sample:
            detect(text, languages)
        single_s = time.perf_counter() - start
        out[name] = {
            "sentences": n,
            "accuracy": correct / n,
            "accuracy_per_language": per_language,
            "model_load_s": load_s,
            "batch_docs_per_s": n / batch_s,
            "single_docs_per_s": len(sample) / single_s,
        }
    return out


READER_SPECS = [
    "warc:web-warc/*.warc.gz",
    "wet:web-warc/*.wet*",
    "html:raw-html",
    "wiki:wikipedia-dump-samples",
    "books:gutenberg",
    "jsonl:ccnet-cc-en-head",
    "text:turkish-text:line",
]


def bench_readers() -> dict:
    """Documents/s and input MB/s of each reader on the shared samples (one timed pass each)."""
    from chatforge.data.sources import open_source

    out = {}
    for spec in READER_SPECS:
        kind, _, rest = spec.partition(":")
        for _ in open_source(f"{kind}:{DATA / rest}").iter_documents():
            pass  # warm-up pass: imports and first-call setup are not throughput
        source = open_source(f"{kind}:{DATA / rest}")
        files = getattr(source, "files", [])
        size = sum(Path(f).stat().st_size for f in files)
        start = time.perf_counter()
        docs = sum(1 for _ in source.iter_documents())
        seconds = time.perf_counter() - start
        out[spec] = {
            "docs": docs,
            "docs_per_s": docs / seconds,
            "input_mb_per_s": size / 2**20 / seconds,
            "skipped": dict(source.skipped),
        }
    return out


def _traced_peak_mib(spec: str) -> float:
    import tracemalloc

    from chatforge.data.sources import open_source

    tracemalloc.start()
    for _ in open_source(spec).iter_documents():
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def bench_reader_memory(pages: list[tuple[str, bytes]], scale: int) -> dict:
    """Traced peak memory of the WARC reader at 1x and 4x input: flat if it streams."""
    import gzip
    import tempfile

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    records = []
    for name, html in pages:
        buf = io.BytesIO()
        writer = WARCWriter(buf, gzip=False)
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        url = name if name.startswith("http") else f"https://example.org/{name}"
        writer.write_record(
            writer.create_warc_record(url, "response", payload=io.BytesIO(html), http_headers=http)
        )
        records.append(gzip.compress(buf.getvalue()))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for factor in (1, 4):
            path = Path(tmp) / f"x{factor}.warc.gz"
            with open(path, "wb") as f:
                for _ in range(scale * factor):
                    f.writelines(records)
            out[f"x{factor}"] = {
                "input_mib": path.stat().st_size / 2**20,
                "records": len(records) * scale * factor,
                "traced_peak_mib": _traced_peak_mib(f"warc:{path}"),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="one round, every 10th sentence, target languages only"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "extract.json")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds

    pages = load_pages()
    extract = bench_extract(pages, rounds)
    langid = bench_langid(step=10 if args.quick else 1, all_languages=not args.quick)
    readers = bench_readers()
    memory = bench_reader_memory(pages, scale=1 if args.quick else 4)
    result = {
        "quick": args.quick,
        "extract": extract,
        "langid": langid,
        "readers": readers,
        "reader_memory": memory,
    }
    atomic_write_json(args.out, result)

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"HTML extraction: {extract['pages']} pages, {extract['input_mib']:.1f} MiB, {rounds} round(s)"
    )
    for column in (
        "backend",
        "docs/s",
        "± std",
        "peak RSS MiB",
        "chars out",
        "short lines",
        "empty",
    ):
        table.add_column(column)
    for name, r in extract["backends"].items():
        table.add_row(
            name,
            f"{r['docs_per_s']:.1f}",
            f"{r['docs_per_s_std']:.1f}",
            f"{r['peak_rss_mib']:.0f}",
            str(r["chars_out"]),
            f"{r['short_line_share']:.1%}",
            str(r["empty_pages"]),
        )
    console = Console()
    console.print(table)
    console.print(
        f"resiliparse / trafilatura speed: {extract['speedup_resiliparse_over_trafilatura']:.1f}x; "
        f"word F1 between them: mean {extract['agreement_word_f1_mean']:.2f}, min {extract['agreement_word_f1_min']:.2f}"
    )
    for name, r in langid.items():
        console.print(
            f"langid {name}: accuracy {r['accuracy']:.4f} on {r['sentences']} sentences "
            f"(min {min(r['accuracy_per_language'].values()):.3f}), {r['batch_docs_per_s']:.0f} docs/s batched, "
            f"{r['single_docs_per_s']:.0f} docs/s one by one, models load {r['model_load_s']:.1f}s"
        )
    for spec, r in readers.items():
        console.print(
            f"reader {spec}: {r['docs']} docs, {r['docs_per_s']:.0f} docs/s, "
            f"{r['input_mb_per_s']:.1f} MB/s in, skipped {r['skipped'] or 'none'}"
        )
    console.print(
        "WARC reader traced peak: "
        + ", ".join(
            f"{k}: {v['input_mib']:.1f} MiB in -> {v['traced_peak_mib']:.1f} MiB"
            for k, v in memory.items()
        )
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
