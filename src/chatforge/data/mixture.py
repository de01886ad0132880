"""Source mixture: per-source weights on the cleaned documents, as whole epochs plus a seeded part.

`data.mixture` lists "SOURCE=WEIGHT" items (SOURCE a `Document.source`: warc, wiki, books,
code, papers, jsonl, ...; sources not listed keep weight 1). A weight w = k + f (k whole,
0 <= f < 1) gives every document of the source k copies, plus one more when its seeded
hash falls below f: 0 drops the source, 0.5 keeps a seeded half, 2 repeats every document
twice (two epochs), 2.5 twice plus a seeded half once more.

The decision is per document, from (seed, id) alone, like Bernoulli sampling: it streams,
and it cannot depend on shards, batches or the executor, so the local and Ray executors
write the same documents. The price is that a fraction's count is binomial, not exact
(0.5 of 1000 documents keeps 500 +- 16). Copies after the first get the id suffix
"#epochN" (and `epoch` in metadata) so that dedup by id downstream does not undo them;
their text is unchanged, so the tokenizer's split by text hash
(`chatforge.tokenizer.shards.is_val`) puts every copy in the split of its original and
validation never sees a training document.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

from chatforge.config import DataConfig, parse_mixture_syntax
from chatforge.data.document import Document
from chatforge.data.sources import KINDS
from chatforge.data.steps import Step, StepOutput
from chatforge.errors import ConfigError


def parse_mixture(items: list[str]) -> dict[str, float]:
    """{source: weight} from "SOURCE=WEIGHT" items whose sources are reader kinds."""
    weights = parse_mixture_syntax(items)
    for item, source in zip(items, weights, strict=True):
        if source not in KINDS:
            raise ConfigError(f"data.mixture item {item!r}: unknown source {source!r} (known: {', '.join(KINDS)})")
    return weights


def unit(seed: int, doc_id: str) -> float:
    """A document's seeded uniform number in [0, 1), from its id alone."""
    digest = hashlib.blake2b(f"{seed}\x1f{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def copies(weight: float, u: float) -> int:
    """How many times a document with uniform number `u` appears under `weight`."""
    whole = math.floor(weight)
    return whole + int(u < weight - whole)


def epoch_copy(doc: Document, epoch: int) -> Document:
    """The `epoch`-th copy of a document (1 = the document itself)."""
    if epoch == 1:
        return doc
    return dataclasses.replace(doc, id=f"{doc.id}#epoch{epoch}", metadata={**doc.metadata, "epoch": epoch})


def mixture_step(docs: list[Document], weights: dict[str, float], seed: int) -> StepOutput:
    """Repeat or sample each document by its source's weight; the rest pass unchanged."""
    out = StepOutput([])
    for d in docs:
        weight = weights.get(d.source, 1.0)
        n = copies(weight, unit(seed, d.id))
        if n == 0:
            out.removed.append((d, "mixture_weight_zero" if weight == 0 else "mixture_not_sampled"))
            continue
        out.kept.extend(epoch_copy(d, k) for k in range(1, n + 1))
        out.notes["repeats"] += n - 1
    return out


def mixture_steps(cfg: DataConfig, seed: int) -> list[Step]:
    """The final "mixture" step when `data.mixture` is set, else none (the output is the cleaning's)."""
    if not cfg.mixture:
        return []
    return [Step("mixture", mixture_step, {"weights": parse_mixture(cfg.mixture), "seed": seed})]


def mixture_report(funnel: dict[str, Any], cfg: DataConfig, seed: int) -> dict[str, Any]:
    """Per source: weight, documents and bytes before and after the mixture (from the funnel)."""
    weights = parse_mixture(cfg.mixture)
    before = funnel["steps"][funnel["steps"].index("mixture") - 1]
    per_source = {}
    for source, counts in funnel["per_source"].items():
        per_source[source] = {
            "weight": weights.get(source, 1.0),
            "docs_before": counts[before]["docs"], "bytes_before": counts[before]["bytes"],
            "docs_after": counts["mixture"]["docs"], "bytes_after": counts["mixture"]["bytes"],
        }
    return {"seed": seed, "weights": weights, "per_source": per_source}


def check_mixture_sources(weights: dict[str, float], kinds: set[str]) -> None:
    """A weight for a source that is not among the inputs is a mistake, not a no-op: reject it."""
    for source in sorted(set(weights) - kinds):
        raise ConfigError(
            f"--mix / data.mixture: source {source!r} is not among the inputs "
            f"(they hold: {', '.join(sorted(kinds)) or 'nothing'})"
        )
