"""The `chatforge` command: parses arguments, loads the config, calls stage functions.

Errors a user can fix (ChatforgeError) print as one line and exit with code 2;
`chatforge --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from chatforge.config import load_config
from chatforge.errors import ChatforgeError

app = typer.Typer(
    help="Train a ChatGPT-style assistant from raw text, end to end.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tokenizer_app = typer.Typer(help="Train and use byte-level BPE tokenizers.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")

err = Console(stderr=True)
_DEBUG = {"on": False}

PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="config preset name or .toml path")]
OverridesArg = Annotated[
    list[str] | None, typer.Argument(help="config overrides as section.key=value")
]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    _DEBUG["on"] = debug


def _run_dir(run_dir: Path | None, name: str) -> Path:
    return run_dir if run_dir is not None else Path("runs") / name


@app.command()
def run(
    preset: PresetOpt = "cpu",
    run_dir: Annotated[Path | None, typer.Option(help="run directory (default runs/<run.name>)")] = None,
    only: Annotated[str, typer.Option(help="comma-separated stages to run")] = "",
    force: Annotated[str, typer.Option(help="comma-separated stages to re-run")] = "",
    overrides: OverridesArg = None,
) -> None:
    """Run the whole pipeline on the built-in corpus (or the configured sources)."""
    from chatforge.pipeline import run_pipeline, stage_names
    from chatforge.runs import RunDir

    cfg = load_config(preset, overrides)
    names = stage_names()
    for flag, value in (("--only", only), ("--force", force)):
        for name in filter(None, value.split(",")):
            if name not in names:
                raise ChatforgeError(f"{flag}: unknown stage {name!r} (stages: {', '.join(names)})")
    run = RunDir(_run_dir(run_dir, cfg.run.name))
    manifests = run_pipeline(
        cfg, run, only=[s for s in only.split(",") if s] or None,
        force=[s for s in force.split(",") if s],
    )
    run.link_latest()
    summary = {name: m.get("metrics", {}) for name, m in manifests.items()}
    typer.echo(json.dumps({"run_dir": str(run.root), "stages": summary}, default=float))


@app.command()
def pretrain(
    text: Annotated[Path, typer.Option(help="plain-text training file")],
    out: Annotated[Path, typer.Option(help="output directory (resumes if it holds a checkpoint)")],
    val_fraction: Annotated[float, typer.Option(help="last fraction of the file's bytes held out")] = 0.1,
    time_budget: Annotated[float, typer.Option(help="stop at this wall time, seconds (0 = off)")] = 0.0,
    max_steps: Annotated[int, typer.Option(help="optimizer steps (0 = preset value)")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="steps between checkpoints (0 = preset)")] = 0,
    seed: Annotated[int, typer.Option(help="random seed")] = 1337,
    tokenizer: Annotated[Path | None, typer.Option(help="existing tokenizer dir (default: train one)")] = None,
    preset: PresetOpt = "cpu",
    overrides: OverridesArg = None,
) -> None:
    """Train a tokenizer and a GPT on one text file; print a final JSON line of results."""
    from chatforge.train.pretrain import pretrain_file

    extra = list(overrides or []) + [f"run.seed={seed}", f"pretrain.val_fraction={val_fraction}"]
    if time_budget:
        extra.append(f"pretrain.time_budget={time_budget}")
    if max_steps:
        extra.append(f"pretrain.max_steps={max_steps}")
    if checkpoint_every:
        extra.append(f"pretrain.checkpoint_every={checkpoint_every}")
    cfg = load_config(preset, extra)
    result = pretrain_file(cfg, text, out, tokenizer_dir=tokenizer)
    typer.echo(json.dumps(result, default=float))


@tokenizer_app.command("train")
def tokenizer_train(
    files: Annotated[list[Path], typer.Argument(help="text files to train on")],
    out: Annotated[Path, typer.Option(help="output directory for tokenizer.json")],
    vocab_size: Annotated[int, typer.Option(help="target vocabulary size")] = 4096,
    min_frequency: Annotated[int, typer.Option(help="merge only pairs seen this often")] = 2,
    max_chars: Annotated[int, typer.Option(help="train on at most this many characters (0 = all)")] = 0,
) -> None:
    """Train a byte-level BPE tokenizer on text files (.txt, or .jsonl with a "text" field)."""
    from chatforge.tokenizer.bpe import iter_text_files, train_bpe

    tok = train_bpe(
        iter_text_files(files), vocab_size=vocab_size, min_frequency=min_frequency,
        max_chars=max_chars or None,
    )
    path = tok.save(out)
    typer.echo(json.dumps({"out": str(path), "vocab_size": tok.vocab_size}))


@tokenizer_app.command("encode")
def tokenizer_encode(
    text: Annotated[str, typer.Argument(help="text to encode")],
    tokenizer: Annotated[Path, typer.Option(help="tokenizer dir, tokenizer.json or .tiktoken file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    allow_special: Annotated[bool, typer.Option(help="encode <|...|> strings as special tokens")] = False,
) -> None:
    """Print the token ids and pieces of a text."""
    from chatforge.tokenizer.bpe import load_tokenizer

    tok = load_tokenizer(tokenizer)
    ids = tok.encode(text, allowed_special=allow_special)
    pieces = [tok.decode_bytes([i]).decode("utf-8", errors="backslashreplace") for i in ids]
    n_bytes = len(text.encode("utf-8"))
    if as_json:
        typer.echo(json.dumps({"ids": ids, "pieces": pieces, "bytes": n_bytes}, ensure_ascii=False))
        return
    per_token = f", {n_bytes / len(ids):.2f} bytes/token" if ids else ""
    typer.echo(f"{len(ids)} tokens, {n_bytes} bytes{per_token}")
    typer.echo("ids:    " + " ".join(map(str, ids)))
    typer.echo("pieces: " + " ".join(repr(p) for p in pieces))


def main() -> None:
    """Console entry point: one-line errors with exit code 2 unless --debug."""
    try:
        app()
    except ChatforgeError as exc:
        if _DEBUG["on"]:
            raise
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
