"""Data stage throughput per step and peak memory as the input grows (1x, 2x, 4x).

For each input size the built-in dirty web is generated (not timed) and cleaned in a fresh
child process with one worker, twice side by side: streaming (shards of `--shard-docs`
documents, the default design) and a reference that holds every document of a read task in
memory (one unbounded shard). Reported per run: documents/s of every step (documents in /
seconds inside the step; for the dedup steps, with their global grouping phase), the phase
wall times, and peak RSS above the process's baseline
after the language models are loaded. Streaming should stay flat as the input grows; the
reference grows with it. Results go to bench/results/bench_data.json.

    python bench/bench_data.py             # 1000, 2000, 4000 pages
    python bench/bench_data.py --quick     # 150, 300, 600 pages
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "bench_data.json"


def child(args: argparse.Namespace) -> None:
    """Clean one input in this process and print the measurements as one JSON line."""
    import psutil

    from chatforge.config import DataConfig
    from chatforge.data.langid import detect_batch
    from chatforge.data.pipeline import run_data

    detect_batch(["warm up the language models so the baseline includes them"])
    baseline = psutil.Process().memory_info().rss
    cfg = DataConfig(workers=1, shard_docs=args.shard_docs, batch_docs=min(250, args.shard_docs))
    funnel = run_data(args.sources, args.out, cfg, seed=0, decontam_sets=args.decontam)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    steps = funnel["steps"]
    docs_in = {s: funnel["total"][p]["docs"] for p, s in zip(["read", *steps], steps, strict=False)}
    docs_in["read"] = funnel["total"]["read"]["docs"]
    seconds = dict(funnel["step_seconds"])
    for step in ("exact_dedup", "near_dedup"):  # the global grouping is the work of these steps
        seconds[step] += funnel["timings_s"][step]
    rates = {s: docs_in[s] / t for s, t in seconds.items() if t > 0}
    print(json.dumps({
        "documents": funnel["total"]["read"]["docs"], "kept": funnel["total"][steps[-1]]["docs"],
        "docs_per_s": rates, "phase_s": funnel["timings_s"],
        "baseline_mb": baseline / 2**20, "peak_mb": peak / 2**20, "peak_above_baseline_mb": (peak - baseline) / 2**20,
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=1000, help="pages at 1x")
    ap.add_argument("--shard-docs", type=int, default=200)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sources", nargs="*", default=[], help=argparse.SUPPRESS)
    ap.add_argument("--decontam", nargs="*", default=[], help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.pages, args.shard_docs = 150, 50

    from chatforge.config import CorpusConfig
    from chatforge.corpus.web import build_web
    from chatforge.corpus.world import World

    world = World.build(0, CorpusConfig())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 2, 4):
            web = build_web(Path(tmp) / f"web{scale}", world, seed=0, n_pages=args.pages * scale)
            for mode, shard_docs in (("streaming", args.shard_docs), ("one_shard_reference", 10**9)):
                cmd = [sys.executable, __file__, "--child", "--shard-docs", str(shard_docs),
                       "--out", str(Path(tmp) / f"out{scale}{mode}"), "--sources", *web.sources,
                       "--decontam", *map(str, web.eval_sets)]
                line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
                row = {"scale": scale, "mode": mode, **json.loads(line)}
                results.append(row)
                print(f"{scale}x {mode:20s} {row['documents']:6d} docs  peak +{row['peak_above_baseline_mb']:.0f} MB  "
                      + "  ".join(f"{k} {v:.0f}/s" for k, v in row["docs_per_s"].items()), flush=True)
    growth = {}
    for mode in ("streaming", "one_shard_reference"):
        peaks = {r["scale"]: r["peak_above_baseline_mb"] for r in results if r["mode"] == mode}
        growth[mode] = peaks[4] / max(peaks[1], 1e-9)
    summary = {"pages_1x": args.pages, "shard_docs": args.shard_docs, "runs": results,
               "peak_growth_4x_over_1x": growth}
    print(json.dumps({"peak_growth_4x_over_1x": growth}))
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
