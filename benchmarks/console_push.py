"""Merchant ↔ agent through one API process: 50 agent consoles and 500 open widgets, live both ways.

Run: ``.venv/app/bin/python -m benchmarks.console_push`` (``--agents 50 --widgets 500``). Writes
``benchmarks/results/console_push.md``.

A real API (uvicorn, one worker, SQLite) on a database with ``--widgets`` bench merchants, each with a
conversation an agent has taken (``--agents`` agents, round robin). Every agent opens the console's feed
(``/ws/agent``) and every merchant the widget's socket (``/ws/chat``). Then:

- **merchant → agent**: each merchant sends one message over its socket, spread over ``--seconds``; the time
  until it reaches the feed of the agent who owns the conversation (every console gets every event);
- **agent → merchant**: each agent replies to each of their conversations over REST (8 requests at a time);
  the time from the request's start until the merchant's widget has the reply.

Reported: p50 / p99 both ways, the share delivered (must be 100%), the sockets held and the API's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import websockets
from sqlalchemy.orm import Session

from api.db import make_engine
from api.models import Conversation, ConversationMode, Merchant, Role, User, utcnow
from api.security import create_merchant_token, hash_password
from devtools.prepare import ensure_database

from . import kb_common as kc
from .service_api import WIDGET_SECRET, api_server
from .turns_load import rss_mib

PASSWORD = "bench-password"
STAFF_CONCURRENCY = 8


def make_database(path: Path, agents: int, widgets: int) -> tuple[str, list[str], list[tuple[str, int, str]]]:
    """Bench agents and merchants, each merchant's conversation taken by an agent; returns the URL, the agents'
    usernames and (merchant code, conversation id, agent username) per widget."""
    url = f"sqlite:///{path}"
    ensure_database(url, demo_password=PASSWORD)
    engine = make_engine(url)
    digest = hash_password(PASSWORD)
    with Session(engine) as db:
        users = [User(username=f"bench{i:03d}", display_name=f"压测客服{i}", password_hash=digest, role=Role.agent)
                 for i in range(agents)]
        db.add_all(users)
        db.flush()
        rows = []
        for i in range(widgets):
            m = Merchant(code=f"MC{i:05d}", name=f"压测店铺{i}")
            db.add(m)
            db.flush()
            agent = users[i % agents]
            conv = Conversation(merchant_id=m.id, mode=ConversationMode.agent, assigned_agent_id=agent.id,
                                taken_at=utcnow(), waiting_since=utcnow())
            db.add(conv)
            db.flush()
            rows.append((m.code, conv.id, agent.username))
        names = [u.username for u in users]
        db.commit()
    engine.dispose()
    return url, names, rows


async def until(ws, kind: str) -> dict:
    while True:
        event = json.loads(await ws.recv())
        if event["type"] == kind:
            return event


async def measure(base: str, agents: list[str], rows: list[tuple[str, int, str]], seconds: float, pid: int) -> dict:
    ws_base = base.replace("http", "ws")
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        tokens = {}
        for name in agents:
            resp = await client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
            tokens[name] = resp.json()["access_token"]
        feeds = {name: await websockets.connect(f"{ws_base}/ws/agent?token={tokens[name]}", max_size=None)
                 for name in agents}
        widgets = {}
        for code, conv, _ in rows:
            ws = await websockets.connect(f"{ws_base}/ws/chat?token={create_merchant_token(code, WIDGET_SECRET, 60)}",
                                          max_size=None)
            await ws.send(json.dumps({"type": "hello", "conversation_id": conv, "after_id": 0}))
            await until(ws, "history")
            widgets[conv] = ws
        rss_open = rss_mib(pid)

        # merchant → agent
        sent: dict[int, float] = {}
        seen: dict[int, float] = {}
        owner = {conv: agent for _, conv, agent in rows}

        async def read_feed(name: str, ws) -> None:
            async for frame in ws:
                event = json.loads(frame)
                if event["type"] == "message" and event["message"]["sender"] == "merchant":
                    conv = event["conversation_id"]
                    if owner.get(conv) == name and conv not in seen:
                        seen[conv] = time.perf_counter()

        readers = [asyncio.create_task(read_feed(n, ws)) for n, ws in feeds.items()]

        async def merchant_says(conv: int, ws) -> None:
            await asyncio.sleep(random.uniform(0, seconds))
            sent[conv] = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "text": "请问我的货款什么时候解冻", "client_id": f"b{conv}"}))

        await asyncio.gather(*(merchant_says(conv, ws) for conv, ws in widgets.items()))
        deadline = time.perf_counter() + 30
        while len(seen) < len(rows) and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        for task in readers:
            task.cancel()
        up = [1000 * (seen[c] - sent[c]) for c in sent if c in seen]

        # agent → merchant
        started: dict[int, float] = {}
        got: dict[int, float] = {}

        async def read_widget(conv: int, ws) -> None:
            async for frame in ws:
                event = json.loads(frame)
                if event["type"] == "message" and event["message"]["sender"] == "agent":
                    got[conv] = time.perf_counter()
                    return

        listeners = [asyncio.create_task(read_widget(conv, ws)) for conv, ws in widgets.items()]
        gate = asyncio.Semaphore(STAFF_CONCURRENCY)

        async def reply(conv: int, agent: str) -> None:
            async with gate:
                started[conv] = time.perf_counter()
                resp = await client.post(f"/api/staff/conversations/{conv}/reply", json={"text": "您好，我来帮您查"},
                                         headers={"Authorization": f"Bearer {tokens[agent]}"})
                resp.raise_for_status()

        await asyncio.gather(*(reply(conv, agent) for _, conv, agent in rows))
        await asyncio.wait(listeners, timeout=30)
        down = [1000 * (got[c] - started[c]) for c in started if c in got]
        rss_end = rss_mib(pid)
        for ws in [*feeds.values(), *widgets.values()]:
            await ws.close()
    return {"up": up, "down": down, "sockets": len(feeds) + len(widgets), "rss_open": rss_open, "rss_end": rss_end}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--widgets", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0, help="merchants' messages spread over this long")
    args = parser.parse_args(argv)
    random.seed(5)
    with tempfile.TemporaryDirectory() as tmp:
        url, agents, rows = make_database(Path(tmp) / "bench.db", args.agents, args.widgets)
        with api_server(url) as (base, pid):
            r = asyncio.run(measure(base, agents, rows, args.seconds, pid))
    n = len(rows)

    def p(values: list[float], q: int) -> str:
        return f"{np.percentile(values, q):.0f}" if values else "—"

    table = [["merchant → agent's console", f"{len(r['up']) / n:.0%}", p(r["up"], 50), p(r["up"], 99)],
             ["agent's reply → merchant's widget", f"{len(r['down']) / n:.0%}", p(r["down"], 50), p(r["down"], 99)]]
    kc.publish("console_push.md", "Merchant ↔ agent through one API process", [
        f"{args.agents} agent consoles and {args.widgets} widgets connected to one uvicorn worker (SQLite): "
        f"{r['sockets']} sockets held; API memory {r['rss_open']:.0f} MiB with all open, {r['rss_end']:.0f} MiB "
        "at the end",
        f"merchants' messages spread over {args.seconds:.0f} s; agents' replies {STAFF_CONCURRENCY} at a time"],
        ["direction", "delivered", "p50 ms", "p99 ms"], table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
