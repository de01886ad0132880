"""Dependencies point one way: every import of every module, parsed (not executed), must go to
its own layer or a lower one, and no two modules may import each other, directly or around a
loop. Imports inside functions count too: a late import that dodges a cycle is still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first (docs/architecture.md explains each layer). A module belongs to the layer of
# its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("chatforge.errors", "chatforge.tokenizer.specials"),
    # Foundations. The sandbox is one (stdlib only): the engine's tools run code in it.
    # So is the preference store (stdlib sqlite): the labelling server reads and writes it.
    ("chatforge.runs", "chatforge.config", "chatforge.stage", "chatforge.device",
     "chatforge.corpus", "chatforge.cost", "chatforge.tokenizer", "chatforge.model",
     "chatforge.eval.sandbox", "chatforge.eval.sandbox_launcher", "chatforge.align.prefs"),
    # The calculator and Python tools sit with the engine that runs them during generation,
    # and so does the store of answers it remembers.
    ("chatforge.train.loop", "chatforge.train.optim", "chatforge.engine", "chatforge.answer_memo",
     "chatforge.tools", "chatforge.serve"),
    # The stages. The built-in dirty web (corpus.web) is written against the data stage's
    # own filters, and the corpus and tokenizer stage functions live beside their packages.
    ("chatforge.data", "chatforge.train", "chatforge.align", "chatforge.eval",
     "chatforge.report", "chatforge.corpus.web", "chatforge.corpus.build",
     "chatforge.tokenizer.stage", "chatforge.tokenizer.inputs"),
    ("chatforge.pipeline",),
    ("chatforge.cli", "chatforge.cli_checks", "chatforge.__main__", "chatforge"),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "chatforge").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """chatforge modules imported anywhere in a module (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("chatforge"):
                found.add(t)
    return found


def _layer(name: str) -> int:
    best, layer = -1, None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best:
                best, layer = len(p), i
    assert layer is not None, f"{name} is in no layer: add it to LAYERS"
    return layer


GRAPH = {n: _imports(n, p, set(_modules())) for n, p in _modules().items()}


def _is_package_init_reexport(src: str, dst: str) -> bool:
    return src == "chatforge"  # the package root only exposes the version


def test_every_import_points_down_or_sideways():
    upward = [
        f"{src} (layer {_layer(src)}) imports {dst} (layer {_layer(dst)})"
        for src, dsts in GRAPH.items() for dst in dsts
        if _layer(dst) > _layer(src) and not _is_package_init_reexport(src, dst)
    ]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    # Tarjan's strongly connected components; any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_a_late_import(tmp_path):
    """The parser counts imports inside functions (the way cycles used to be hidden)."""
    mod = tmp_path / "m.py"
    mod.write_text("def f():\n    from chatforge.pipeline import run_pipeline\n")
    assert _imports("chatforge.x", mod, {"chatforge.pipeline"}) == {"chatforge.pipeline"}


@pytest.mark.parametrize("module", ["chatforge.data.stage", "chatforge.data.steps"])
def test_data_cleaning_does_not_import_torch(module):
    import subprocess
    import sys

    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
