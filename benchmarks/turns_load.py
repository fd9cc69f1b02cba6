"""Bot turns under load: the product (``POST /api/chat``) beside Rasa's REST webhook alone, same traffic, one run.

Run: ``.venv/app/bin/python -m benchmarks.turns_load`` (defaults: SQLite and PostgreSQL, closed loop at 1, 10, 50
and 200 sessions, open loop at 25–300 merchants, 20 s rounds). Writes ``benchmarks/results/turns_load.md``.

For each backend, a fresh seeded database with 5,000 extra bench merchants and the real three processes
(``devtools.stack.Stack``: API, Rasa, action server) on free ports, serving the model the product serves.
Traffic: FAQ questions (most in merchants' own words, some repeated chips), progress lookups and greetings; a
session talks as one merchant for 6 turns, then as a new one.

- **Closed loop**: N sessions each send their next message as soon as the reply is in. The product and
  Rasa's webhook alone (``/webhooks/rest/webhook``, the same texts and metadata, so the same actions run and
  call back into the API) take turns in rounds, so both see the same machine.
- **Open loop**: M merchants each wait 5–10 s (uniform) between messages, like people typing; the largest M
  whose p99 stays under 1 s is what the stack holds.

Reported per level: turns/s, p50/p95/p99, errors (HTTP errors and timeouts), "busy" (the overload notice, 503),
lost messages (sent and answered but not stored: must be 0), CPU seconds per turn of each process.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from api.db import make_engine
from api.kb_service import index_folder
from api.security import create_merchant_token
from core import vouch
from core.settings import REPO_ROOT, get_settings
from devtools.prepare import ensure_database, rasa_model_path
from devtools.stack import Stack
from kb_training import questions
from knowledge_base.embedder import identity

from . import kb_common as kc
from .service_api import free_port, machine_cpu, process_cpu

HOT = ["保证金怎么退", "提现多久到账", "货款为什么被冻结了"]  # the widget's chips: the same words every time
PROGRESS = ["查一下我的工单进度", "我的申诉到哪一步了"]
GREETING = "你好"
OPENERS = ["", "请问", "你好，", "想问下", "麻烦问一下，", "咨询一下", "客服，", "急！"]
# Of every 8 turns: 4 merchant-style questions in words of their own, 1 chip, 2 progress lookups, 1 greeting.
MIX = ["varied", "varied", "hot", "progress", "varied", "greeting", "varied", "progress"]
BENCH_MERCHANTS = 5000
TURNS_PER_CONVERSATION = 6  # then the session goes on as another merchant: conversations as long as real ones
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Sample:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    busy: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    machine: float = 0.0
    rss: dict[str, float] = field(default_factory=dict)  # at the end of the level, MiB

    def add(self, other: Sample) -> None:
        self.seconds += other.seconds
        self.latencies += other.latencies
        self.errors.update(other.errors)
        self.busy += other.busy
        for k, v in other.cpu.items():
            self.cpu[k] = self.cpu.get(k, 0.0) + v
        self.machine += other.machine
        self.rss = other.rss or self.rss


class Target:
    """One system under test: how a session sends a message and what a success is."""

    def __init__(self, name: str, stack: Stack, codes: list[str]):
        self.name, self.stack, self.codes = name, stack, codes
        s = stack.settings
        self.tokens = {c: create_merchant_token(c, s.widget_secret, 120) for c in codes}
        self.run_id = uuid.uuid4().hex[:6]
        self.answered = 0  # the product's 200s and 503s over the whole run: each one's message must be stored
        self.next_merchant = 0
        self.current: dict[int, int] = {}  # session → merchant index

    def text_for(self, session: int, n: int) -> str:
        kind = MIX[(session + n) % len(MIX)]
        if kind == "varied":  # new to the embedding cache until the pool is used up (one pool for both systems)
            return VARIED[next(VARIED_NEXT) % len(VARIED)]
        if kind == "hot":
            return HOT[(session + n) % len(HOT)]
        return PROGRESS[(session + n) % len(PROGRESS)] if kind == "progress" else GREETING

    def merchant_for(self, session: int, n: int) -> int:
        """A session talks as one merchant for TURNS_PER_CONVERSATION turns, then as the next unused one."""
        if n % TURNS_PER_CONVERSATION == 0 or session not in self.current:
            self.current[session] = self.next_merchant % len(self.codes)
            self.next_merchant += 1
        return self.current[session]

    async def send(self, client: httpx.AsyncClient, session: int, n: int, sample: Sample) -> None:
        code, text_ = self.codes[self.merchant_for(session, n)], self.text_for(session, n)
        started = time.perf_counter()
        try:
            if self.name == "product":
                resp = await client.post(f"{self.stack.settings.api_url}/api/chat", json={"text": text_},
                                         headers={"Authorization": f"Bearer {self.tokens[code]}"})
            else:
                resp = await client.post(f"{self.stack.settings.rasa_url}/webhooks/rest/webhook",
                                         json={"sender": f"bench-{self.run_id}-{code}", "message": text_,
                                               "metadata": vouch.metadata(self.stack.settings.internal_token,
                                                                          code, None)})
        except httpx.HTTPError as exc:
            sample.errors[type(exc).__name__] += 1
            return
        if resp.status_code == 200:
            sample.latencies.append(time.perf_counter() - started)
            self.answered += 1
        elif resp.status_code == 503 and self.name == "product" and "咨询人数较多" in resp.text:
            sample.busy += 1
            self.answered += 1
        else:
            sample.errors[f"HTTP {resp.status_code}"] += 1


def varied_questions() -> list[str]:
    """The calibration set's merchant-style questions (data/calibration/in_scope.yml, product data, not the
    benchmark's held-out questions), each with each opener: 5,936 different texts, in a fixed shuffled order."""
    import yaml

    rows = yaml.safe_load(questions.CALIBRATION_IN_SCOPE.read_text(encoding="utf-8"))["questions"]
    texts = [opener + r["q"] for r in rows for opener in OPENERS]
    random.Random(11).shuffle(texts)
    return texts


VARIED = varied_questions()
VARIED_NEXT = itertools.count()


def tree_pids(stack: Stack) -> dict[str, list[int]]:
    """Each service's process and its children (Rasa and the action server may fork)."""
    out = {}
    for name, pid in stack.pids().items():
        pids, frontier = [pid], [pid]
        while frontier:
            p = frontier.pop()
            try:
                kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            except OSError:
                kids = []
            pids += [int(k) for k in kids]
            frontier += [int(k) for k in kids]
        out[name] = pids
    return out


def per_service(stack: Stack, read) -> dict[str, float]:
    """``read(pid)`` summed over each service's processes (a process that ended meanwhile counts 0)."""
    out = {}
    for name, pids in tree_pids(stack).items():
        total = 0.0
        for p in pids:
            try:
                total += read(p)
            except OSError:
                pass
        out[name] = total
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_now(stack: Stack) -> dict[str, float]:
    """Resident memory of each service (its processes together), MiB."""
    return per_service(stack, rss_mib)


def cpu_now(stack: Stack) -> dict[str, float]:
    return per_service(stack, process_cpu)


async def measured(target: Target, connections: int, traffic) -> Sample:
    """Run ``traffic(client, sample)`` and add the time, the CPU of each process and of the machine."""
    sample = Sample()
    limits = httpx.Limits(max_connections=connections + 4, max_keepalive_connections=connections + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        cpu0, m0, t0 = cpu_now(target.stack), machine_cpu(), time.perf_counter()
        await traffic(client, sample)
        cpu1, m1 = cpu_now(target.stack), machine_cpu()
    sample.seconds = time.perf_counter() - t0
    sample.cpu = {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}
    sample.machine = m1 - m0
    sample.rss = rss_now(target.stack)
    return sample


async def closed_loop(target: Target, sessions: int, seconds: float) -> Sample:
    deadline = time.perf_counter() + seconds

    async def traffic(client: httpx.AsyncClient, sample: Sample) -> None:
        async def session(i: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                await target.send(client, i, n, sample)
                n += 1

        await asyncio.gather(*(session(i) for i in range(sessions)))

    return await measured(target, sessions, traffic)


async def open_loop(target: Target, merchants: int, seconds: float, rng: random.Random) -> Sample:
    deadline = time.perf_counter() + seconds

    async def traffic(client: httpx.AsyncClient, sample: Sample) -> None:
        async def merchant(i: int) -> None:
            n = 0
            await asyncio.sleep(rng.uniform(0, 10))  # arrivals spread out, as they would be
            while time.perf_counter() < deadline:
                await target.send(client, i, n, sample)
                n += 1
                await asyncio.sleep(rng.uniform(5, 10))

        await asyncio.gather(*(merchant(i) for i in range(merchants)))

    return await measured(target, merchants, traffic)


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.0f}" if values else "—"


def row(label: str, system: str, level: int, s: Sample) -> list:
    turns = len(s.latencies) + s.busy
    per_turn = " / ".join(f"{s.cpu.get(k, 0) / max(turns, 1) * 1000:.0f}" for k in ("api", "rasa", "actions"))
    return [label, system, level, f"{len(s.latencies) / max(s.seconds, 1e-9):.1f}", pct(s.latencies, 50),
            pct(s.latencies, 95), pct(s.latencies, 99), sum(s.errors.values()), s.busy, per_turn,
            f"{s.machine / max(s.seconds, 1e-9) * 100:.0f}%",
            " / ".join(f"{s.rss.get(k, 0):.0f}" for k in ("api", "rasa", "actions"))]


# --------------------------------------------------------------------------- the stack under test


def prepare_backend(backend: str, root: Path) -> tuple[str, list[str]]:
    """A fresh seeded database with the bench merchants; returns its URL and their codes."""
    if backend == "sqlite":
        url = f"sqlite:///{root / 'bench.db'}"
    else:
        import psycopg

        name = f"sjzs_bench_turns_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{name}"
    ensure_database(url)
    codes = [f"M3{i:05d}" for i in range(BENCH_MERCHANTS)]
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO merchants (code, name, main_category, created_at) "
                          "VALUES (:code, :name, '服饰', CURRENT_TIMESTAMP)"),
                     [{"code": c, "name": f"压测店铺{c}"} for c in codes])
    engine.dispose()
    return url, codes


def drop_backend(url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_stack(root: Path, url: str) -> Stack:
    product = get_settings()
    model = product.model_path
    settings = product.model_copy(update={
        "var_dir": root, "database_url": url, "embedding_model": model, "kb_index_dir": root / "index",
        "api_port": free_port(), "rasa_port": free_port(), "action_port": free_port()})
    saved = index_folder(product.index_dir, identity(model)[0])
    if saved.exists():  # the same seed data: the product's saved index matches, no need to embed it again
        shutil.copytree(saved, index_folder(settings.index_dir, identity(model)[0]))
    stack = Stack(settings, echo=lambda _line: None, rasa_model=rasa_model_path(product))
    stack.start(timeout=300)
    return stack


def stored_turns(url: str, codes: list[str]) -> int:
    from api.models import Conversation, Merchant, Message, Sender

    engine = make_engine(url)
    with Session(engine) as db:
        n = db.scalar(select(func.count(Message.id)).join(Conversation).join(Merchant)
                      .where(Message.sender == Sender.merchant, Merchant.code.in_(codes)))
    engine.dispose()
    return int(n or 0)


def run_backend(backend: str, args: argparse.Namespace) -> tuple[list[list], list[str]]:
    root = REPO_ROOT / "var" / "bench-turns" / backend
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    url, codes = prepare_backend(backend, root)
    stack = start_stack(root, url)
    rows, notes = [], []
    try:
        targets = [Target("product", stack, codes), Target("rasa", stack, codes)]
        for t in targets:  # warm-up: models, caches, connections
            asyncio.run(closed_loop(t, 4, 5))
        for level in args.closed:
            totals = {t.name: Sample() for t in targets}
            for _ in range(args.rounds):
                for t in targets:
                    totals[t.name].add(asyncio.run(closed_loop(t, level, args.seconds)))
            for t in targets:
                rows.append(row(f"{backend}, closed loop", "product" if t.name == "product" else "Rasa webhook alone",
                                level, totals[t.name]))
            p_prod, p_rasa = (np.percentile(totals[n].latencies, 50) if totals[n].latencies else float("nan")
                              for n in ("product", "rasa"))
            notes.append(f"{backend}, {level} sessions: product p50 / Rasa p50 = {p_prod / p_rasa:.2f}")
        rng = random.Random(7)
        for merchants in args.open:
            for t in targets:
                s = asyncio.run(open_loop(t, merchants, args.open_seconds, rng))
                rows.append(row(f"{backend}, open loop (5–10 s think)", "product" if t.name == "product"
                                else "Rasa webhook alone", merchants, s))
        stored = stored_turns(url, codes)
        notes.append(f"{backend}: merchant messages answered by the product {targets[0].answered}, stored {stored}, "
                     f"lost {targets[0].answered - stored}")
    finally:
        stack.stop()
        drop_backend(url)
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--closed", nargs="+", type=int, default=[1, 10, 50, 200])
    parser.add_argument("--open", nargs="+", type=int, default=[25, 50, 100, 200, 300])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of one closed-loop round")
    parser.add_argument("--rounds", type=int, default=2, help="closed-loop rounds per system and level")
    parser.add_argument("--open-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows, notes = [], []
    for backend in args.backend:
        r, n = run_backend(backend, args)
        rows += r
        notes += n
        print("\n".join(n), flush=True)
    headers = ["traffic", "system", "sessions / merchants", "turns/s", "p50 ms", "p95 ms", "p99 ms", "errors",
               "busy (overload notice)", "CPU ms per turn: API / Rasa / actions", "machine CPU",
               "memory MiB: API / Rasa / actions"]
    text_ = kc.header("Bot turns under load: the product beside Rasa's webhook alone", [
        f"Started: {started}", f"Model served: {get_settings().model_path}",
        "Closed loop: rounds alternate between the two systems at each level; open loop: each merchant waits "
        "5–10 s between messages.",
        "Traffic, of every 8 turns: 4 merchant-style questions in their own words (never the same text twice until "
        "5,936 are used), 1 chip (the same words each time), 2 progress lookups, 1 greeting.", *notes])
    out = text_ + "\n\n" + kc.table(headers, rows) + "\n"
    kc.write_result("turns_load.md", out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
