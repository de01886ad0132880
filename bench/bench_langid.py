"""Language ID: fastText, py3langid, lingua alone and chatforge's combination, side by side.

On the lingua test sentences of every language in ../shared/data/lingua-langid-sentences, as
written and with accents stripped (as a careless pipeline would: "España" -> "Espana"), all
detectors over all their languages. Accuracy is per language and per half of each file (even
and odd lines), so a rule tuned on one half can be checked on the other. Speed is sentences per
second on ONE core (the process is pinned to it; lingua's own thread pool is not used), serial
`detect` calls, after every model is loaded, over `--repeats` passes of a sample: mean and
spread, and each detector's ratio to lingua measured in the same run. "lingua" is lingua alone
as the data stage used it before (high accuracy); "lingua_low" is the low-accuracy mode the
combination asks. Model load time is reported apart, and the combination's cold rate too: a
fresh process running every sentence once, its model loading included. Results go to bench/results/langid.json.

    python bench/bench_langid.py            # every line, 3 speed repeats
    python bench/bench_langid.py --quick    # every 5th line, 1 repeat: checks it works
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

from lingua import LanguageDetectorBuilder

from chatforge.data import langid
from chatforge.data.normalize import strip_accents

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lingua-langid-sentences"
RESULTS = Path(__file__).parent / "results" / "langid.json"


@functools.cache
def _lingua_high():
    """lingua as the data stage used it alone before: high accuracy, all 75 languages."""
    return LanguageDetectorBuilder.from_all_languages().build()


def _lingua(detector, text: str) -> str:
    values = detector.compute_language_confidence_values(text)
    return values[0].language.iso_code_639_1.name.lower() if values else langid.UNDETERMINED


DETECTORS: dict[str, Callable[[str], str]] = {
    "fasttext": lambda t: langid._top(langid._fasttext_scores(langid._prefix(t), None))[0],
    "py3langid": lambda t: langid._top(langid._py3_scores(langid._prefix(t), None))[0],
    "lingua": lambda t: _lingua(_lingua_high(), t),
    "lingua_low": lambda t: _lingua(langid._detector(None), t),
    "combined": lambda t: langid.detect(t)[0],
}
COLD = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
texts = open(sys.argv[2], encoding="utf-8").read().split("\\n")
start, start_cpu = time.perf_counter(), time.process_time()
from chatforge.data.langid import detect
for t in texts:
    detect(t)
print(len(texts) / (time.perf_counter() - start), len(texts) / (time.process_time() - start_cpu))
"""


def cold_rate(sentences: dict[str, list[str]], core: int) -> tuple[float, float]:
    """Sentences/s of `detect` in a fresh process, model loading included (a worker's first batch)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
        f.write("\n".join(t for texts in sentences.values() for t in texts))
    try:
        out = subprocess.run([sys.executable, "-c", COLD, str(core), f.name], check=True,
                             capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    wall, cpu = out.split()[-2:]
    return float(wall), float(cpu)


def stripped(text: str) -> str:
    return unicodedata.normalize("NFC", strip_accents(text))  # Hangul is recomposed: not an accent


def load(step: int) -> dict[str, list[str]]:
    out = {}
    for path in sorted(DATA.glob("*.txt")):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out[path.stem] = lines[::step]
    return out


def accuracy(detect: Callable[[str], str], sentences: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Per variant ('as_written', 'accents_stripped') and language: share correct, overall and per half."""
    out: dict[str, dict[str, float]] = {}
    for variant, damage in (("as_written", None), ("accents_stripped", stripped)):
        for lang, texts in sentences.items():
            hits = [detect(damage(t) if damage else t) == lang for t in texts]
            out.setdefault(variant, {})[lang] = sum(hits) / len(hits)
            out.setdefault(f"{variant}_even", {})[lang] = sum(hits[0::2]) / len(hits[0::2])
            out.setdefault(f"{variant}_odd", {})[lang] = sum(hits[1::2]) / max(1, len(hits[1::2]))
    return out


def speed(detect: Callable[[str], str], sample: list[str], repeats: int) -> tuple[list[float], list[float]]:
    """Sentences per wall second and per CPU second of this process (the latter is what one
    core does when other work shares it: the dev machine runs other developers' jobs)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for text in sample:
            detect(text)
        wall.append(len(sample) / (time.perf_counter() - start))
        cpu.append(len(sample) / (time.process_time() - start_cpu))
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is not present")
    core = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {core})  # one core
    sentences = load(5 if args.quick else 1)
    repeats = 1 if args.quick else args.repeats
    cold = [cold_rate(sentences, core) for _ in range(repeats)]  # before this process warms caches

    start = time.perf_counter()
    langid._fasttext(), langid._py3(None)
    fast_load = time.perf_counter() - start
    start = time.perf_counter()
    for texts in sentences.values():  # wakes every lingua model the sentences' scripts can reach
        for detector in (_lingua_high(), langid._detector(None)):
            detector.compute_language_confidence_values(texts[0])
    lingua_load = time.perf_counter() - start

    sample = [t for texts in sentences.values() for t in texts[::4]]
    results = {"sentences": sum(map(len, sentences.values())), "speed_sample": len(sample),
               "model_load_s": {"fasttext+py3langid": fast_load, "lingua_high_and_low_all_75": lingua_load},
               "combined_cold_sentences_per_s": cold,
               "detectors": {}}
    for name, detect in DETECTORS.items():
        acc = accuracy(detect, sentences)
        rates, cpu_rates = speed(detect, sample, repeats)
        results["detectors"][name] = {"accuracy": acc, "sentences_per_s": rates,
                                      "sentences_per_cpu_s": cpu_rates}
    lingua_rate = statistics.mean(results["detectors"]["lingua"]["sentences_per_cpu_s"])

    langs = list(sentences)
    print(f"{results['sentences']} sentences, {len(langs)} languages; one core; "
          f"load: fastText+py3langid {fast_load:.1f}s, lingua {lingua_load:.1f}s")
    for variant in ("as_written", "accents_stripped"):
        print(f"\naccuracy, {variant} (held-out check: worst of the even / odd halves)")
        print("lang  " + "".join(f"{n:>11s}" for n in DETECTORS))
        for lang in langs:
            print(f"{lang:5s} " + "".join(
                f"{results['detectors'][n]['accuracy'][variant][lang]:11.3f}" for n in DETECTORS))
        for label, key in (("worst", variant), ("worst even", f"{variant}_even"),
                           ("worst odd", f"{variant}_odd")):
            worst = [min(results["detectors"][n]["accuracy"][key].values()) for n in DETECTORS]
            print(f"{label:10s}" + "".join(f"{w:11.3f}" for w in worst)[4:])
    def spread(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):7.0f} +- {sd:5.0f}"

    print("\nspeed on one core, sentences per CPU second and per wall second "
          "(mean +- sd over repeats; ratio to lingua, CPU)")
    for name in DETECTORS:
        r = results["detectors"][name]
        ratio = statistics.mean(r["sentences_per_cpu_s"]) / lingua_rate
        r["speed_ratio_to_lingua"] = ratio
        print(f"  {name:10s} cpu {spread(r['sentences_per_cpu_s'])}  wall {spread(r['sentences_per_s'])}  x{ratio:.1f}")
    print(f"  combined, cold (fresh process, model loading included, all {results['sentences']} sentences "
          f"once): cpu {spread([c for _, c in cold])}  wall {spread([w for w, _ in cold])}")
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
