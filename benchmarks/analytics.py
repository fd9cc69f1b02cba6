"""The dashboard's time for 1M conversations on PostgreSQL (target: under 1 s for a month's range).

Builds a scratch database (migrated to head, seeded with the FAQs and demo accounts), bulk-loads a year of
synthetic traffic with COPY — 1,000,000 conversations of 20,000 merchants, ~4 messages each, answers, 您是想问,
no-answers, feedback, escalations handled by agents, ratings — builds the analytics rollup from scratch, times its
refresh after 1,000 new conversations, then times ``api.services.analytics.compute`` (what the page and the API
call) for one month, a week, a month filtered to one category and to one merchant, and writes
benchmarks/results/analytics.md.

Run: ``.venv/app/bin/python -m benchmarks.analytics [--conversations 1000000] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import time
from datetime import UTC, date, datetime, timedelta

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import make_engine
from api.models import Faq, Merchant, User
from api.services import analytics
from core.settings import REPO_ROOT

ADMIN_URL = os.environ.get("SJZS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NAME = "sjzs_bench_analytics"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "analytics.md"
REASONS = ["merchant_asked", "not_understood", "upset", "none_matched"]


def url(driver: str = "postgresql") -> str:
    return ADMIN_URL.replace("postgresql://", f"{driver}://").rsplit("/", 1)[0] + f"/{NAME}"


def admin(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def create() -> None:
    from devtools.prepare import ensure_database

    admin(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{NAME}"')
    ensure_database(url("postgresql+psycopg"), demo_password="bench-pass")


def load(n: int, merchants: int, end: datetime, seed: int = 1, more: bool = False) -> dict:
    """COPY a year of traffic ending at ``end``; returns row counts. ``more``: add to the benchmark's merchants."""
    rng = random.Random(seed)
    engine = make_engine(url("postgresql+psycopg"))
    with Session(engine) as db:
        faqs = list(db.scalars(select(Faq.id)))
        agents = list(db.scalars(select(User.id).where(User.role == "agent")))
        if more:
            first_merchant = db.scalar(select(Merchant.id).where(Merchant.code == "B0000000"))
        else:
            first_merchant = (db.scalar(select(Merchant.id).order_by(Merchant.id.desc()).limit(1)) or 0) + 1
    engine.dispose()
    start = end - timedelta(days=365)
    span = (end - start).total_seconds()
    counts = {"conversations": 0, "messages": 0}
    with psycopg.connect(url()) as conn:
        with conn.cursor() as cur, cur.copy("COPY merchants (id, code, name, main_category, created_at) FROM STDIN") as cp:
            for i in range(0 if more else merchants):
                cp.write_row((first_merchant + i, f"B{i:07d}", f"压测店铺{i}", "服饰", start))
        conv_cols = ("id, merchant_id, mode, assigned_agent_id, rating, rating_comment, created_at, updated_at, "
                     "closed_at, handoff_reason, waiting_since, taken_at, first_agent_reply_at")
        msg_cols = "conversation_id, sender, text, payload, agent_id, feedback, created_at"
        with conn.cursor() as cur:
            base = (cur.execute("SELECT coalesce(max(id), 0) FROM conversations").fetchone()[0]) + 1
        with conn.cursor() as c1, c1.copy(f"COPY conversations ({conv_cols}) FROM STDIN") as convs:
            messages = []
            for k in range(n):
                cid = base + k
                at = start + timedelta(seconds=rng.random() * span)
                merchant = first_merchant + rng.randrange(merchants)
                msgs, t = [], at
                kind = rng.random()
                reason = agent = waiting = taken = first = closed = rating = None

                def add(sender, text="…", payload=None, feedback=None, agent_id=None, msgs=msgs, cid=cid):
                    nonlocal t
                    t += timedelta(seconds=rng.randint(2, 40))
                    msgs.append((cid, sender, text, payload, agent_id, feedback, t))

                for _ in range(1 if rng.random() < 0.8 else 2):
                    add("merchant", "保证金怎么退" if rng.random() < 0.97 else "查一下 GD2611180001")
                    if kind < 0.72:
                        fb = rng.choices([None, "useful", "useless"], [80, 14, 6])[0]
                        add("bot", "答案", json.dumps({"custom": {"type": "faq_answer", "faq_id": rng.choice(faqs)}}), fb)
                    elif kind < 0.82:
                        add("bot", "您是想问", json.dumps({"custom": {"type": "kb_clarify"}}))
                        add("merchant", "选项", json.dumps({"payload": "/ask_question"}))
                        add("bot", "答案", json.dumps({"custom": {"type": "faq_answer", "faq_id": rng.choice(faqs)}}))
                    else:
                        add("bot", "抱歉", json.dumps({"custom": {"type": "kb_no_answer"}}))
                if kind >= 0.88:
                    reason = rng.choice(REASONS)
                    waiting = t
                    add("system", "转人工")
                    if rng.random() < 0.9:
                        agent = rng.choice(agents)
                        taken = t + timedelta(seconds=rng.expovariate(1 / 100))
                        t = taken
                        add("agent", "您好", None, None, agent)
                        first = t
                        t += timedelta(seconds=rng.expovariate(1 / 400))
                        closed = t
                if rng.random() < 0.3:
                    rating = rng.choices([5, 4, 3, 2, 1], [55, 25, 10, 5, 5])[0]
                    closed = closed or t
                mode = "closed" if closed else "bot"
                convs.write_row((cid, merchant, mode, agent, rating, "", at, t, closed, reason, waiting, taken, first))
                messages.extend(msgs)
                counts["conversations"] += 1
        with conn.cursor() as c2, c2.copy(f"COPY messages ({msg_cols}) FROM STDIN") as cp:
            for row in messages:
                cp.write_row(row)
        counts["messages"] = len(messages)
        with conn.cursor() as cur:
            for table in ("conversations", "messages", "merchants"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
    if not more:
        vacuum()
    return counts


def vacuum() -> None:
    with psycopg.connect(url(), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def refresh() -> tuple[float, int]:
    """Bring the rollup up to date (what the dashboard does first): (seconds, conversations rebuilt)."""
    engine = make_engine(url("postgresql+psycopg"))
    with Session(engine) as db:
        t0 = time.perf_counter()
        n = analytics.refresh(db)
        took = time.perf_counter() - t0
    engine.dispose()
    return took, n


def timed(fn, runs: int = 5) -> tuple[float, float, object]:
    """(first run, median of the rest) in seconds, and the last result."""
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:]), out


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) // 1024 // 1024
    pg = subprocess.run(["psql", url(), "-tAc", "SHOW server_version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} × {cpu}, {mem} GB RAM, {platform.platform()}, PostgreSQL {pg}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--merchants", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    parser.add_argument("--reuse", action="store_true", help="time the scratch database a --keep run left")
    args = parser.parse_args(argv)
    end = datetime(2026, 12, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    if args.reuse:
        with psycopg.connect(url()) as conn:
            counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("conversations", "messages")}
    else:
        create()
        counts = load(args.conversations, args.merchants, end)
    built = time.perf_counter() - t0
    print(f"loaded {counts} in {built:.0f} s", flush=True)
    # the rollup: built from scratch (everything the COPY wrote is listed as changed), then 1,000 new conversations
    full = refresh()
    vacuum()
    print(f"rollup built for {full[1]:,} conversations in {full[0]:.1f} s", flush=True)
    more = load(1000, args.merchants, end, seed=int(time.time()), more=True)
    incremental = refresh()
    idle = refresh()
    print(f"rollup after {more['conversations']:,} new conversations ({more['messages']:,} messages): "
          f"{incremental[1]:,} rebuilt in {incremental[0]:.3f} s; nothing new: {idle[0]:.3f} s", flush=True)

    engine = make_engine(url("postgresql+psycopg"))
    month = analytics.Filters(date(2026, 10, 1), date(2026, 10, 31))
    week = analytics.Filters(date(2026, 10, 1), date(2026, 10, 7))
    rows = []
    with Session(engine) as db:
        category = db.scalar(select(Faq.category).limit(1))
        cases = [("一个月（2026-10-01 至 10-31）", month), ("一周", week),
                 (f"一个月，分类 = {category}", analytics.Filters(month.start, month.end, category=category)),
                 ("一个月，一个商家", analytics.Filters(month.start, month.end, merchant="B0000042"))]
        for label, flt in cases:
            first, median, out = timed(lambda flt=flt: analytics.compute(db, flt), 5)
            db.rollback()
            parts = {}
            rows.append((label, out["totals"]["conversations"], first, median, out["headline"], parts))
            print(f"{label}: {out['totals']['conversations']} conversations, first {first:.3f} s, median {median:.3f} s "
                  f"{parts}", flush=True)
    engine.dispose()
    if not args.keep:
        admin(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')

    lines = [f"# Service analytics: the dashboard on {counts['conversations']:,} conversations (PostgreSQL)", "",
             f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", f"- Machine: {_machine_no_db()}",
             f"- Data: {counts['conversations']:,} conversations and {counts['messages']:,} messages over the 365 days "
             f"before 2026-12-01, {args.merchants:,} merchants (bulk-loaded with COPY{'' if args.reuse else f' in {built:.0f} s'}, then VACUUM ANALYZE)",
             "- What is timed: `api.services.analytics.compute` — every figure of /console/analytics for the range, "
             "through SQLAlchemy, warm cache, including its refresh of the rollup (nothing new by then); "
             "first run, then the median of 4 runs.", "- Target: under 1 s for a month's range.", "",
             "| range | conversations in range | first run | median |", "|---|---:|---:|---:|"]
    for label, n, first, median, _, _ in rows:
        lines.append(f"| {label} | {n:,} | {first:.3f} s | {median:.3f} s |")
    lines += ["", "The rollup (`analytics.refresh`, run by every dashboard read before the figures):", "",
              f"- built from scratch for {full[1]:,} conversations (all listed as changed by the COPY): {full[0]:.1f} s",
              f"- after {more['conversations']:,} new conversations ({more['messages']:,} messages, COPY): "
              f"{incremental[1]:,} conversations rebuilt in {incremental[0]:.3f} s",
              f"- nothing new: {idle[0]:.3f} s", "",
              f"Headline figures of the synthetic month (not meaningful, random traffic): "
              f"self-service {rows[0][4]['self_service']['value']}, one-contact {rows[0][4]['one_contact']['value']}, "
              f"satisfaction {rows[0][4]['satisfaction']['value']}.", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print(RESULTS.read_text(encoding="utf-8"))
    return 0


def _machine_no_db() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) // 1024 // 1024
    pg = subprocess.run(["psql", ADMIN_URL, "-tAc", "SHOW server_version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} × {cpu}, {mem} GB RAM, {platform.platform()}, PostgreSQL {pg}"


if __name__ == "__main__":
    raise SystemExit(main())
