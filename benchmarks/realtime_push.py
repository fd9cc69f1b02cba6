"""How fast a 服务进度提醒 reaches the merchant's open widget, with many widgets open.

Run: ``.venv/app/bin/python -m benchmarks.realtime_push`` (defaults: 10, 100 and 500 open widgets).

A real API (uvicorn, one worker, SQLite) is started twice: with the in-process hub and with the hub over Redis
(``SJZS_REDIS_URL``; the path several API instances take). Each of N merchants opens the widget's WebSocket and
says hello; a staff client then moves every merchant's case on (``POST /api/staff/cases/{number}/events``, 8 at a
time) and each socket notes when its notification arrives. Reported side by side in one run: the staff request's
own response time, and the push latency from the request's start to the widget, p50 / p99, plus the share of
notifications delivered (must be 100%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import websockets
from sqlalchemy.orm import Session

from api.db import make_engine
from api.models import CaseKind, CaseStatus, Merchant, ServiceCase
from api.security import create_merchant_token
from devtools.prepare import ensure_database

from .service_api import WIDGET_SECRET, api_server

STAFF_CONCURRENCY = 8
REDIS_URL = "redis://127.0.0.1:6379/15"


def make_database(path: Path, merchants: int) -> tuple[str, list[tuple[str, str]]]:
    """Demo data plus ``merchants`` bench merchants with one open case each; returns (code, case number)."""
    url = f"sqlite:///{path}"
    ensure_database(url, demo_password="bench-password")
    engine = make_engine(url)
    pairs = [(f"MB{i:05d}", f"GD29{i:08d}") for i in range(merchants)]
    with Session(engine) as db:
        for code, number in pairs:
            m = Merchant(code=code, name=f"压测店铺{code}")
            db.add(m)
            db.flush()
            db.add(ServiceCase(number=number, merchant_id=m.id, kind=CaseKind.withdrawal, title="提现未到账",
                               status=CaseStatus.submitted))
        db.commit()
    engine.dispose()
    return url, pairs


async def measure(base: str, pairs: list[tuple[str, str]]) -> dict:
    ws_base = base.replace("http", "ws")
    arrived: dict[str, float] = {}
    sockets = []
    for code, _ in pairs:
        token = create_merchant_token(code, WIDGET_SECRET, 60)
        ws = await websockets.connect(f"{ws_base}/ws/chat?token={token}", max_size=None)
        await ws.send(json.dumps({"type": "hello", "conversation_id": None, "after_id": 0}))
        while json.loads(await ws.recv())["type"] != "history":
            pass
        sockets.append(ws)

    async def listen(code: str, ws) -> None:
        async for frame in ws:
            if json.loads(frame)["type"] == "notification":
                arrived[code] = time.perf_counter()
                return

    listeners = [asyncio.create_task(listen(code, ws)) for (code, _), ws in zip(pairs, sockets, strict=True)]
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        login = await client.post("/api/auth/login", json={"username": "agent01", "password": "bench-password"})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        started: dict[str, float] = {}
        responded: dict[str, float] = {}
        gate = asyncio.Semaphore(STAFF_CONCURRENCY)

        async def advance(code: str, number: str) -> None:
            async with gate:
                started[code] = time.perf_counter()
                resp = await client.post(f"/api/staff/cases/{number}/events", headers=headers,
                                         json={"status": "processing", "note": "已受理，正在核实"})
                responded[code] = time.perf_counter()
                resp.raise_for_status()

        await asyncio.gather(*(advance(code, number) for code, number in pairs))
    done, pending = await asyncio.wait(listeners, timeout=30)
    for task in pending:
        task.cancel()
    for ws in sockets:
        await ws.close()
    push = [1000 * (arrived[c] - started[c]) for c, _ in pairs if c in arrived]
    rest = [1000 * (responded[c] - started[c]) for c, _ in pairs]
    return {"delivered": len(push) / len(pairs), "push": push, "rest": rest}


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widgets", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "realtime_push.md")
    args = parser.parse_args(argv)
    rows = []
    for n in args.widgets:
        for hub, env in (("进程内", {}), ("Redis", {"SJZS_REDIS_URL": REDIS_URL})):
            with tempfile.TemporaryDirectory() as tmp:
                url, pairs = make_database(Path(tmp) / "bench.db", n)
                with api_server(url, **env) as (base, _pid):
                    r = asyncio.run(measure(base, pairs))
            rows.append((n, hub, r))
            print(f"{n:>4} widgets, hub {hub}: delivered {r['delivered']:.0%}, staff request p50 "
                  f"{pct(r['rest'], 50):.0f} ms, push p50 {pct(r['push'], 50):.0f} ms / p99 {pct(r['push'], 99):.0f} ms",
                  flush=True)
    lines = [f"# 服务进度提醒 push latency ({datetime.now(UTC):%Y-%m-%d}, {platform.node()}, "
             f"{platform.processor() or platform.machine()}, 1 uvicorn worker, SQLite)", "",
             "| open widgets | hub | delivered | staff request p50 / p99 (ms) | push to widget p50 / p99 (ms) |",
             "|---|---|---|---|---|"]
    for n, hub, r in rows:
        lines.append(f"| {n} | {hub} | {r['delivered']:.0%} | {pct(r['rest'], 50):.0f} / {pct(r['rest'], 99):.0f} | "
                     f"{pct(r['push'], 50):.0f} / {pct(r['push'], 99):.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"→ {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
