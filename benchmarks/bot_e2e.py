"""Answers through the whole bot, the way a merchant meets them: each question goes through ``POST /api/chat`` in
a fresh conversation of its own (the real API, Rasa's NLU and rules, the action server, the retriever), and the
first reply is scored; side by side, the same question goes to the retriever alone (``/internal/kb/search``, the
same live index), so the cost (or gain) of everything in front of the retriever shows.

    .venv/app/bin/python -m benchmarks.bot_e2e            # starts its own stack on SQLite; ~4 minutes on 2 cores

Sets (``benchmarks/data/``; evaluation only, never calibrated or trained on):
- ``heldout/*.yml``: the project's held-out merchant questions (gold FAQ each);
- ``direction_pairs.yml``: direction-sensitive questions (我被投诉 / 我要投诉 …);
- ``pinyin_english.yml``: questions typed in pinyin or in English (the "fresh" batch, written after the reader);
- ``out_of_scope.yml``: off-topic questions (no FAQ answers them);
- ``followups.yml``: two-turn dialogues; the second, elliptical question is scored (the retriever alone sees it
  without the first).

A first reply is one of: an answer with an FAQ (right / wrong), "您是想问" with the right FAQ among the choices or
not, "no answer", or routed away from the knowledge base (another flow's reply: out-of-scope, the case list,
a handoff…). Writes ``benchmarks/results/bot_e2e.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import make_engine
from api.models import Faq
from api.security import create_merchant_token
from core.settings import REPO_ROOT

from .turns_load import drop_backend, prepare_backend, start_stack

DATA = REPO_ROOT / "benchmarks" / "data"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "bot_e2e.md"
_FAQ_PAYLOAD = re.compile(r'"faq_id"\s*:\s*"?(\d+)')


@dataclass
class Case:
    set: str
    text: str
    gold: str | None              # FAQ key; None: off-topic
    first: str | None = None      # a dialogue's opening question (follow-ups)
    kind: str = ""


@dataclass
class Outcome:
    kind: str                     # answer | clarify | no_answer | away
    faq: int | None = None        # the FAQ answered
    choices: list[int] = field(default_factory=list)
    text: str = ""                # the reply's text (for "away")


def load_cases() -> list[Case]:
    cases = []
    for path in sorted((DATA / "heldout").glob("*.yml")):
        for q in yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]:
            cases.append(Case("held-out", q["q"], q["gold"]))
    direction = DATA / "direction_pairs.yml"
    if direction.exists():
        for pair in yaml.safe_load(direction.read_text(encoding="utf-8"))["pairs"]:
            cases += [Case("direction pairs", q["q"], q["gold"], kind=pair["name"]) for q in pair["questions"]]
    typed = DATA / "pinyin_english.yml"
    if typed.exists():
        data = yaml.safe_load(typed.read_text(encoding="utf-8"))
        for name in ("pinyin", "english"):  # the "dev" batch shaped the reader and the glossary: left out
            cases += [Case(name, q["q"], q["gold"]) for q in data.get(name, []) if q.get("batch") == "fresh"]
    for text in yaml.safe_load((DATA / "out_of_scope.yml").read_text(encoding="utf-8"))["questions"]:
        cases.append(Case("off-topic", text, None))
    for d in yaml.safe_load((DATA / "followups.yml").read_text(encoding="utf-8"))["dialogues"]:
        cases.append(Case("follow-ups", d["then"], d["gold"], first=d["first"], kind=d["kind"]))
    return cases


def read_reply(messages: list[dict]) -> Outcome:
    for m in messages:
        custom = m.get("custom") or {}
        if custom.get("type") == "faq_answer":
            return Outcome("answer", faq=int(custom["faq_id"]))
        if custom.get("type") == "kb_clarify":
            choices = [int(x.group(1)) for b in m.get("buttons") or [] if (x := _FAQ_PAYLOAD.search(b["payload"]))]
            return Outcome("clarify", choices=choices)
        if custom.get("type") == "kb_no_answer":
            return Outcome("no_answer")
    return Outcome("away", text=" / ".join((m.get("text") or "")[:40] for m in messages))


def read_search(body: dict) -> Outcome:
    ids = [h["faq_id"] for h in body["hits"]]
    if body["decision"] == "answer":
        return Outcome("answer", faq=ids[0])
    if body["decision"] == "clarify":
        return Outcome("clarify", choices=ids[:3])
    return Outcome("no_answer")


class Runner:
    def __init__(self, base: str, secret: str, internal_token: str, codes: list[str]):
        self.base, self.secret, self.internal = base, secret, internal_token
        self.codes = iter(codes)
        self.http: httpx.AsyncClient | None = None

    async def bot(self, case: Case) -> Outcome:
        token = create_merchant_token(next(self.codes), self.secret, 60)  # a merchant of its own: a fresh chat
        headers = {"Authorization": f"Bearer {token}"}
        conversation = None
        if case.first:
            r = await self.http.post("/api/chat", json={"text": case.first}, headers=headers)
            r.raise_for_status()
            conversation = r.json()["conversation_id"]
        r = await self.http.post("/api/chat", json={"text": case.text, "conversation_id": conversation},
                                 headers=headers)
        r.raise_for_status()
        return read_reply(r.json()["messages"])

    async def retriever(self, case: Case) -> Outcome:
        r = await self.http.post("/internal/kb/search", headers={"X-Internal-Token": self.internal},
                                 json={"text": case.text, "k": 5})
        r.raise_for_status()
        return read_search(r.json())


async def run_all(runner: Runner, cases: list[Case], concurrency: int) -> list[tuple[Outcome, Outcome]]:
    gate = asyncio.Semaphore(concurrency)
    runner.http = httpx.AsyncClient(base_url=runner.base, timeout=60)  # on this loop

    async def one(case: Case) -> tuple[Outcome, Outcome]:
        async with gate:
            return await runner.bot(case), await runner.retriever(case)

    try:
        return await asyncio.gather(*(one(c) for c in cases))
    finally:
        await runner.http.aclose()


ROWS = [("right FAQ answered directly", "right"), ("right FAQ among the 您是想问 choices", "choice"),
        ("**right FAQ in the first reply (either)**", "either"), ("answered with a wrong FAQ", "wrong"),
        ("您是想问 without the right FAQ", "bad_choice"), ("no answer (KB declined)", "no_answer"),
        ("routed away from the knowledge base", "away")]


def score(outcomes: list[Outcome], golds: list[int | None]) -> Counter:
    c: Counter = Counter()
    for o, gold in zip(outcomes, golds):
        if gold is None:  # off-topic
            c["answered" if o.kind == "answer" else "offered" if o.kind == "clarify" else "declined"] += 1
            continue
        if o.kind == "answer":
            c["right" if o.faq == gold else "wrong"] += 1
        elif o.kind == "clarify":
            c["choice" if gold in o.choices else "bad_choice"] += 1
        else:
            c[o.kind] += 1
    c["either"] = c["right"] + c["choice"]
    return c


def report(cases: list[Case], results: list[tuple[Outcome, Outcome]], ids: dict[str, int], machine: str,
           seconds: float) -> str:
    names = list(dict.fromkeys(c.set for c in cases))
    out = [f"# Answers through the whole bot ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine}, SQLite, real API + "
           f"Rasa + action server, the unmodified e5-small served; {len(cases)} questions in {seconds:.0f} s)\n",
           "Each cell: bot (through `POST /api/chat`, a fresh conversation each) / retriever alone "
           "(`/internal/kb/search`, the same index). Follow-ups: the bot has the first question's answer in the "
           "conversation; the retriever alone sees the follow-up without it.\n"]
    in_scope = [n for n in names if n != "off-topic"]
    per = {}
    for n in names:
        picked = [(c, r) for c, r in zip(cases, results) if c.set == n]
        golds = [ids.get(c.gold) if c.gold else None for c, _ in picked]
        per[n] = (len(picked), score([r[0] for _, r in picked], golds), score([r[1] for _, r in picked], golds))
    out.append("| share of the set | " + " | ".join(f"{n} ({per[n][0]})" for n in in_scope) + " |")
    out.append("|---" * (len(in_scope) + 1) + "|")
    for label, key in ROWS:
        cells = [f"{per[n][1][key] / per[n][0]:.3f} / {per[n][2][key] / per[n][0]:.3f}" for n in in_scope]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    if "off-topic" in per:
        n, bot, alone = per["off-topic"]
        out.append(f"\n**Off-topic** ({n}): answered with an FAQ {bot['answered']} ({bot['answered'] / n:.1%}) / "
                   f"{alone['answered']} alone; offered 您是想问 {bot['offered']} / {alone['offered']}; declined or "
                   f"routed to another reply {bot['declined']} / {alone['declined']}.")
    out.append("\n## Questions the bot did not put the right FAQ first\n")
    key_of = {v: k for k, v in ids.items()}
    for c, (bot, _alone) in zip(cases, results):
        gold = ids.get(c.gold) if c.gold else None
        if gold is None:
            if bot.kind == "answer":
                out.append(f"- [{c.set}] {c.text} → answered {key_of.get(bot.faq)}")
            continue
        if bot.kind == "answer" and bot.faq == gold:
            continue
        what = (f"answered {key_of.get(bot.faq)}" if bot.kind == "answer" else
                f"您是想问 {[key_of.get(x) for x in bot.choices]}" if bot.kind == "clarify" else
                f"away: {bot.text}" if bot.kind == "away" else "no answer")
        lead = f" (after 「{c.first}」)" if c.first else ""
        out.append(f"- [{c.set}] {c.text}{lead} — gold {c.gold}: {what}")
    return "\n".join(out) + "\n"


def machine_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--only", help="run only this set (e.g. follow-ups)")
    args = parser.parse_args(argv)
    cases = [c for c in load_cases() if not args.only or c.set == args.only]
    root = REPO_ROOT / "var" / "bench-bot-e2e"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    url, codes = prepare_backend("sqlite", root)
    stack = start_stack(root, url)
    s = stack.settings
    try:
        engine = make_engine(url)
        with Session(engine) as db:
            ids = {key: faq_id for key, faq_id in db.execute(select(Faq.key, Faq.id))}
        engine.dispose()
        missing = sorted({c.gold for c in cases if c.gold and c.gold not in ids})
        if missing:
            raise SystemExit(f"gold keys not in the knowledge base: {missing}")
        t0 = datetime.now(UTC)
        results = asyncio.run(run_all(Runner(s.api_url, s.widget_secret, s.internal_token, codes), cases,
                                      args.concurrency))
        seconds = (datetime.now(UTC) - t0).total_seconds()
    finally:
        stack.stop()
        drop_backend(url)
    text = report(cases, results, ids, machine_name(), seconds)
    if not args.only:
        RESULTS.write_text(text, encoding="utf-8")
    print(text)
    print(json.dumps({"cases": len(cases)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
