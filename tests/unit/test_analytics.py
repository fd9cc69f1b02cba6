"""Service analytics: each definition on a small hand-built set of conversations whose figures are known, on a
real database (both backends for the figures: JSON paths differ between SQLite and PostgreSQL), and the API
around it (the JSON is the service's, bad input is a Chinese 422, roles, CSV, drill-down)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete, func, select
from sqlalchemy.orm import Session

from api.main import create_app
from api.models import (
    Appeal,
    AppealEvent,
    AppealReason,
    AppealStatus,
    Conversation,
    ConversationMode,
    Faq,
    Feedback,
    HandoffReason,
    Merchant,
    Message,
    Sender,
    User,
)
from api.services import analytics
from api.services.analytics import Filters

from ..conftest import merchant_headers, staff_login

# A month nobody else writes to: the seed's own data lies around "now".
DAY = date(2031, 3, 10)
T0 = datetime(2031, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 Beijing time
RANGE = Filters(date(2031, 3, 1), date(2031, 3, 31))


class Builder:
    """Writes conversations the way the gateway, the bot and the console would have left them."""

    def __init__(self, db: Session):
        self.db = db
        self.merchants = {m.code: m.id for m in db.scalars(select(Merchant))}
        self.users = {u.username: u.id for u in db.scalars(select(User))}
        faqs = db.scalars(select(Faq).order_by(Faq.id)).all()
        self.faq = {}
        for f in faqs:
            self.faq.setdefault(f.category, f.id)
        self.second_faq = {}
        for f in faqs:
            if f.id != self.faq[f.category]:
                self.second_faq.setdefault(f.category, f.id)

    def conv(self, at: datetime, steps: list[tuple], merchant: str = "M10001", rating: int | None = None,
             handoff: str | None = None, agent: str | None = None, wait: int | None = None,
             first_reply: int | None = None, closed_after: int | None = None) -> int:
        """``steps``: ("m", text) merchant, ("answer", faq_id[, feedback]), ("clarify",), ("no_answer",),
        ("bot", text) a plain bot reply, ("agent", text)."""
        if merchant not in self.merchants:
            m = Merchant(code=merchant, name=f"测试店铺{merchant}")
            self.db.add(m)
            self.db.flush()
            self.merchants[merchant] = m.id
        c = Conversation(merchant_id=self.merchants[merchant], created_at=at, updated_at=at, rating=rating,
                         mode=ConversationMode.bot)
        if handoff:
            c.handoff_reason, c.waiting_since = HandoffReason(handoff), at + timedelta(seconds=30)
            c.mode = ConversationMode.waiting_agent
        if agent:
            c.assigned_agent_id = self.users[agent]
            if wait is not None:
                c.taken_at = c.waiting_since + timedelta(seconds=wait)
                c.mode = ConversationMode.agent
            if first_reply is not None:
                c.first_agent_reply_at = c.taken_at + timedelta(seconds=first_reply)
        if closed_after is not None or rating is not None:
            c.mode, c.closed_at = ConversationMode.closed, at + timedelta(seconds=closed_after or 600)
        self.db.add(c)
        self.db.flush()
        for i, step in enumerate(steps):
            kind, when = step[0], at + timedelta(seconds=i)
            if kind == "m":
                m = Message(conversation_id=c.id, sender=Sender.merchant, text=step[1], created_at=when)
            elif kind == "answer":
                m = Message(conversation_id=c.id, sender=Sender.bot, text="答案", created_at=when,
                            payload={"buttons": [], "custom": {"type": "faq_answer", "faq_id": step[1], "feedback": True}})
                if len(step) > 2:
                    m.feedback = Feedback(step[2])
            elif kind in ("clarify", "no_answer"):
                m = Message(conversation_id=c.id, sender=Sender.bot, text="…", created_at=when,
                            payload={"buttons": [], "custom": {"type": f"kb_{kind}", "understood": {}}})
            elif kind == "bot":
                m = Message(conversation_id=c.id, sender=Sender.bot, text=step[1], created_at=when,
                            payload={"buttons": [], "custom": None})
            else:
                m = Message(conversation_id=c.id, sender=Sender.agent, text=step[1], created_at=when,
                            agent_id=c.assigned_agent_id)
            self.db.add(m)
        self.db.flush()
        return c.id


@pytest.fixture
def db(database):
    engine = create_engine(database.sqlalchemy_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def figures(db: Session, flt: Filters = RANGE) -> dict:
    db.commit()
    return analytics.compute(db, flt)


# --------------------------------------------------------------------------- the three headline figures


@pytest.mark.pg
def test_self_service_counts_conversations_without_a_person_a_useless_or_an_unanswered_last_question(db):
    b = Builder(db)
    deposit = b.faq["保证金"]
    served = [
        b.conv(T0, [("m", "保证金怎么退"), ("answer", deposit, "useful")]),
        b.conv(T0, [("m", "那个咋弄"), ("no_answer",), ("m", "保证金怎么退"), ("answer", deposit)]),  # answered at last
        b.conv(T0, [("m", "提现"), ("clarify",), ("m", "/ask_question"), ("answer", deposit), ("m", "谢谢"),
                    ("bot", "不客气")]),
    ]
    missed = [
        b.conv(T0, [("m", "转人工")], handoff="merchant_asked"),  # escalated, nobody took it: still a person's job
        b.conv(T0, [("m", "保证金"), ("answer", deposit, "useless")]),
        b.conv(T0, [("m", "保证金怎么退"), ("answer", deposit), ("m", "外星人"), ("no_answer",)]),
        b.conv(T0, [("m", "在吗"), ("agent", "您好")], agent="agent01"),
    ]
    b.conv(T0, [])  # the widget opened, nothing said: not counted
    b.conv(T0 - timedelta(days=30), [("m", "保证金"), ("answer", deposit)])  # before the range
    f = figures(db)["headline"]["self_service"]
    assert (f["numerator"], f["denominator"]) == (3, 7)
    assert f["value"] == round(3 / 7, 4) and f["target"] == 0.75 and f["met"] is False
    rows = analytics.drill(db, RANGE, "self_service", "miss")["rows"]
    assert sorted(r["conversation_id"] for r in rows) == sorted(missed)
    why = {r["conversation_id"]: r["why"] for r in rows}
    assert why[missed[0]] == "转人工：商家要求转人工" and "没用" in why[missed[1]]
    assert why[missed[2]] == "最后一个问题未能回答" and why[missed[3]] == "有客服参与"
    hits = analytics.drill(db, RANGE, "self_service", "hit")["rows"]
    assert sorted(r["conversation_id"] for r in hits) == sorted(served)


@pytest.mark.pg
def test_one_contact_resolution_counts_a_problem_raised_again_on_its_topic_within_seven_days(db):
    b = Builder(db)
    deposit, withdraw = b.faq["保证金"], b.faq["提现与结算"]
    other_deposit = b.second_faq["保证金"]
    first = b.conv(T0, [("m", "保证金怎么退"), ("answer", deposit)])
    # same merchant, same category (another FAQ of it), 3 days later: the first problem was not solved
    again = b.conv(T0 + timedelta(days=3), [("m", "保证金还没到"), ("answer", other_deposit)])
    # 8 days after that: a new problem, not a repeat of ``again``
    later = b.conv(T0 + timedelta(days=11), [("m", "保证金"), ("answer", deposit)])
    b.conv(T0 + timedelta(days=1), [("m", "提现"), ("answer", withdraw)])                   # another topic
    b.conv(T0 + timedelta(days=1), [("m", "保证金"), ("answer", deposit)], merchant="M10002")  # another merchant
    # a case number typed, then picked from a button 2 days later: one problem raised twice
    case1 = b.conv(T0, [("m", "查一下 gd2611180001 的进度"), ("bot", "处理中")], merchant="M10003")
    db.add(Message(conversation_id=b.conv(T0 + timedelta(days=2), [("bot", "请选择")], merchant="M10003"),
                   sender=Sender.merchant, text="提现 · 处理中",
                   payload={"payload": '/check_progress{"case_number": "GD2611180001"}'}))
    # nothing recognised twice in a row within 7 days: the unrecognised topic repeats as well
    unknown = b.conv(T0, [("m", "你好")], merchant="M10004")
    b.conv(T0 + timedelta(days=6, hours=23), [("m", "在吗")], merchant="M10004")
    # the range ends on the 31st; a repeat on April 2nd (outside the range) still counts against March's problem
    late = b.conv(datetime(2031, 3, 30, 2, tzinfo=UTC), [("m", "提现"), ("answer", withdraw)], merchant="M10005")
    b.conv(datetime(2031, 4, 2, 2, tzinfo=UTC), [("m", "提现还没到"), ("answer", withdraw)], merchant="M10005")
    data = figures(db)
    f = data["headline"]["one_contact"]
    # problems in March: first, again, later, withdraw, M10002, case1, its repeat, unknown, its repeat, late = 10
    assert f["denominator"] == 10
    repeated = {r["conversation_id"] for r in analytics.drill(db, RANGE, "one_contact", "miss")["rows"]}
    assert repeated == {first, case1, unknown, late}
    assert f["numerator"] == 6 and f["value"] == 0.6
    assert later not in repeated and again not in repeated
    topics = {r["conversation_id"]: r["topic"] for r in analytics.drill(db, RANGE, "one_contact", "all")["rows"]}
    assert topics[case1] == "GD2611180001" and topics[unknown] == analytics.UNKNOWN_TOPIC
    assert topics[first] == "保证金"


@pytest.mark.pg
def test_satisfaction_is_the_share_of_four_and_five_stars_and_the_response_rate(db):
    b = Builder(db)
    for stars in (5, 4, 4, 3, 1):
        b.conv(T0, [("m", "保证金")], rating=stars)
    b.conv(T0, [("m", "保证金")], closed_after=60)  # ended, not rated
    b.conv(T0, [("m", "保证金")])                   # still open: not asked yet
    f = figures(db)["headline"]["satisfaction"]
    assert (f["numerator"], f["denominator"], f["value"]) == (3, 5, 0.6)
    assert (f["rated"], f["closed"], f["response_rate"]) == (5, 6, round(5 / 6, 4))
    assert f["target"] == 0.8 and f["met"] is False
    ratings = figures(db)["ratings"]
    assert [r["conversations"] for r in ratings] == [1, 0, 1, 2, 1]
    unhappy = analytics.drill(db, RANGE, "satisfaction", "miss")["rows"]
    assert sorted(r["rating"] for r in unhappy) == [1, 3]


def test_no_conversations_give_no_figures_rather_than_zero(db):
    data = figures(db, Filters(date(2032, 1, 1), date(2032, 1, 7)))
    for key in ("self_service", "one_contact", "satisfaction"):
        assert data["headline"][key]["value"] is None and data["headline"][key]["met"] is None
    assert [d["date"] for d in data["daily"]] == [f"2032-01-0{i}" for i in range(1, 8)]
    assert data["queue"]["wait_p50_seconds"] is None


# --------------------------------------------------------------------------- the figures behind them


@pytest.mark.pg
def test_escalations_decisions_feedback_queue_and_agents(db):
    b = Builder(db)
    deposit, withdraw = b.faq["保证金"], b.faq["提现与结算"]
    b.conv(T0, [("m", "a"), ("answer", deposit, "useful"), ("m", "b"), ("answer", deposit, "useless")])
    b.conv(T0, [("m", "a"), ("clarify",), ("m", "b"), ("answer", withdraw, "useful")])
    b.conv(T0, [("m", "a"), ("no_answer",), ("m", "b"), ("no_answer",)], handoff="not_understood", agent="agent01",
           wait=60, first_reply=20, closed_after=1800, rating=5)
    b.conv(T0, [("m", "转人工"), ("agent", "您好")], handoff="merchant_asked", agent="agent01", wait=120,
           first_reply=40, closed_after=1200, rating=2)
    b.conv(T0, [("m", "气死了"), ("agent", "抱歉")], handoff="upset", agent="agent02", wait=300, first_reply=10,
           closed_after=3600)
    b.conv(T0, [("m", "转人工")], handoff="merchant_asked")  # left before anyone took it
    data = figures(db)
    esc = {r["reason"]: r["conversations"] for r in data["escalations"]}
    assert esc == {"merchant_asked": 2, "not_understood": 1, "upset": 1, "none_matched": 0}
    assert data["escalation_rate"] == round(4 / 6, 4)
    shares = {r["decision"]: (r["count"], r["share"]) for r in data["kb_decisions"]}
    assert shares == {"answer": (3, 0.5), "clarify": (1, round(1 / 6, 4)), "no_answer": (2, round(2 / 6, 4))}
    faqs = {r["faq_id"]: r for r in data["faqs"]}
    assert (faqs[deposit]["answered"], faqs[deposit]["useful"], faqs[deposit]["useless"]) == (2, 1, 1)
    assert faqs[deposit]["useless_rate"] == 0.5 and data["faqs"][0]["faq_id"] == deposit  # the most asked first
    cats = {r["category"]: r for r in data["categories"]}
    assert (cats["保证金"]["conversations"], cats["提现与结算"]["useful"]) == (1, 1)
    # waits 60, 120, 300 s: p50 120, p90 = 120 + 0.8 × 180 = 264
    assert data["queue"] == {"escalated": 4, "taken": 3, "wait_p50_seconds": 120.0, "wait_p90_seconds": 264.0,
                             "wait_mean_seconds": 160.0}
    agents = {r["username"]: r for r in data["agents"]}
    assert agents["agent01"]["conversations"] == 2 and agents["agent02"]["conversations"] == 1
    assert agents["agent01"]["first_response_p50_seconds"] == 30.0  # 20 and 40
    # resolution from escalation (30 s after the start) to the close
    assert agents["agent01"]["resolution_mean_minutes"] == round(((1800 - 30) + (1200 - 30)) / 2 / 60, 1)
    assert agents["agent01"]["satisfaction"] == 0.5 and agents["agent02"]["rated"] == 0


def test_days_and_hours_are_beijing_time(db):
    b = Builder(db)
    b.conv(datetime(2031, 3, 9, 16, 30, tzinfo=UTC), [("m", "a")])  # 00:30 on the 10th in Beijing
    b.conv(datetime(2031, 3, 9, 15, 30, tzinfo=UTC), [("m", "a")])  # 23:30 on the 9th
    data = figures(db, Filters(date(2031, 3, 10), date(2031, 3, 10)))
    assert data["totals"]["with_merchant_message"] == 1
    assert data["daily"][0]["conversations"] == 1 and data["hourly"][0]["conversations"] == 1


def test_appeal_review_time_runs_from_filing_to_the_first_decision(db):
    merchant = db.scalar(select(Merchant).where(Merchant.code == "M10001"))
    for n, (hours, status) in enumerate([(2, AppealStatus.approved), (4, AppealStatus.rejected), (None, None)]):
        a = Appeal(number=f"SS31031000{n}", merchant_id=merchant.id, reason=AppealReason.other, description="x",
                   status=status or AppealStatus.pending, sla_due_at=T0 + timedelta(days=3), created_at=T0)
        a.events = [AppealEvent(at=T0, status=AppealStatus.pending)]
        if hours:
            a.events += [AppealEvent(at=T0 + timedelta(hours=1), status=AppealStatus.reviewing),
                         AppealEvent(at=T0 + timedelta(hours=hours), status=status)]
        db.add(a)
    data = figures(db)["appeals"]
    assert data == {"filed": 3, "decided": 2, "review_mean_hours": 3.0, "review_p50_hours": 3.0,
                    "review_p90_hours": 3.8}


def test_filters_by_category_merchant_and_agent(db):
    b = Builder(db)
    deposit, withdraw = b.faq["保证金"], b.faq["提现与结算"]
    a = b.conv(T0, [("m", "a"), ("answer", deposit)])
    w = b.conv(T0, [("m", "a"), ("answer", withdraw)], merchant="M10002")
    h = b.conv(T0, [("m", "a"), ("agent", "x")], handoff="upset", agent="agent02", wait=5, merchant="M10002")
    db.commit()

    def ids(**kw) -> set[int]:
        flt = analytics.make_filters(db, "2031-03-01", "2031-03-31", **kw)
        return {r["conversation_id"] for r in analytics.drill(db, flt, "self_service", "all")["rows"]}

    assert ids() == {a, w, h}
    assert ids(category="保证金") == {a}
    assert ids(merchant="m10002") == {w, h}
    assert ids(agent="agent02") == {h}
    flt = analytics.make_filters(db, "2031-03-01", "2031-03-31", category="保证金")
    assert analytics.compute(db, flt)["headline"]["one_contact"]["denominator"] == 1


def test_percentile_interpolates_between_ranks():
    assert analytics.percentile([], 0.5) is None
    assert analytics.percentile([5], 0.9) == 5
    assert analytics.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert analytics.percentile(list(range(1, 11)), 0.9) == pytest.approx(9.1)


def test_csv_cells_a_spreadsheet_would_run_are_written_as_text():
    text = analytics.to_csv([("q", "问题"), ("n", "次数")], [{"q": "=HYPERLINK(\"x\")", "n": -3}, {"q": "好", "n": None}])
    assert text.startswith("\ufeff问题,次数")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[1] == ["'=HYPERLINK(\"x\")", "-3"] and rows[2] == ["好", ""]


# --------------------------------------------------------------------------- the API


@pytest.fixture
def client(database):
    with TestClient(create_app(database)) as c:
        yield c


def login(client, settings, username: str) -> dict:
    return staff_login(client, settings.demo_password, username)


def test_the_api_returns_the_services_figures_and_exports_every_table(client, database):
    engine = create_engine(database.sqlalchemy_url)
    with Session(engine) as db:
        b = Builder(db)
        b.conv(T0, [("m", "保证金"), ("answer", b.faq["保证金"], "useful")], rating=5)
        missed = b.conv(T0, [("m", "转人工")], handoff="merchant_asked", rating=2)
        db.commit()
        expected = analytics.compute(db, RANGE)
    engine.dispose()
    params = {"start": "2031-03-01", "end": "2031-03-31"}
    for user in ("agent01", "editor01", "admin"):
        resp = client.get("/api/analytics/summary", params=params, headers=login(client, database, user))
        assert resp.status_code == 200, (user, resp.text)
        assert resp.json() == expected
    staff = login(client, database, "editor01")
    assert expected["headline"]["self_service"]["value"] == 0.5
    drill = client.get("/api/analytics/conversations", params={**params, "metric": "satisfaction"}, headers=staff)
    assert [r["conversation_id"] for r in drill.json()["rows"]] == [missed]
    for table in analytics.TABLES:
        resp = client.get("/api/analytics/export", params={**params, "table": table}, headers=staff)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
        assert rows[0] == [title for _, title in analytics.TABLES[table][1]]
        assert len(rows) - 1 == len(expected[table]), table
    resp = client.get("/api/analytics/export", params={**params, "table": "conversations", "metric": "escalation"},
                      headers=staff)
    rows = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
    assert rows[0][0] == "会话编号" and [r[0] for r in rows[1:]] == [str(missed)]
    assert "filename*=UTF-8''" in resp.headers["content-disposition"]


@pytest.mark.parametrize("params, detail", [
    ({"start": "2031-13-01"}, "开始日期格式不对"),
    ({"start": "yesterday"}, "开始日期格式不对"),
    ({"start": "2031-03-10", "end": "2031-03-01"}, "开始日期不能晚于结束日期"),
    ({"start": "2029-01-01", "end": "2031-03-01"}, "时间范围最长 366 天"),
    ({"category": "不存在的分类"}, "没有这个分类"),
    ({"merchant": "M99999"}, "没有这个商家"),
    ({"agent": "nobody"}, "没有这个客服账号"),
])
def test_bad_input_gets_a_chinese_422(client, database, params, detail):
    resp = client.get("/api/analytics/summary", params=params, headers=login(client, database, "agent01"))
    assert resp.status_code == 422 and detail in resp.json()["detail"]


def test_bad_metric_table_and_paging_are_refused(client, database):
    staff = login(client, database, "agent01")
    resp = client.get("/api/analytics/conversations", params={"metric": "nps"}, headers=staff)
    assert resp.status_code == 422 and "指标只能是" in resp.json()["detail"]
    assert client.get("/api/analytics/export", params={"table": "secrets"}, headers=staff).status_code == 422
    assert client.get("/api/analytics/conversations", params={"limit": 0}, headers=staff).status_code == 422


def test_merchants_are_refused_and_the_page_and_chart_library_are_served(client, database):
    resp = client.get("/api/analytics/summary", headers=merchant_headers(database, "M10001"))
    assert resp.status_code == 403
    assert client.get("/api/analytics/summary").status_code == 401
    page = client.get("/console/analytics")
    assert page.status_code == 200 and "服务数据" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "/console/analytics/chart.umd.js" in page.text and "http" not in page.text.split("<script")[1]
    assert client.get("/console/analytics/static/analytics.js").status_code == 200


# --------------------------------------------------------------------------- the rollup kept current


@pytest.mark.pg
def test_the_rollup_refreshed_after_new_messages_feedback_and_ratings_equals_one_rebuilt_from_scratch(db):
    from api.models import (
        AnalyticsConversation,
        AnalyticsConversationFaq,
        AnalyticsConversationNumber,
        AnalyticsDirty,
    )

    b = Builder(db)
    deposit, withdraw = b.faq["保证金"], b.faq["提现与结算"]
    start = T0 + timedelta(microseconds=123456)
    c1 = b.conv(start, [("m", "保证金怎么退"), ("answer", deposit)])
    c2 = b.conv(start, [("m", "提现"), ("no_answer",)], merchant="M10002")
    before = figures(db)
    assert analytics.refresh(db) == 0  # nothing changed since the figures were read
    assert (before["headline"]["self_service"]["numerator"], before["headline"]["self_service"]["denominator"]) == (1, 2)
    assert before["totals"]["problems"] == 2 and before["headline"]["one_contact"]["numerator"] == 2

    # what arrives afterwards: 没用 on an existing answer, a rating, a new reply in an old conversation,
    # new conversations (one exactly 7 days later on the same topic, one escalated naming a case number)
    answer = db.scalar(select(Message).where(Message.conversation_id == c1, Message.sender == Sender.bot))
    answer.feedback = Feedback.useless
    conv2 = db.get(Conversation, c2)
    conv2.rating, conv2.closed_at, conv2.mode = 5, start + timedelta(minutes=5), ConversationMode.closed
    db.add(Message(conversation_id=c2, sender=Sender.bot, text="答案", created_at=start + timedelta(minutes=1),
                   payload={"custom": {"type": "faq_answer", "faq_id": withdraw}}))
    c3 = b.conv(start + timedelta(days=7), [("m", "保证金还没到"), ("answer", deposit, "useful")])
    c4 = b.conv(start, [("m", "查一下 GD2611180009"), ("agent", "您好")], merchant="M10003", handoff="upset",
                agent="agent01", wait=30, first_reply=10, closed_after=900)
    db.commit()
    assert db.scalar(select(func.count()).select_from(AnalyticsDirty)) > 0  # the triggers listed the changes
    after = figures(db)
    assert db.scalar(select(func.count()).select_from(AnalyticsDirty)) == 0

    f = after["headline"]
    assert (f["self_service"]["numerator"], f["self_service"]["denominator"]) == (2, 4)  # c2 (answered at last), c3
    assert (f["one_contact"]["numerator"], f["one_contact"]["denominator"]) == (3, 4)    # c1 came back on day 7
    assert (f["satisfaction"]["numerator"], f["satisfaction"]["rated"]) == (1, 1)
    topics = {r["conversation_id"]: r["topic"] for r in analytics.drill(db, RANGE, "one_contact", "all")["rows"]}
    assert topics == {c1: "保证金", c2: "提现与结算", c3: "保证金", c4: "GD2611180009"}
    faqs = {r["faq_id"]: r for r in after["faqs"]}
    assert (faqs[deposit]["useful"], faqs[deposit]["useless"], faqs[withdraw]["answered"]) == (1, 1, 1)
    assert after["agents"][0]["username"] == "agent01" and after["queue"]["taken"] == 1

    # the same figures from a rollup built from nothing
    for table in (AnalyticsConversation, AnalyticsConversationFaq, AnalyticsConversationNumber, AnalyticsDirty):
        db.execute(delete(table))
    db.commit()
    assert analytics.compute(db, RANGE)["totals"]["conversations"] == 0  # an empty rollup really is read
    assert analytics.rebuild_all(db) >= 4
    assert analytics.compute(db, RANGE) == after
