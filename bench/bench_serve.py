"""Serving speed: continuous batching against one-request-at-a-time, same model, same run.

Starts `chatforge serve` twice as a subprocess on loopback: once batching (`--max-concurrency
64`) and once serving one request at a time (`--max-concurrency 1`, the rest queued), the
reference. For 1, 8 and 32 concurrent streaming clients (asyncio + httpx, all released at
once, each asking for `--new-tokens` with `ignore_eos` so every answer has the same length)
it measures time to first token, per-client decode tokens/s (after its first token) and total
tokens/s (all tokens / wall time of the round). Rounds of the two servers are interleaved,
repeated, and reported as mean and spread, with the batched/reference ratio.

    python bench/bench_serve.py [--run-dir runs/latest] [--new-tokens 64] [--repeats 3]
    python bench/bench_serve.py --quick

Without --run-dir it serves a random model (--depth/--width; a tokenizer trained on
synthetic text): speed does not depend on what the weights say.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

from chatforge.model.checkpoint import save_model
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.runs import atomic_write_json
from chatforge.tokenizer.bpe import train_bpe

RESULTS = Path(__file__).parent / "results" / "serve.json"
WORDS = "red green blue cat dog bird one two three four five river stone cloud light".split()


def random_run(root: Path, depth: int, width: int, seq_len: int) -> Path:
    """A run directory holding a tokenizer and a random sft checkpoint."""
    texts = [" ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 12)) + f" {i}." for i in range(2000)]
    tok = train_bpe(texts, vocab_size=2048)
    tok.save(root / "tokenizer")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=depth, n_embd=width, n_head=max(1, width // 64),
                          seq_len=seq_len))
    save_model(model, root / "checkpoints" / "sft")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`chatforge serve` in a subprocess, waited on until /health answers."""

    def __init__(self, run_dir: Path, max_concurrency: int, device: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "chatforge", "serve", str(run_dir), "--port", str(self.port),
               "--max-concurrency", str(max_concurrency), "--queue", "256", "--device", device]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while True:
            try:
                self.model = httpx.get(self.url + "/health", timeout=2).json()["model"]
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"server did not start: {self.proc.stderr.read()}") from None
                time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def one_client(http: httpx.AsyncClient, url: str, model: str, i: int, new_tokens: int, start: float) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": f"{WORDS[i % len(WORDS)]} {i} tell me more"}],
            "max_tokens": new_tokens, "temperature": 0.8, "seed": i, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    first, tokens = None, 0
    async with http.stream("POST", url + "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if first is None and any(c["delta"].get("content") for c in chunk["choices"]):
                first = time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    first = first or end
    return {"ttft": first - start, "tokens": tokens, "decode_tps": (tokens - 1) / max(end - first, 1e-9), "end": end}


async def round_of(url: str, model: str, clients: int, new_tokens: int) -> dict:
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        start = time.perf_counter()
        results = await asyncio.gather(*(one_client(http, url, model, i, new_tokens, start) for i in range(clients)))
    wall = max(r["end"] for r in results) - start
    assert all(r["tokens"] == new_tokens for r in results), [r["tokens"] for r in results]
    return {"ttft_s": statistics.mean(r["ttft"] for r in results),
            "per_client_tps": statistics.mean(r["decode_tps"] for r in results),
            "total_tps": sum(r["tokens"] for r in results) / wall}


def summarise(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "stdev": statistics.stdev(values) if len(values) > 1 else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", type=Path, help="serve this run's model (default: a random one)")
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="small check: 16 new tokens, 1 repeat")
    args = ap.parse_args()
    if args.quick:
        args.new_tokens, args.repeats = 16, 1
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or random_run(Path(tmp), args.depth, args.width, args.seq_len)
        servers = {"batched": ServerProcess(run_dir, 64, args.device),
                   "one_at_a_time": ServerProcess(run_dir, 1, args.device)}
        try:
            for s in servers.values():  # warm-up: first-call allocations and lazy inits
                asyncio.run(round_of(s.url, s.model, 2, 4))
            raw = {name: {c: [] for c in args.clients} for name in servers}
            for _ in range(args.repeats):
                for c in args.clients:
                    for name, s in servers.items():  # interleaved, so drift hits both alike
                        raw[name][c].append(asyncio.run(round_of(s.url, s.model, c, args.new_tokens)))
        finally:
            for s in servers.values():
                s.close()
    report = {"device": args.device, "new_tokens": args.new_tokens, "repeats": args.repeats,
              "model": str(args.run_dir) if args.run_dir else f"random depth {args.depth} width {args.width}",
              "cpu_threads": torch.get_num_threads(), "cores": os.cpu_count(), "results": {}}
    print(f"{'clients':>7} {'server':>14} {'TTFT s':>14} {'per-client tok/s':>18} {'total tok/s':>16}")
    for c in args.clients:
        row = {}
        for name in servers:
            stats = {k: summarise([r[k] for r in raw[name][c]]) for k in ("ttft_s", "per_client_tps", "total_tps")}
            row[name] = stats
            print(f"{c:>7} {name:>14} {stats['ttft_s']['mean']:>8.3f}±{stats['ttft_s']['stdev']:<5.3f}"
                  f" {stats['per_client_tps']['mean']:>11.1f}±{stats['per_client_tps']['stdev']:<6.1f}"
                  f" {stats['total_tps']['mean']:>9.1f}±{stats['total_tps']['stdev']:<6.1f}")
        b, o = row["batched"], row["one_at_a_time"]
        row["ratio_total_tps"] = b["total_tps"]["mean"] / o["total_tps"]["mean"]
        row["ratio_ttft"] = b["ttft_s"]["mean"] / o["ttft_s"]["mean"]
        print(f"{c:>7} {'ratio':>14} TTFT x{row['ratio_ttft']:.2f}, total tok/s x{row['ratio_total_tps']:.2f}")
        report["results"][str(c)] = row
    atomic_write_json(RESULTS if not args.quick else RESULTS.with_name("serve_quick.json"), report)


if __name__ == "__main__":
    main()
