"""The `chatforge` command: parses arguments, loads the config, calls stage functions.

Errors a user can fix (ChatforgeError) print as one line and exit with code 2;
`chatforge --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from chatforge import cli_checks
from chatforge.cli_checks import bounds, positive
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
prefs_app = typer.Typer(help="Preference pairs: collect, label, judge, import, export.", no_args_is_help=True)
app.add_typer(prefs_app, name="prefs")

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


RestartOpt = Annotated[bool, typer.Option(
    "--restart", help="train afresh where a checkpoint was made with other settings (replaces it)",
)]


def _config(preset: str, flags: dict[str, object | None], overrides: list[str] | None):
    """A command's config: its flags become overrides placed before the explicit
    `key=value` ones, so an explicit key=value always wins over a flag."""
    extra = [f"{key}={value}" for key, value in flags.items() if value is not None]
    return load_config(preset, extra + list(overrides or []))


def _stage_config(run_dir: Path, preset: str, flags: dict[str, object | None],
                  overrides: list[str] | None):
    """A stage command's config, the same for every stage: the preset named, else the run
    directory's config.toml, else the cpu preset."""
    run_config = run_dir / "config.toml"
    return _config(preset or (str(run_config) if run_config.exists() else "cpu"), flags, overrides)


@app.command()
def run(
    preset: PresetOpt = "cpu",
    run_dir: Annotated[Path | None, typer.Option(help="run directory (default runs/<run.name>)")] = None,
    only: Annotated[str, typer.Option(help="comma-separated stages to run")] = "",
    force: Annotated[str, typer.Option(help="comma-separated stages to re-run")] = "",
    restart: RestartOpt = False,
    overrides: OverridesArg = None,
) -> None:
    """Run the whole pipeline on the built-in corpus (or the configured sources)."""
    cfg = load_config(preset, overrides)  # before torch is imported: a bad key fails at once
    from chatforge.pipeline import run_pipeline, stage_names
    from chatforge.runs import RunDir

    names = stage_names()
    for flag, value in (("--only", only), ("--force", force)):
        for name in filter(None, value.split(",")):
            if name not in names:
                raise ChatforgeError(f"{flag}: unknown stage {name!r} (stages: {', '.join(names)})")
    run = RunDir(_run_dir(run_dir, cfg.run.name), restart=restart)
    manifests = run_pipeline(
        cfg, run, only=[s for s in only.split(",") if s] or None,
        force=[s for s in force.split(",") if s],
    )
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    run.link_latest()
    if "report" in manifests:  # where to look first, also when the report was up to date
        err.print(f"report: {run.path(manifests['report'].get('outputs', {}).get('html', 'report/index.html'))}")
    summary = {name: m.get("metrics", {}) for name, m in manifests.items()}
    typer.echo(json.dumps({"run_dir": str(run.root), "stages": summary}, default=float))


@app.command()
def pretrain(
    out: Annotated[Path, typer.Option(help="output directory (resumes if it holds a checkpoint)")],
    text: Annotated[Path | None, typer.Option(help="plain-text training file (or give --data)")] = None,
    data: Annotated[list[str] | None, typer.Option(help="pre-training input, as pretrain.inputs: Parquet, JSONL or .txt path or glob, hf:NAME[:FIELD], or a token-shard dir (repeatable)")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="held out: the last fraction of --text's bytes, or of --data's documents by hash (default: the preset's)")] = None,
    max_chars: Annotated[int | None, typer.Option(help="read at most this many characters of --data (0 = all; default: the preset's)")] = None,
    time_budget: Annotated[float | None, typer.Option(help="stop at this wall time, seconds (0 = off; default: the preset's)")] = None,
    max_steps: Annotated[int | None, typer.Option(help="optimizer steps (default: the preset's)")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="steps between checkpoints (default: the preset's)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (default: the preset's run.seed)")] = None,
    tokenizer: Annotated[Path | None, typer.Option(help="existing tokenizer dir (default: train one; token shards need it)")] = None,
    restart: RestartOpt = False,
    preset: PresetOpt = "cpu",
    overrides: OverridesArg = None,
) -> None:
    """Train a tokenizer and a GPT on one text file or on --data inputs; print a final JSON line of results."""
    if (text is None) == (not data):
        raise ChatforgeError("pretrain: give exactly one of --text FILE or --data SPEC (repeatable)")
    from chatforge.train.pretrain import pretrain_file

    cfg = _config(preset, {
        "run.seed": seed, "pretrain.val_fraction": val_fraction,
        "pretrain.train.time_budget": time_budget, "pretrain.train.max_steps": max_steps,
        "pretrain.train.checkpoint_every": checkpoint_every, "pretrain.max_chars": max_chars,
        "pretrain.inputs": ",".join(data) if data else None, "pretrain.tokenizer": tokenizer,
    }, overrides)
    result = pretrain_file(cfg, text, out, restart=restart)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0
        typer.echo(json.dumps(result, default=float))


@tokenizer_app.command("train")
def tokenizer_train(
    files: Annotated[list[Path], typer.Argument(help="text files to train on")],
    out: Annotated[Path, typer.Option(help="output directory for tokenizer.json")],
    vocab_size: Annotated[int, typer.Option(help="target vocabulary size", max=1 << 24)] = 4096,
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

    try:  # the shell's bytes reach us surrogate-escaped when they are not UTF-8
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate U+{code:04X}"
        raise ChatforgeError(f"TEXT: not UTF-8 ({what} at character {exc.start})") from None
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


@app.command()
def cost(
    run_dir: Annotated[Path | None, typer.Argument(help="run directory: what its stages cost")] = None,
    params: Annotated[float | None, typer.Option(help="parameters, e.g. 7e9", callback=positive())] = None,
    tokens: Annotated[float | None, typer.Option(help="training tokens (default 20 x params)", callback=positive())] = None,
    gpu: Annotated[str | None, typer.Option(help="a100 h100 h800 h200 b200 mi300x v100 tpu-v4 cpu")] = None,
    gpus: Annotated[int | None, typer.Option(help="number of devices (default: enough for ~90 days)", min=1)] = None,
    mfu: Annotated[float | None, typer.Option(help="model FLOPs utilisation, 0-1", callback=positive(1))] = None,
    price: Annotated[float | None, typer.Option(help="USD per device-hour")] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="gpt3-175b, llama2-70b, llama3.1-405b, deepseek-v3, chinchilla-70b, gpt4, or a chatforge preset (cpu, smoke, d12, d20)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override an assumption: name=value")] = None,
    scale_params: Annotated[float | None, typer.Option(help="with RUN_DIR: the same recipe at this many parameters", callback=positive())] = None,
    gantt_png: Annotated[Path | None, typer.Option(help="write the timeline as a PNG Gantt chart")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Estimate training compute, cost, energy, memory and timeline; or what a run cost."""
    from rich.console import Console

    from chatforge import cost as costmod
    from chatforge.cost.render import gantt_png as write_gantt
    from chatforge.cost.render import human, print_estimate, print_run_cost

    overrides = costmod.parse_overrides(set_)
    console = Console()
    if run_dir is not None:
        rc = costmod.measure_run(run_dir, gpu=gpu, price=price, overrides=overrides,
                                 scale_params=scale_params, scale_tokens=tokens,
                                 scale_gpu=gpu or "h100", scale_mfu=mfu)
        if gantt_png and rc.scaled:
            write_gantt(rc.scaled.timeline, gantt_png, "the same recipe, scaled")
        if as_json:
            typer.echo(json.dumps(rc.to_dict(), default=float))
        else:
            print_run_cost(rc, console)
        return
    if preset:
        est = costmod.preset_estimate(preset, gpu=gpu, gpus=gpus, mfu=mfu, price=price,
                                      params=params, tokens=tokens, overrides=overrides)
    elif params:
        est = costmod.estimate(params, tokens, gpu or "h100", gpus, mfu, price, overrides=overrides)
    else:
        raise ChatforgeError("cost: give --params N, --preset NAME or a RUN_DIR")
    if gantt_png:
        write_gantt(est.timeline, gantt_png, f"timeline: {est.label or human(est.params) + ' parameters'}")
    if as_json:
        typer.echo(json.dumps(est.to_dict(), default=float))
    else:
        print_estimate(est, console)


@app.command()
def sft(
    run_dir: Annotated[Path, typer.Option(help="run directory holding checkpoints/pretrain")],
    data: Annotated[list[Path] | None, typer.Option(help="extra conversation file (repeatable)")] = None,
    preset: Annotated[str, typer.Option("--preset", "-p", help="preset (default: the run's config.toml)")] = "",
    restart: RestartOpt = False,
    overrides: OverridesArg = None,
) -> None:
    """Supervised fine-tuning of a run's base model -> checkpoints/sft and eval/sft.json."""
    if data:
        missing = [str(p) for p in data if not p.is_file()]
        if missing:
            raise ChatforgeError(f"--data: no such file: {', '.join(missing)}")
    flags = {"sft.data": ",".join(str(p.resolve()) for p in data) if data else None}
    cfg = _stage_config(run_dir, preset, flags, overrides)
    # Imported after the config is read, so a bad key fails before torch loads.
    from chatforge.pipeline import run_pipeline
    from chatforge.runs import RunDir

    manifests = run_pipeline(cfg, RunDir(run_dir, restart=restart), only=["sft"])
    if os.environ.get("RANK", "0") == "0":
        typer.echo(json.dumps({"run_dir": str(run_dir), "sft": manifests["sft"].get("metrics", {})}, default=float))


@app.command()
def chat(
    run_dir: Annotated[Path, typer.Argument(help="run directory (e.g. runs/latest)")],
    prompt: Annotated[str | None, typer.Option(help="answer this one message on stdout and exit")] = None,
    system: Annotated[str, typer.Option(help="system prompt")] = "",
    stage: Annotated[str | None, typer.Option(help="checkpoint to load (default: newest of rlhf, sft, pretrain)")] = None,
    temperature: Annotated[float, typer.Option(help="sampling temperature (0 = greedy)", min=0, max=100)] = 0.7,
    top_k: Annotated[int, typer.Option(help="sample among the k likeliest tokens (0 = all)", min=0)] = 50,
    top_p: Annotated[float, typer.Option(help="nucleus sampling mass, 0 < p <= 1", callback=positive(1))] = 0.95,
    max_tokens: Annotated[int, typer.Option(help="longest reply, in tokens", min=1, max=1 << 20)] = 256,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    device: Annotated[str, typer.Option(help="cpu | cuda | mps | auto")] = "cpu",
) -> None:
    """Chat with a trained model in the terminal (/reset, /system TEXT, /temp X, /quit)."""
    from chatforge.device import pick_device
    from chatforge.engine import SamplingParams
    from chatforge.serve.chat_cli import ChatSession, finish_note, interactive, load_chat

    params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature, top_k=top_k,
                            top_p=top_p, seed=seed)
    try:
        torch_device = pick_device(device)
    except ChatforgeError as exc:
        raise ChatforgeError(f"--device: {exc}") from None
    engine, tok, loaded = load_chat(run_dir, stage, str(torch_device))
    session = ChatSession(engine, tok, params, system=system)
    if prompt is None:
        interactive(session, loaded)
        return
    comp = session.reply(prompt, on_text=lambda d: (sys.stdout.write(d), sys.stdout.flush()))
    sys.stdout.write("\n")
    note = finish_note(comp, session)
    if note:
        err.print(note, highlight=False, markup=False)


@app.command()
def serve(
    run_dir: Annotated[Path, typer.Argument(help="run directory (e.g. runs/latest) or checkpoint directory")],
    checkpoint: Annotated[str | None, typer.Option(help="stage of the run to serve (default: newest of rlhf, dpo, ppo, sft, pretrain)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on (loopback unless told otherwise)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 8000,
    api_key: Annotated[str | None, typer.Option(help="require Authorization: Bearer KEY", envvar="CHATFORGE_API_KEY")] = None,
    max_concurrency: Annotated[int, typer.Option(help="sequences decoded together in one batch", min=1, max=4096)] = 32,
    queue: Annotated[int, typer.Option(help="requests waiting beyond those (429 when full)", min=0, max=1 << 20)] = 64,
    max_tokens: Annotated[int, typer.Option(help="longest reply, in tokens (0 = the context length)", min=0, max=1 << 20)] = 0,
    max_body: Annotated[int, typer.Option(help="largest request body, in bytes (413 above)", min=1024, max=1 << 30)] = 1 << 20,
    device: Annotated[str, typer.Option(help="cpu | cuda | mps | auto")] = "cpu",
) -> None:
    """Serve the model: OpenAI-compatible API at /v1 and a web chat at / (continuous batching)."""
    from chatforge.device import pick_device
    from chatforge.serve.api import serve as run_server

    try:
        torch_device = pick_device(device)
    except ChatforgeError as exc:
        raise ChatforgeError(f"--device: {exc}") from None
    run_server(run_dir, checkpoint, host, port, api_key or None, max_concurrency, queue, str(torch_device),
               max_body, max_tokens or None)


def _fresh_out(out: Path, overwrite: bool) -> None:
    """Refuse to mix a new model into a directory that already holds files."""
    if out.exists() and not out.is_dir():
        raise ChatforgeError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ChatforgeError(f"--out {out}: not empty (pass --overwrite to replace its files)")


@app.command("export")
def export_model(
    source: Annotated[Path, typer.Argument(help="run directory (newest chat checkpoint) or checkpoint directory")],
    out: Annotated[Path, typer.Option(help="directory to write the transformers model into")],
    format: Annotated[str, typer.Option("--format", help="hf (transformers: Llama or Qwen3)")] = "hf",
    stage: Annotated[str | None, typer.Option(help="checkpoint of a run to export (default: newest of rlhf, dpo, ppo, sft, pretrain)")] = None,
    tokenizer: Annotated[Path | None, typer.Option(help="tokenizer directory (default: the run's tokenizer/)")] = None,
    dtype: Annotated[str, typer.Option(help="float32 | bfloat16 | float16 (default: as saved)")] = "",
    overwrite: Annotated[bool, typer.Option(help="write into a non-empty --out")] = False,
) -> None:
    """Export a model as a Hugging Face transformers directory (safetensors, config, tokenizer)."""
    if format != "hf":
        raise ChatforgeError(f"--format {format}: only hf is supported")
    if dtype not in ("", "float32", "bfloat16", "float16"):
        raise ChatforgeError(f"--dtype {dtype}: choose float32, bfloat16 or float16")
    if not source.exists():
        raise ChatforgeError(f"{source}: no such run or checkpoint directory")
    _fresh_out(out, overwrite)
    import torch

    from chatforge.model.checkpoint import load_model, resolve_checkpoint
    from chatforge.model.hf import export_hf, tokenizer_beside
    from chatforge.serve.chat_cli import find_checkpoint
    from chatforge.tokenizer.bpe import load_tokenizer

    note = ""
    if (source / "checkpoints").is_dir():
        ckpt, note = find_checkpoint(source, stage)
        tok_dir = tokenizer or source / "tokenizer"
    else:
        ckpt = source
        tok_dir = tokenizer or tokenizer_beside(resolve_checkpoint(source))
    model = load_model(ckpt)
    if dtype:
        model = model.to(getattr(torch, dtype))
    files = export_hf(model, load_tokenizer(tok_dir), out)
    if note:
        err.print(f"[yellow]note:[/yellow] {note}", highlight=False, soft_wrap=True)
    typer.echo(json.dumps({"checkpoint": str(resolve_checkpoint(ckpt)), "tokenizer": str(tok_dir),
                           "out": str(out), "files": [f.name for f in files]}))


@app.command("import-hf")
def import_hf_model(
    directory: Annotated[Path, typer.Argument(help="transformers directory (Llama or Qwen3, safetensors)")],
    out: Annotated[Path, typer.Option(help="chatforge weights directory to write")],
    overwrite: Annotated[bool, typer.Option(help="write into a non-empty --out")] = False,
) -> None:
    """Import a Hugging Face Llama/Qwen3 model as a chatforge checkpoint (and its tokenizer)."""
    if not directory.is_dir():
        raise ChatforgeError(f"{directory}: no such directory")
    _fresh_out(out, overwrite)
    from chatforge.model.checkpoint import save_model
    from chatforge.model.hf import import_hf

    model, tok, why_not = import_hf(directory)
    save_model(model, out, extra={"imported_from": str(directory.resolve())})
    if tok is not None:
        tok.save(out)
    else:
        err.print(f"[yellow]warning:[/yellow] tokenizer not imported: {why_not}", highlight=False, soft_wrap=True)
    typer.echo(json.dumps({"out": str(out), "params": model.num_params(), "config": model.cfg.to_dict(),
                           "tokenizer": str(out / "tokenizer.json") if tok is not None else None}))


@app.command()
def data(
    source: Annotated[list[str] | None, typer.Option(
        "--source", "-s", help="KIND:PATH[:FIELD], globs allowed, repeatable (none: the built-in dirty web)",
    )] = None,
    out: Annotated[Path, typer.Option(help="output directory (documents-*.parquet, funnel.json)")] = Path("runs/data"),
    executor: Annotated[str, typer.Option(help="local (process pool) or ray (default: the preset's)")] = "",
    ray_address: Annotated[str, typer.Option("--ray-address", "--address", help="Ray cluster address, e.g. auto")] = "",
    workers: Annotated[int, typer.Option(help="worker processes (0 = the preset's; its 0 = all cores)")] = 0,
    seed: Annotated[int, typer.Option(help="seed of MinHash and of the mixture's sampling (and of the built-in web)")] = 0,
    decontam: Annotated[list[Path] | None, typer.Option(help="evaluation file (jsonl/json/csv/parquet) to decontaminate against; repeatable")] = None,
    mix: Annotated[list[str] | None, typer.Option(
        "--mix", help="SOURCE=WEIGHT, repeatable: 0 drops a source, 0.5 keeps a seeded half, 2 = two epochs",
    )] = None,
    preset: PresetOpt = "cpu",
    overrides: OverridesArg = None,
) -> None:
    """Collect and clean documents: extraction, language, quality, dedup, decontamination, PII."""
    from chatforge.config import Config
    from chatforge.data.stage import clean

    sections = {f.name for f in Config.__dataclass_fields__.values()}
    extra = [o if o.split(".", 1)[0] in sections else f"data.{o}" for o in overrides or []]
    extra += [f"data.executor={executor}"] if executor else []
    extra += [f"data.ray_address={ray_address}"] if ray_address else []
    extra += [f"data.workers={workers}"] if workers else []
    extra += [f"data.mixture={','.join(mix)}"] if mix else []
    cfg = load_config(preset, extra)
    summary = clean(cfg, list(source or []), out, seed, list(decontam or []))
    if summary["skipped"]:
        err.print(f"[yellow]warning:[/yellow] {summary['skipped']}", highlight=False, soft_wrap=True)
    typer.echo(json.dumps(summary, default=float))


def _prefs_store(run_dir: Path):
    """The run's preference store (runs/<name>/prefs/prefs.db), created on first use."""
    from chatforge.align.prefs import PrefStore

    if not run_dir.is_dir():
        raise ChatforgeError(f"{run_dir}: no such run directory")
    return PrefStore(run_dir / "prefs")


SplitOpt = Annotated[str | None, typer.Option(help="only pairs of this split (default: all)")]


@prefs_app.command("label")
def prefs_label(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    labeller: Annotated[str | None, typer.Option(help="your name (default: the login name)")] = None,
    split: SplitOpt = None,
) -> None:
    """Label pairs in the terminal: a / b / t (tie) / s (skip) / u (undo) / q (quit)."""
    from chatforge.serve.label_cli import default_labeller, label_terminal

    session = label_terminal(_prefs_store(run_dir), labeller or default_labeller(), split)
    typer.echo(json.dumps(session))


@prefs_app.command("serve")
def prefs_serve(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 8765,
    split: SplitOpt = None,
) -> None:
    """Serve the labelling page (several labellers at once) and its statistics view."""
    from chatforge.serve.label_app import serve

    store = _prefs_store(run_dir)
    err.print(f"labelling page on http://{host}:{port}/ ({store.count(split)} pairs)",
              highlight=False, markup=False)
    serve(store.path, host, port, split)


@prefs_app.command("import")
def prefs_import(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    file: Annotated[Path, typer.Argument(help="preference file to import")],
    format: Annotated[str, typer.Option("--format", help="jsonl | hh-rlhf | llamafactory")] = "jsonl",
    split: Annotated[str, typer.Option(help="split the imported pairs go to")] = "train",
) -> None:
    """Import preference pairs (prompt/chosen/rejected JSONL, HH-RLHF, llamafactory DPO)."""
    store = _prefs_store(run_dir)
    readers = {"jsonl": store.import_jsonl, "hh-rlhf": store.import_hh_rlhf,
               "llamafactory": store.import_llamafactory}
    if format not in readers:
        raise ChatforgeError(f"--format: {format!r} is not one of {', '.join(readers)}")
    stats = readers[format](file, split=split)
    if stats.skipped:
        skipped = ", ".join(f"{k} x{v}" for k, v in stats.skipped.items())
        err.print(f"[yellow]warning:[/yellow] {file}: skipped {skipped}", highlight=False,
                  soft_wrap=True)
    typer.echo(json.dumps(stats.as_dict()))


@prefs_app.command("export")
def prefs_export(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    out: Annotated[Path, typer.Option(help="JSONL file to write (prompt/chosen/rejected)")],
    split: SplitOpt = None,
) -> None:
    """Export the majority preferences as prompt/chosen/rejected JSONL."""
    rows = _prefs_store(run_dir).export_jsonl(out, split=split)
    typer.echo(json.dumps({"out": str(out), "rows": rows}))


@prefs_app.command("stats")
def prefs_stats(run_dir: Annotated[Path, typer.Argument(help="run directory")]) -> None:
    """Labels per labeller, agreement (raw and Cohen's kappa), A/B position bias, as JSON."""
    typer.echo(json.dumps(_prefs_store(run_dir).stats(), indent=1))


@prefs_app.command("generate")
def prefs_generate(
    run_dir: Annotated[Path, typer.Argument(help="run directory with checkpoints/sft")],
    preset: Annotated[str, typer.Option("--preset", "-p", help="preset (default: the run's config.toml)")] = "",
    overrides: OverridesArg = None,
) -> None:
    """Two answers per built-in prompt from the SFT model (two temperatures) -> prefs.db."""
    cfg = _stage_config(run_dir, preset, {}, overrides)
    from chatforge.align import collect
    from chatforge.runs import RunDir

    store, pairs, imported = collect.generate(cfg, RunDir(run_dir), err)
    typer.echo(json.dumps({"prefs": str(store.path), "pairs": len(pairs), "imported": imported}))


@prefs_app.command("judge")
def prefs_judge(
    run_dir: Annotated[Path, typer.Argument(help="run directory with prefs/prefs.db")],
    judge: Annotated[str, typer.Option(help="rule | reward (the run's reward model) | http")] = "rule",
    url: Annotated[str, typer.Option(help="with --judge http: an OpenAI-compatible endpoint")] = "",
    model: Annotated[str, typer.Option(help="with --judge http: the model name to ask")] = "",
    preset: Annotated[str, typer.Option("--preset", "-p", help="preset (default: the run's config.toml)")] = "",
    overrides: OverridesArg = None,
) -> None:
    """Let a judge pick the better answer of every generated pair (labeller judge:NAME);
    another judge than the rules also reports its agreement with them."""
    cfg = _stage_config(run_dir, preset, {"prefs.judge_url": url or None, "prefs.judge_model": model or None},
                        overrides)
    from chatforge.align import collect
    from chatforge.runs import RunDir

    run = RunDir(run_dir)
    store, pairs, _ = collect.generate(cfg, run, err)
    typer.echo(json.dumps(collect.judge(cfg, run, store, pairs, judge), default=float))


def _train_stage(stage: str, run_dir: Path, preset: str, flags: dict, overrides: list[str] | None,
                 restart: bool) -> None:
    """Run one training stage of a run directory (re-run even when up to date: labels may
    have been added since) and print its metrics as one JSON line."""
    cfg = _stage_config(run_dir, preset, flags, overrides)
    from chatforge.pipeline import run_pipeline
    from chatforge.runs import RunDir

    manifests = run_pipeline(cfg, RunDir(run_dir, restart=restart), only=[stage], force=[stage])
    if os.environ.get("RANK", "0") == "0":
        typer.echo(json.dumps({"run_dir": str(run_dir), stage: manifests[stage].get("metrics", {})}, default=float))


@app.command()
def reward(
    run_dir: Annotated[Path, typer.Option(help="run directory holding prefs/ and checkpoints/sft")],
    margin: Annotated[float | None, typer.Option(help="Bradley-Terry margin (default: the preset's)")] = None,
    preset: Annotated[str, typer.Option("--preset", "-p", help="preset (default: the run's config.toml)")] = "",
    restart: RestartOpt = False,
    overrides: OverridesArg = None,
) -> None:
    """Train the reward model on the run's preferences -> checkpoints/reward."""
    _train_stage("reward", run_dir, preset, {"reward.margin": margin}, overrides, restart)


@app.command()
def dpo(
    run_dir: Annotated[Path, typer.Option(help="run directory holding prefs/ and checkpoints/sft")],
    beta: Annotated[float | None, typer.Option(help="KL strength beta (default: the preset's)", callback=bounds(0, 1e6, min_open=True))] = None,
    loss: Annotated[str | None, typer.Option(help="sigmoid (DPO) | ipo")] = None,
    preset: Annotated[str, typer.Option("--preset", "-p", help="preset (default: the run's config.toml)")] = "",
    restart: RestartOpt = False,
    overrides: OverridesArg = None,
) -> None:
    """Direct preference optimisation of the SFT model on the run's preferences -> checkpoints/dpo."""
    _train_stage("dpo", run_dir, preset, {"dpo.beta": beta, "dpo.loss": loss}, overrides, restart)


@app.command("eval")
def eval_cmd(
    target: Annotated[Path, typer.Argument(help="run directory, or one checkpoint directory")],
    tasks: Annotated[str, typer.Option(help="comma-separated: mmlu,gsm8k,humaneval,truthfulqa,ppl,builtin")] = "builtin",
    checkpoints: Annotated[str, typer.Option(help="comma-separated base,sft,dpo,ppo,grpo (default: all present)")] = "",
    data_dir: Annotated[Path | None, typer.Option(help="benchmark files in their official layout (e.g. ../shared/data)")] = None,
    limit: Annotated[int | None, typer.Option(help="items per task (MMLU: per subject)", min=1)] = None,
    shots: Annotated[int | None, typer.Option(help="few-shot examples for base models (default: the task's)", min=0, max=64)] = None,
    samples: Annotated[int, typer.Option(help="code samples per problem; > 1 reports pass@k", min=1, max=1000)] = 1,
    batch_size: Annotated[int, typer.Option(help="requests per forward pass", min=1, max=4096)] = 32,
    max_new_tokens: Annotated[int, typer.Option(help="longest generated answer, in tokens", min=1, max=1 << 16)] = 256,
    device: Annotated[str, typer.Option(help="cpu | cuda | mps | auto")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="print only the final JSON line")] = False,
) -> None:
    """Score checkpoints on benchmarks: a table, eval/<checkpoint>.json, per-item eval/<checkpoint>/<task>.jsonl."""
    from chatforge.eval.stage import cli_eval

    summary = cli_eval(target, [t for t in tasks.split(",") if t], [c for c in checkpoints.split(",") if c],
                       data_dir=data_dir, limit=limit, shots=shots, samples=samples, batch_size=batch_size,
                       max_new_tokens=max_new_tokens, device=device, console=None if as_json else err)
    typer.echo(json.dumps(summary, default=float))


@app.command()
def redteam(
    run_dir: Annotated[Path, typer.Argument(help="run directory (e.g. runs/latest)")],
    probes: Annotated[list[str] | None, typer.Option(
        "--probes", help="builtin | advbench | harmbench | jailbreak-prompts | crows-pairs | bbq | csv:PATH:COLUMN | jsonl:PATH:FIELD (repeatable)")] = None,
    judge: Annotated[list[str] | None, typer.Option(
        "--judge", help="rules | nb | endpoint:URL | hf:PATH (repeatable; the first gives the headline)")] = None,
    checkpoints: Annotated[str, typer.Option(help="comma-separated base,sft,dpo,ppo,grpo (default: all present)")] = "",
    max_requests: Annotated[int | None, typer.Option(help="harmful requests per source (0 = all)", min=0, max=1 << 20)] = None,
    attacked_requests: Annotated[int | None, typer.Option(
        help="of those, how many every attack wraps (0 = all)", min=0, max=1 << 20)] = None,
    data_root: Annotated[Path | None, typer.Option(help="folder of the public sets (default ../shared/data)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print only the final JSON line")] = False,
    preset: Annotated[str, typer.Option("--preset", "-p", help="preset (default: the run's config.toml)")] = "",
    overrides: OverridesArg = None,
) -> None:
    """Attack success per category and attack, over-refusal and bias of every checkpoint -> redteam/."""
    flags = {"redteam.probes": ",".join(probes) if probes else None,
             "redteam.judges": ",".join(judge) if judge else None,
             "redteam.checkpoints": checkpoints or None, "redteam.max_requests": max_requests,
             "redteam.attacked_requests": attacked_requests,
             "redteam.data_root": str(data_root) if data_root else None}
    cfg = _stage_config(run_dir, preset, flags, overrides)
    from chatforge.eval.redteam import run as redteam_run
    from chatforge.runs import RunDir

    report = redteam_run.redteam(cfg, RunDir(run_dir))
    if not as_json:
        typer.echo(redteam_run.markdown(report))
    typer.echo(json.dumps(redteam_run.summary(report), default=float))


@app.command()
def rlhf(
    run_dir: Annotated[Path, typer.Option(help="run directory holding checkpoints/sft (and reward for PPO)")],
    algo: Annotated[str, typer.Option(help="ppo (reward model, KL leash, critic) | grpo (verifiable rewards)")] = "ppo",
    preset: Annotated[str, typer.Option("--preset", "-p", help="preset (default: the run's config.toml)")] = "",
    restart: RestartOpt = False,
    overrides: OverridesArg = None,
) -> None:
    """Reinforcement learning of the SFT model -> checkpoints/ppo or checkpoints/grpo."""
    if algo not in ("ppo", "grpo"):
        raise ChatforgeError(f"--algo: {algo!r} is not one of ppo, grpo")
    _train_stage(algo, run_dir, preset, {f"{algo}.enabled": "true"}, overrides, restart)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory (e.g. runs/latest)")],
    lang: Annotated[str | None, typer.Option(help="en | tr (default: the config's report.lang)")] = None,
    compare: Annotated[Path | None, typer.Option(help="another run directory to show side by side")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default RUN_DIR/report)")] = None,
    cost_preset: Annotated[str | None, typer.Option(help="large scale of the cost section (default gpt4)")] = None,
    preset: Annotated[str, typer.Option("--preset", "-p", help="preset (default: the run's config.toml)")] = "",
    overrides: OverridesArg = None,
) -> None:
    """The run's report: report/index.html (self-contained) and report/report.md, every stage's figures."""
    cfg = _stage_config(run_dir, preset, {"report.lang": lang, "report.cost_preset": cost_preset}, overrides)
    from chatforge.report.stage import build_report

    paths = build_report(run_dir, lang=cfg.report.lang, compare=compare, out=out,
                         cost_preset=cfg.report.cost_preset, max_new_tokens=cfg.report.max_new_tokens)
    typer.echo(json.dumps(paths))


def main(args: list[str] | None = None) -> None:
    """Console entry point: one-line errors with exit code 2 unless --debug.

    Numeric options are bounded and finite (`cli_checks`); a bad one is a one-line usage
    error naming it, raised before the command starts any work."""
    try:
        sys.exit(cli_checks.invoke(cli_checks.command_of(app), args))
    except cli_checks.ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.ctx.get_help())
        else:
            err.print(f"[red]error:[/red] {cli_checks.one_line(exc)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except ChatforgeError as exc:
        if _DEBUG["on"]:
            raise
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        err.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
