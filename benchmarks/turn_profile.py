"""Where one bot turn's CPU goes, per process: the real stack, one merchant at a time, sampled by py-spy.

Run: ``.venv/app/bin/python -m benchmarks.turn_profile`` (``--seconds 30``, ``--backend sqlite``). Writes
``benchmarks/results/turn_profile.md``.

A fresh database and the three processes as ``benchmarks.turns_load`` starts them; one session sends the same
traffic as there (``POST /api/chat``), turn after turn, while ``py-spy record`` samples each process and its
children. Each process's CPU time per turn (from /proc) is split over the steps below in proportion to the
samples whose stack shows that step (the first rule that matches, in the order listed; idle samples are not
counted, nor waits: see ``IDLE_LEAVES``). The flame-graph input files (``var/bench-profile/*.txt``, py-spy's raw format) are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

from core.settings import REPO_ROOT

from . import kb_common as kc
from . import turns_load as tl

PY_SPY = REPO_ROOT / ".venv" / "app" / "bin" / "py-spy"

# (process, step, pattern matched against any frame of a sample's stack); first match wins, in this order.
STEPS: list[tuple[str, str, str]] = [
    ("api", "embedding the question (sentence-transformers, torch)", r"Embedder\.|SentenceTransformer|\(torch/"),
    ("api", "knowledge-base search: FAISS, lexical scores, decision", r"kb_search \(|KnowledgeBase\.search|Retriever\."),
    ("api", "case and appeal lookups (the action server's calls)", r"\(api/routes/(internal|merchant)\.py\)"),
    ("api", "auth: widget token → merchant", r"principal_only|get_principal|merchant_for_token"),
    ("api", "storing the merchant's message", r"Gateway\._store_said"),
    ("api", "storing the bot's replies", r"Gateway\._store_(replies|system)"),
    ("api", "calling Rasa (HTTP client)", r"RasaClient\.send"),
    ("api", "HTTP server, routing, validation, threadpool (uvicorn, FastAPI, anyio)",
     r"\((uvicorn|starlette|fastapi|anyio|h11|httptools)/"),
    ("rasa", "validating the action server's responses (jsonschema)", r"_validate_action_result"),
    ("rasa", "NLU: jieba, featurisers, intent classifier", r"parse_message"),
    ("rasa", "calling the action server (aiohttp)", r"RemoteAction\.run|\(aiohttp/"),
    ("rasa", "policies: rules and memoisation", r"predict_next|\(rasa/core/policies/|\(rasa/engine/"),
    ("rasa", "tracker and lock stores", r"tracker_store|lock_store|fetch_tracker|save_tracker"),
    ("rasa", "HTTP server (Sanic), channel", r"\((sanic|rasa/core/channels)/"),
    ("actions", "HTTP calls to the API (httpx)", r"\(httpx/|\(httpcore/"),
    ("actions", "our actions' own code", r"\(actions/"),
    ("actions", "HTTP server, dispatch (Sanic, rasa-sdk)", r"\((sanic|rasa_sdk)/"),
]


# py-spy cannot tell a waiting thread from a working one here (it reports threads blocked in a futex or in
# uvloop's epoll as active), so a sample whose innermost frame is one of these waits counts as idle.
IDLE_LEAVES = re.compile(r"^(Condition\.wait|Event\.wait|Queue\.get|socket\.accept|Connection\._recv|"
                         r"Connection\._poll|\w*Selector\.select|Runner\.run|_run_server_forever|"
                         r"serve_forever|serve_single|sleep|run_forever|BaseEventLoop\._run_once|_worker|main) ")


def is_idle(stack: str) -> bool:
    return bool(IDLE_LEAVES.match(stack.rsplit(";", 1)[-1]))


def classify(process: str, stack: str) -> str:
    for proc, step, pattern in STEPS:
        if proc == process and re.search(pattern, stack):
            return step
    return "other (Python runtime, logging, event loop)"


def read_samples(path: Path) -> Counter:
    """py-spy's raw format: one line per distinct stack, frames joined by ';', then the sample count."""
    counts: Counter = Counter()
    if not path.exists():
        return counts
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            stack, n = line.rsplit(" ", 1)
            if not is_idle(stack):
                counts[stack] += int(n)
    return counts


def profile(backend: str, seconds: float, rate: int) -> tuple[list[list], list[str]]:
    root = REPO_ROOT / "var" / "bench-profile"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    url, codes = tl.prepare_backend(backend, root)
    stack = tl.start_stack(root, url)
    try:
        target = tl.Target("product", stack, codes)
        asyncio.run(tl.closed_loop(target, 4, 5))  # warm-up
        spies = {name: subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--subprocesses", "--format",
                                         "raw", "--rate", str(rate), "--duration", str(int(seconds) + 4),
                                         "--output", str(root / f"{name}.txt")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for name, pid in stack.pids().items()}
        time.sleep(2)  # py-spy attached
        sample = asyncio.run(tl.closed_loop(target, 1, seconds))
        for spy in spies.values():
            spy.wait()
    finally:
        stack.stop()
        tl.drop_backend(url)
    turns = len(sample.latencies)
    rows, notes = [], [f"{turns} turns in {sample.seconds:.0f} s, one at a time; product p50 "
                       f"{tl.pct(sample.latencies, 50)} ms"]
    for name in ("api", "rasa", "actions"):
        counts: Counter = Counter()
        for stack_, n in read_samples(root / f"{name}.txt").items():
            counts[classify(name, stack_)] += n
        total = sum(counts.values())
        cpu_ms = sample.cpu.get(name, 0.0) / max(turns, 1) * 1000
        notes.append(f"{name}: {cpu_ms:.1f} ms CPU per turn, {total} busy samples")
        for step, n in counts.most_common():
            rows.append([name, step, f"{cpu_ms * n / max(total, 1):.1f}", f"{n / max(total, 1) * 100:.0f}%"])
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = parser.parse_args(argv)
    rows, notes = profile(args.backend, args.seconds, args.rate)
    kc.publish("turn_profile.md", "Where one bot turn's CPU goes, per process", [f"Backend: {args.backend}", *notes],
               ["process", "step", "CPU ms per turn", "share of the process"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
