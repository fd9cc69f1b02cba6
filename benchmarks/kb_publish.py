"""From publishing an FAQ in the workbench's API to the bot answering a merchant with it, through the real stack
(API, Rasa, action server; SQLite): each round publishes a new FAQ, then a merchant asks its question over
``POST /api/chat`` until the bot answers with it; the time runs from the publish request to that answer.

    .venv/app/bin/python -m benchmarks.kb_publish            # ~2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
import uuid
from datetime import UTC, datetime

import httpx
import numpy as np

from api.security import create_merchant_token
from core.settings import REPO_ROOT

from .turns_load import drop_backend, prepare_backend, start_stack

RESULTS = REPO_ROOT / "benchmarks" / "results" / "kb_publish.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    root = REPO_ROOT / "var" / "bench-publish"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    url, codes = prepare_backend("sqlite", root)
    stack = start_stack(root, url)
    s = stack.settings
    base = s.api_url
    delays, asks = [], []
    try:
        login = httpx.post(f"{base}/api/auth/login", json={"username": "editor01", "password": s.demo_password})
        editor = {"Authorization": f"Bearer {login.json()['access_token']}"}
        merchant = {"Authorization": f"Bearer {create_merchant_token(codes[0], s.widget_secret, 60)}"}
        for _ in range(args.rounds):
            word = f"星链{uuid.uuid4().hex[:4]}"
            question = f"{word}直播福袋怎么设置"
            t0 = time.perf_counter()
            created = httpx.post(f"{base}/api/kb/faqs", headers=editor, timeout=60, json={
                "question": question, "answer": f"{word}福袋：直播中控台 → 互动 → 福袋。", "category": "营销活动",
                "similar": [f"{word}福袋在哪设置", f"怎么发{word}福袋"], "status": "published"})
            created.raise_for_status()
            n = 0
            while time.perf_counter() - t0 < 60:
                n += 1
                body = httpx.post(f"{base}/api/chat", json={"text": question}, headers=merchant, timeout=60).json()
                if any(word in (m.get("text") or "") for m in body.get("messages", [])):
                    delays.append(time.perf_counter() - t0)
                    asks.append(n)
                    break
            else:
                delays.append(float("inf"))
    finally:
        stack.stop()
        drop_backend(url)
    ok = [d for d in delays if d != float("inf")]
    line = (f"{len(ok)} of {len(delays)} answered with the new FAQ; publish → answer p50 "
            f"{np.percentile(ok, 50) * 1000:.0f} ms, p95 {np.percentile(ok, 95) * 1000:.0f} ms, "
            f"max {max(ok) * 1000:.0f} ms; asked once before the answer came in {asks.count(1)} of {len(asks)}")
    text = (f"# Publish → the bot answers with it ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{platform.processor() or platform.machine()}, SQLite, real API + Rasa + actions)\n\n{line}\n")
    RESULTS.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
