"""Language ID: fastText, py3langid, lingua alone and chatforge's combination, side by side.

On the lingua test sentences of every language in ../shared/data/lingua-langid-sentences, as
written and with accents stripped (as a careless pipeline would: "España" -> "Espana"), all
detectors over all their languages. Accuracy is per language and per half of each file (even
and odd lines), so a rule tuned on one half can be checked on the other. Speed is sentences per
second on ONE core (the process is pinned to it; lingua's own thread pool is not used), serial
`detect` calls, after every model is loaded, over `--repeats` passes of a sample: mean and
spread, and each detector's ratio to lingua measured in the same run. Model load time is
reported apart. Results go to bench/results/langid.json.

    python bench/bench_langid.py            # every line, 3 speed repeats
    python bench/bench_langid.py --quick    # every 5th line, 1 repeat: checks it works
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

from chatforge.data import langid
from chatforge.data.normalize import strip_accents

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lingua-langid-sentences"
RESULTS = Path(__file__).parent / "results" / "langid.json"


def _lingua(text: str) -> str:
    values = langid._detector(None).compute_language_confidence_values(text)
    return values[0].language.iso_code_639_1.name.lower() if values else langid.UNDETERMINED


DETECTORS: dict[str, Callable[[str], str]] = {
    "fasttext": lambda t: langid._top(langid._fasttext_scores(langid._prefix(t), None))[0],
    "py3langid": lambda t: langid._top(langid._py3_scores(langid._prefix(t), None))[0],
    "lingua": _lingua,
    "combined": lambda t: langid.detect(t)[0],
}


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


def speed(detect: Callable[[str], str], sample: list[str], repeats: int) -> list[float]:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for text in sample:
            detect(text)
        rates.append(len(sample) / (time.perf_counter() - start))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is not present")
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    sentences = load(5 if args.quick else 1)
    repeats = 1 if args.quick else args.repeats

    start = time.perf_counter()
    langid._fasttext(), langid._py3(None)
    fast_load = time.perf_counter() - start
    start = time.perf_counter()
    for texts in sentences.values():  # wakes every lingua model the sentences' scripts can reach
        langid._detector(None).compute_language_confidence_values(texts[0])
    lingua_load = time.perf_counter() - start

    sample = [t for texts in sentences.values() for t in texts[::4]]
    results = {"sentences": sum(map(len, sentences.values())), "speed_sample": len(sample),
               "model_load_s": {"fasttext+py3langid": fast_load, "lingua_all_75": lingua_load},
               "detectors": {}}
    for name, detect in DETECTORS.items():
        acc = accuracy(detect, sentences)
        rates = speed(detect, sample, repeats)
        results["detectors"][name] = {"accuracy": acc, "sentences_per_s": rates}
    lingua_rate = statistics.mean(results["detectors"]["lingua"]["sentences_per_s"])

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
    print("\nspeed, sentences/s on one core (mean +- sd over repeats; ratio to lingua)")
    for name in DETECTORS:
        rates = results["detectors"][name]["sentences_per_s"]
        sd = statistics.stdev(rates) if len(rates) > 1 else 0.0
        ratio = statistics.mean(rates) / lingua_rate
        results["detectors"][name]["speed_ratio_to_lingua"] = ratio
        print(f"  {name:10s} {statistics.mean(rates):9.0f} +- {sd:6.0f}   x{ratio:.1f}")
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
