"""Simulate a month of merchants' traffic through the real gateway, so /console/analytics shows real figures.

Run against a running stack (``make run`` in another terminal): ``python -m devtools.seed_month``.

What happens, all of it through the API the widget and the console use (POST /api/chat, feedback, rating, the
console's take / reply / close, the staff appeal review); the bot really answers:

- simulated merchants (``M2xxxx``, added once with a service case and a penalty each) ask FAQ questions in
  merchants' own words (``data/calibration/in_scope.yml``), some questions the knowledge base does not cover
  (``out_of_scope.yml``), look up the progress of their cases, file appeals through the bot's form, and ask for a
  person; agents take those conversations, answer and close them;
- merchants press 有用 when the bot answered the FAQ they meant and 没用 (often) when it did not, rate some
  conversations (better when their problem was solved), and come back on the same topic a few days later when it
  was not (a 没用, no answer, or a wrong answer);
- afterwards each conversation is moved in the database to its planned moment in the past 30 days (busier in
  office hours and on weekdays), with the human side's timing simulated: how long it waited in the queue, how
  long the agent took to answer and to finish, and how long the appeal review took.

Nothing in the figures is written by hand: the dashboard computes them from what the bot and the agents did.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api import security
from api.db import make_engine
from api.models import (
    Appeal,
    AppealEvent,
    AppealStatus,
    AuditEvent,
    CaseKind,
    CaseStatus,
    Conversation,
    Faq,
    Merchant,
    Message,
    Penalty,
    ServiceCase,
    UnansweredQuestion,
)
from core.settings import REPO_ROOT, Settings, get_settings

SKIP_BUTTONS = ("转人工", "算了", "都不是", "取消", "人工")
HOUR_WEIGHTS = [1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 4, 7, 9, 9, 6, 7, 9, 9, 8, 7, 5, 5, 6, 5, 3, 2]
SCENARIOS = {"faq": 56, "faq_twice": 10, "progress": 9, "appeal": 5, "human": 9, "outside": 11}
SS = re.compile(r"SS\d{6,}")


def say(msg: str) -> None:
    print(f"==> {msg}", flush=True)


@dataclass
class Plan:
    merchant: str
    at: datetime                 # when the conversation will appear to have started
    scenario: str
    gold: str | None = None      # the FAQ key the merchant means
    question: str | None = None
    follow_up: bool = False
    # filled in by running it
    conversation_id: int | None = None
    unsolved: bool = False
    appeal: str | None = None
    handled: bool = False
    log: list[str] = field(default_factory=list)


class Month:
    def __init__(self, settings: Settings, api_url: str, merchants: int, conversations: int, seed: int,
                 workers: int):
        self.settings, self.api_url = settings, api_url
        self.rng = random.Random(seed)
        self.n_merchants, self.n_conversations, self.workers = merchants, conversations, workers
        self.engine = make_engine(settings.sqlalchemy_url)
        cal = REPO_ROOT / "data" / "calibration"
        self.inside = yaml.safe_load((cal / "in_scope.yml").read_text(encoding="utf-8"))["questions"]
        self.outside = [q["q"] if isinstance(q, dict) else q
                        for q in yaml.safe_load((cal / "out_of_scope.yml").read_text(encoding="utf-8"))["questions"]]
        self.by_gold: dict[str, list[str]] = {}
        for q in self.inside:
            self.by_gold.setdefault(q["gold"], []).append(q["q"])
        with Session(self.engine) as db:
            self.faq_key = {i: k for i, k in db.execute(select(Faq.id, Faq.key))}
        self.staff: dict[str, dict] = {}

    # ------------------------------------------------------------------ merchants

    def ensure_merchants(self) -> list[str]:
        """Simulated merchants with a service case and an appealable penalty each (added once)."""
        codes = [f"M2{i:04d}" for i in range(1, self.n_merchants + 1)]
        now = datetime.now(UTC)
        with Session(self.engine) as db:
            have = set(db.scalars(select(Merchant.code).where(Merchant.code.in_(codes))))
            for i, code in enumerate(codes):
                if code in have:
                    continue
                m = Merchant(code=code, name=f"模拟店铺{i + 1:03d}", main_category=self.rng.choice(
                    ["服饰", "美妆", "食品", "数码", "家居", "母婴"]))
                db.add(m)
                db.flush()
                db.add(ServiceCase(number=f"GD29{i:08d}", merchant_id=m.id,
                                   kind=self.rng.choice([CaseKind.withdrawal, CaseKind.invoice, CaseKind.deposit_refund]),
                                   title="模拟工单", status=CaseStatus.processing,
                                   expected_done_at=now + timedelta(days=3)))
                db.add(Penalty(number=f"CF29{i:08d}", merchant_id=m.id, rule="虚假发货", detail="模拟判罚",
                               measure="扣分", points=2, occurred_at=now - timedelta(days=2), appealable=True,
                               appeal_deadline=now + timedelta(days=20)))
            db.commit()
        return codes

    # ------------------------------------------------------------------ the plan

    def plan(self, codes: list[str]) -> list[Plan]:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(days=30)
        days = [start + timedelta(days=d) for d in range(30)]
        day_weights = [0.7 if d.weekday() >= 5 else 1.0 for d in days]
        plans = []
        for _ in range(self.n_conversations):
            day = self.rng.choices(days, day_weights)[0].replace(hour=0)
            hour = self.rng.choices(range(24), HOUR_WEIGHTS)[0]
            at = day + timedelta(hours=hour - 8, minutes=self.rng.randrange(60), seconds=self.rng.randrange(60))
            if at > end:
                at -= timedelta(days=1)
            scenario = self.rng.choices(list(SCENARIOS), list(SCENARIOS.values()))[0]
            p = Plan(self.rng.choice(codes), at, scenario)
            if scenario in ("faq", "faq_twice"):
                q = self.rng.choice(self.inside)
                p.gold, p.question = q["gold"], q["q"]
            elif scenario == "outside":
                p.question = self.rng.choice(self.outside)
            plans.append(p)
        return plans

    def follow_ups(self, done: list[Plan]) -> list[Plan]:
        """Merchants whose problem was not solved come back on it within a few days (some of them)."""
        end = datetime.now(UTC)
        out = []
        for p in done:
            if not p.unsolved or p.follow_up or self.rng.random() > 0.55:
                continue
            at = p.at + timedelta(hours=self.rng.uniform(3, 24 * 6))
            if at >= end:
                continue
            again = Plan(p.merchant, at, p.scenario if p.scenario != "appeal" else "human", follow_up=True)
            if p.gold:
                again.gold = p.gold
                again.question = self.rng.choice(self.by_gold.get(p.gold) or [p.question])
            else:
                again.scenario = "human"
            out.append(again)
        return out

    # ------------------------------------------------------------------ running a conversation

    def headers(self, code: str) -> dict:
        return {"Authorization": f"Bearer {security.create_merchant_token(code, self.settings.widget_secret, 60)}"}

    def login(self, client: httpx.Client, username: str) -> dict:
        if username not in self.staff:
            r = client.post("/api/auth/login", json={"username": username, "password": self.settings.demo_password})
            r.raise_for_status()
            self.staff[username] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return self.staff[username]

    def say(self, client: httpx.Client, p: Plan, text: str, payload: str | None = None) -> dict:
        body = {"text": text, "conversation_id": p.conversation_id}
        if payload:
            body["payload"] = payload
        for attempt in range(6):
            r = client.post("/api/chat", json=body, headers=self.headers(p.merchant))
            if r.status_code in (429, 503):
                time.sleep(float(r.headers.get("Retry-After", "2")) if attempt < 5 else 0)
                continue
            r.raise_for_status()
            return r.json()
        raise RuntimeError(f"助手一直繁忙：{r.status_code} {r.text[:200]}")

    def run(self, client: httpx.Client, p: Plan) -> Plan:
        r = client.post("/api/conversations", headers=self.headers(p.merchant))
        r.raise_for_status()
        p.conversation_id = r.json()["id"]
        rng = random.Random(f"{p.merchant}-{p.at.isoformat()}")
        good = True
        if p.scenario in ("faq", "faq_twice"):
            good = self.ask(client, p, p.question, p.gold, rng)
            if p.scenario == "faq_twice" and good:
                q = rng.choice(self.inside)
                good = self.ask(client, p, q["q"], q["gold"], rng)
        elif p.scenario == "outside":
            reply = self.say(client, p, p.question)
            if reply["mode"] != "bot":
                self.agent_handles(client, p, rng)
            else:
                good = False
                if rng.random() < 0.4:  # not answered: ask for a person
                    self.say(client, p, "转人工", "/request_human")
                    self.agent_handles(client, p, rng)
        elif p.scenario == "progress":
            reply = self.say(client, p, rng.choice(["查一下我的工单进度", "我的工单处理到哪了", "帮我看看工单进度"]))
            buttons = [b for m in reply["messages"] for b in m["buttons"] if "GD" in b["payload"] or "SS" in b["payload"]]
            if buttons:
                b = buttons[0]
                self.say(client, p, b["title"], b["payload"])
        elif p.scenario == "appeal":
            self.file_appeal(client, p, rng)
        else:  # a person
            self.say(client, p, rng.choice(["你好", "我有个问题"]))
            reply = self.say(client, p, rng.choice(["转人工", "我要找人工客服", "人工"]), "/request_human")
            if reply["mode"] != "bot":
                self.agent_handles(client, p, rng)
        p.unsolved = not good or p.unsolved
        if not p.handled and rng.random() < 0.35:
            stars = rng.choices([5, 4, 3, 2, 1], [55, 25, 10, 5, 5] if good else [10, 15, 25, 25, 25])[0]
            client.post(f"/api/conversations/{p.conversation_id}/rating", json={"rating": stars},
                        headers=self.headers(p.merchant))
        return p

    def ask(self, client: httpx.Client, p: Plan, question: str, gold: str, rng: random.Random) -> bool:
        """One question; the merchant follows a 您是想问 and judges the answer. True when it was the right FAQ."""
        reply = self.say(client, p, question)
        for _ in range(2):
            answers = [m for m in reply["messages"] if (m.get("custom") or {}).get("type") == "faq_answer"]
            if answers:
                m = answers[-1]
                right = self.faq_key.get(m["custom"].get("faq_id")) == gold
                if right and rng.random() < 0.35:
                    self.feedback(client, p, m["id"], "useful")
                elif not right and rng.random() < 0.6:
                    self.feedback(client, p, m["id"], "useless")
                return right
            clarify = [m for m in reply["messages"] if (m.get("custom") or {}).get("type") == "kb_clarify"]
            if not clarify:
                break
            options = [b for b in clarify[-1]["buttons"] if "faq_id" in b["payload"]]
            chosen = next((b for b in options if self.faq_key.get(_faq_in(b["payload"])) == gold), None)
            if chosen is None:
                reply = self.say(client, p, "都不是", "/request_human")
                if reply["mode"] != "bot":
                    self.agent_handles(client, p, rng)
                return False
            reply = self.say(client, p, chosen["title"], chosen["payload"])
        if reply["mode"] != "bot":
            self.agent_handles(client, p, rng)
        return False

    def feedback(self, client: httpx.Client, p: Plan, message_id: int, value: str) -> None:
        client.post(f"/api/messages/{message_id}/feedback", json={"value": value}, headers=self.headers(p.merchant))

    def file_appeal(self, client: httpx.Client, p: Plan, rng: random.Random) -> None:
        """The bot's appeal form: pick the penalty, the reason, write the description, confirm."""
        reply = self.say(client, p, rng.choice(["我要申诉", "这个判罚我要申诉", "想申诉一下扣分"]))
        for _ in range(6):
            text = " ".join(m["text"] for m in reply["messages"])
            found = SS.search(text)
            if found:
                p.appeal = found.group(0)
                return
            buttons = [b for m in reply["messages"] for b in m["buttons"]
                       if not any(w in b["title"] for w in SKIP_BUTTONS)]
            if buttons:
                b = buttons[0]
                reply = self.say(client, p, b["title"], b["payload"])
            elif "没有可以申诉" in text:
                return
            else:
                reply = self.say(client, p, "物流显示已揽收，是快递网点停收导致的延迟，不是虚假发货，附件是揽收记录。")

    def agent_handles(self, client: httpx.Client, p: Plan, rng: random.Random) -> None:
        agent = self.login(client, rng.choice(["agent01", "agent02"]))
        cid = p.conversation_id
        if client.post(f"/api/staff/conversations/{cid}/take", headers=agent).status_code != 200:
            return
        client.post(f"/api/staff/conversations/{cid}/reply", json={"text": "您好，我是人工客服，请问有什么可以帮您？"},
                    headers=agent)
        self.say(client, p, "就是刚才说的那个问题，麻烦帮我看看")
        client.post(f"/api/staff/conversations/{cid}/reply", json={"text": "好的，已经帮您核实处理，请留意站内通知。"},
                    headers=agent)
        client.post(f"/api/staff/conversations/{cid}/close", headers=agent)
        p.handled = True
        p.unsolved = rng.random() < 0.15
        if rng.random() < 0.6:
            stars = rng.choices([5, 4, 3, 2, 1], [50, 28, 12, 5, 5])[0]
            client.post(f"/api/conversations/{cid}/rating", json={"rating": stars}, headers=self.headers(p.merchant))

    def review_appeals(self, client: httpx.Client, plans: list[Plan]) -> None:
        agent = self.login(client, "agent01")
        for p in plans:
            if p.appeal:
                status = "approved" if random.Random(p.appeal).random() < 0.6 else "rejected"
                client.post(f"/api/staff/appeals/{p.appeal}/review", json={"status": "reviewing", "note": "审核中"},
                            headers=agent)
                client.post(f"/api/staff/appeals/{p.appeal}/review",
                            json={"status": status, "note": "已核实揽收记录" if status == "approved" else "证据不足"},
                            headers=agent)

    # ------------------------------------------------------------------ moving it into the past

    def backdate(self, plans: list[Plan]) -> None:
        """Each conversation to its planned start; the human side's timing simulated (queue, answer, finish)."""
        with Session(self.engine) as db:
            for p in plans:
                if p.conversation_id is None:
                    continue
                rng = random.Random(p.conversation_id)
                conv = db.get(Conversation, p.conversation_id)
                offset = p.at - _utc(conv.created_at)
                wait = timedelta(seconds=rng.expovariate(1 / 110))      # in the queue
                answer = timedelta(seconds=rng.expovariate(1 / 45))     # the agent's first reply
                work = timedelta(seconds=rng.expovariate(1 / 420))      # the rest of the agent's work
                taken, first, closed = _utc(conv.taken_at), _utc(conv.first_agent_reply_at), _utc(conv.closed_at)

                def moved(at: datetime | None, taken=taken, first=first, offset=offset, wait=wait, answer=answer,
                          work=work, closed=closed, handled=p.handled) -> datetime | None:
                    if at is None:
                        return None
                    at, extra = _utc(at), timedelta(0)
                    if taken and at >= taken:
                        extra += wait
                    if first and at >= first:
                        extra += answer
                    if first and closed and at >= closed and handled:
                        extra += work
                    return at + offset + extra

                for col in ("created_at", "updated_at", "closed_at", "waiting_since", "taken_at",
                            "first_agent_reply_at", "overdue_notified_at"):
                    setattr(conv, col, moved(getattr(conv, col)))
                for m in db.scalars(select(Message).where(Message.conversation_id == conv.id)):
                    m.created_at = moved(m.created_at)
                for a in db.scalars(select(AuditEvent).where(AuditEvent.conversation_id == conv.id)):
                    a.at = moved(a.at)
                for u in db.scalars(select(UnansweredQuestion).where(UnansweredQuestion.conversation_id == conv.id)):
                    u.created_at = moved(u.created_at)
                if p.appeal:
                    appeal = db.scalar(select(Appeal).where(Appeal.number == p.appeal))
                    if appeal is not None:
                        filed = moved(appeal.created_at)
                        review = timedelta(hours=rng.lognormvariate(math.log(2.0), 0.8))
                        shift = filed - _utc(appeal.created_at)
                        appeal.sla_due_at = _utc(appeal.sla_due_at) + shift
                        appeal.created_at = appeal.updated_at = filed
                        for e in db.scalars(select(AppealEvent).where(AppealEvent.appeal_id == appeal.id)):
                            decided = e.status in (AppealStatus.approved, AppealStatus.rejected)
                            e.at = filed + (review if decided else review / 3 if e.status == AppealStatus.reviewing
                                            else timedelta(0))
            db.commit()
            # nobody is left waiting for a person a month ago (the queue clock would hand them to agents today)
            db.execute(update(Conversation).where(Conversation.id.in_([p.conversation_id for p in plans
                                                                       if p.conversation_id]),
                                                  Conversation.mode.in_(["waiting_agent", "agent"]))
                       .values(mode="closed", closed_at=Conversation.updated_at))
            db.commit()


def _faq_in(payload: str) -> int | None:
    m = re.search(r'"faq_id":\s*"?(\d+)', payload)
    return int(m.group(1)) if m else None


def _utc(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def simulate(settings: Settings, api_url: str, merchants: int = 120, conversations: int = 450, seed: int = 21,
             workers: int = 6, echo=say) -> list[Plan]:
    """Run the month against the API at ``api_url`` and move it into the past; the conversations, as run."""
    month = Month(settings, api_url, merchants, conversations, seed, workers)
    codes = month.ensure_merchants()
    plans = month.plan(codes)
    t0 = time.monotonic()
    done: list[Plan] = []
    with httpx.Client(base_url=api_url, timeout=120) as client:
        for round_ in range(2):
            batch = plans if round_ == 0 else month.follow_ups(done)
            echo(f"{'第一轮' if round_ == 0 else '回访'}：{len(batch)} 个会话…")
            by_merchant: dict[str, list[Plan]] = {}
            for p in sorted(batch, key=lambda p: p.at):
                by_merchant.setdefault(p.merchant, []).append(p)

            def run_all(ps: list[Plan]) -> list[Plan]:
                return [month.run(client, p) for p in ps]

            with ThreadPoolExecutor(workers) as pool:
                for i, finished in enumerate(pool.map(run_all, by_merchant.values()), 1):
                    done.extend(finished)
                    if i % 20 == 0:
                        echo(f"  {len(done)} 个会话完成（{time.monotonic() - t0:.0f} s）")
        month.review_appeals(client, done)
    month.backdate(done)
    month.engine.dispose()
    return done


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="模拟一个月的商家咨询（经真实网关，机器人真实回答），供服务数据页面查看")
    parser.add_argument("--api", default=settings.api_url, help="正在运行的 API 地址（默认 %(default)s）")
    parser.add_argument("--merchants", type=int, default=120)
    parser.add_argument("--conversations", type=int, default=450)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--workers", type=int, default=6)
    args = parser.parse_args(argv)
    try:
        httpx.get(f"{args.api}/healthz", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise SystemExit(f"连不上 {args.api}（{exc}）：请先在另一个终端运行 make run") from None
    t0 = time.monotonic()
    done = simulate(settings, args.api, args.merchants, args.conversations, args.seed, args.workers)
    say(f"完成：{len(done)} 个会话分布到最近 30 天（{time.monotonic() - t0:.0f} s）。"
        f"打开 {args.api}/console/analytics 查看（客服、知识库编辑或管理员账号）")
    return 0


if __name__ == "__main__":
    sys.exit(main())
