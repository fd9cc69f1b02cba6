"""One of each process against two of each behind nginx (devtools/cluster.py), on PostgreSQL + Redis, in one run.

For each layout: the time to start, turns through the entrance (closed loop at 10 sessions, open loop at 300
merchants waiting 5–10 s between messages, the traffic of benchmarks/turns_load.py), every answered message
stored, memory. For the two-instance layout also: how long after an FAQ is published through one API instance the
other instance's index finds it (each direction, polled every 10 ms).

    .venv/app/bin/python -m benchmarks.scale_out            # ~8 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import shutil
import time
import uuid
from datetime import UTC, datetime

import httpx
import numpy as np

from core.settings import REPO_ROOT, get_settings
from devtools.cluster import Cluster, Instance
from devtools.prepare import rasa_model_path
from devtools.stack import Stack

from .service_api import free_port
from .turns_load import (
    PG_ADMIN,
    Target,
    closed_loop,
    drop_backend,
    open_loop,
    pct,
    prepare_backend,
    rss_now,
    start_stack,
    stored_turns,
)

RESULTS = REPO_ROOT / "benchmarks" / "results" / "scale_out.md"


def start_cluster(root, url: str) -> Cluster:
    product = get_settings()
    model = product.model_path
    tracker = f"sjzs_bench_rasa_{uuid.uuid4().hex[:8]}"
    settings = product.model_copy(update={
        "var_dir": root, "database_url": url, "embedding_model": model, "kb_index_dir": root / "index",
        "api_port": free_port(), "rasa_port": free_port(), "action_port": free_port(),
        "redis_url": "redis://127.0.0.1:6379/0", "rasa_tracker_url": PG_ADMIN.rsplit("/", 1)[0] + f"/{tracker}"})
    if product.index_dir.exists():
        shutil.copytree(product.index_dir, settings.index_dir)
    cluster = Cluster(settings, instances=[Instance(free_port(), free_port(), free_port()) for _ in range(2)],
                      internal_port=free_port(), echo=lambda _line: None, rasa_model=rasa_model_path(product))
    cluster.start(timeout=420)
    return cluster


def login(base: str, username: str, password: str) -> dict:
    resp = httpx.post(f"{base}/api/auth/login", json={"username": username, "password": password}, timeout=60)
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def publish_delays(cluster: Cluster, rounds: int) -> list[float]:
    """Seconds from an FAQ's publish response on one instance to the other instance's index finding it."""
    s = cluster.settings
    apis = [f"http://{s.host}:{i.api}" for i in cluster.instances]
    delays = []
    for n in range(rounds):
        src, dst = apis[n % 2], apis[(n + 1) % 2]
        editor = login(src, "editor01", s.demo_password)
        agent = login(dst, "agent01", s.demo_password)
        word = f"测速{uuid.uuid4().hex[:6]}"
        question = f"直播间{word}福袋怎么设置"
        resp = httpx.post(f"{src}/api/kb/faqs", headers=editor, timeout=60, json={
            "question": question, "answer": f"{word}：在直播中控台点「互动」→「福袋」。", "category": "营销活动",
            "similar": [f"{word}福袋在哪设置"], "status": "published"})
        resp.raise_for_status()
        faq_id, published = resp.json()["id"], time.perf_counter()
        while time.perf_counter() - published < 30:
            found = httpx.get(f"{dst}/api/staff/kb/search", params={"q": question}, headers=agent, timeout=30)
            if any(c["faq_id"] == faq_id for c in found.json()["suggestions"]):
                delays.append(time.perf_counter() - published)
                break
            time.sleep(0.01)
        else:
            delays.append(float("inf"))
    return delays


def run_layout(name: str, args) -> tuple[list[str], list[float]]:
    root = REPO_ROOT / "var" / "bench-scale" / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    url, codes = prepare_backend("postgresql", root)
    t0 = time.perf_counter()
    stack: Stack = start_cluster(root, url) if name == "cluster" else start_stack(root, url)
    started = time.perf_counter() - t0
    try:
        target = Target("product", stack, codes)
        closed = asyncio.run(closed_loop(target, 10, args.seconds))
        opened = asyncio.run(open_loop(target, 300, args.seconds * 2, random.Random(7)))
        delays = publish_delays(stack, args.publishes) if name == "cluster" else []
        rss = sum(rss_now(stack).values()) / 1024
        stored = stored_turns(url, codes)
    finally:
        stack.stop()
        drop_backend(url)
        if name == "cluster":  # Rasa's tracker database too
            drop_backend(stack.settings.rasa_tracker_url.replace("postgresql://", "postgresql+psycopg://"))
    errors = sum(closed.errors.values()) + sum(opened.errors.values())
    label = "2 × (API, Rasa, actions) behind nginx" if name == "cluster" else "1 × (API, Rasa, actions)"
    row = [label, f"{started:.0f}", f"{len(closed.latencies) / closed.seconds:.1f}", pct(closed.latencies, 50),
           pct(closed.latencies, 99), pct(opened.latencies, 50), pct(opened.latencies, 99),
           f"{errors}", f"{target.answered} / {stored}", f"{rss:.2f}"]
    return row, delays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--publishes", type=int, default=20)
    args = parser.parse_args(argv)
    rows, delays = [], []
    for name in ("single", "cluster"):
        row, d = run_layout(name, args)
        rows.append(row)
        delays += d
        print(" | ".join(row), flush=True)
    head = ["layout", "start s", "turns/s (10 sessions)", "p50 ms", "p99 ms", "300 merchants p50 ms", "p99 ms",
            "errors", "answered / stored", "RSS GiB"]
    finite = [x for x in delays if x != float("inf")]
    lines = [f"# Scale-out: one of each vs two of each behind nginx ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
             f"{platform.processor() or platform.machine()}, PostgreSQL + Redis)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"FAQ published on one API instance → found by the other's index ({len(delays)} publishes, "
              f"alternating directions): p50 {np.percentile(finite, 50) * 1000:.0f} ms, "
              f"p95 {np.percentile(finite, 95) * 1000:.0f} ms, max {max(finite) * 1000:.0f} ms, "
              f"never found: {len(delays) - len(finite)}"]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
