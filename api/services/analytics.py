"""Service analytics: the three headline figures and the figures behind them, defined once.

The page (/console/analytics), the JSON API (/api/analytics/…) and the benchmark (benchmarks/analytics.py) all
call :func:`compute`; the definitions below are the ones README.md and the page print (``DEFINITIONS``).

How it works: a rollup keeps one row of facts per conversation (its columns the figures read, and what its
messages add up to), the FAQs each conversation was answered with and the case/appeal numbers the merchant named.
Database triggers list every changed conversation; :func:`refresh` rebuilds just those rows before the figures are
read. The figures are aggregated in SQL over the rollup (the definitions below: ``COUNTED``, ``SELF_SERVED``…);
one-contact resolution is a window query (the next conversation of the same merchant on the same topic), and the
percentiles are PostgreSQL's ``percentile_cont`` (on SQLite the durations are fetched and interpolated the same way).
Days and hours are Beijing time (``TZ``).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    delete,
    extract,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    true,
    union,
    update,
)
from sqlalchemy.orm import Session

from .. import labels
from ..models import (
    AnalyticsConversation,
    AnalyticsConversationFaq,
    AnalyticsConversationNumber,
    AnalyticsDirty,
    AnalyticsState,
    Appeal,
    AppealEvent,
    AppealStatus,
    Conversation,
    Faq,
    Feedback,
    HandoffReason,
    Merchant,
    Message,
    Sender,
    UnansweredQuestion,
    User,
)

TZ = ZoneInfo("Asia/Shanghai")
TARGETS = {"self_service": 0.75, "one_contact": 0.85, "satisfaction": 0.80}
REPEAT_WINDOW = timedelta(days=7)
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
UNKNOWN_TOPIC = "未识别"
NUMBER = re.compile(r"(?<![A-Za-z0-9])((?:GD|SS)\d{6,})", re.IGNORECASE)

DEFINITIONS = {
    "self_service": "自助解决率：会话里商家至少发过一条消息，且全程没有人工参与（未转人工、没有客服消息）、"
                    "没有任何回答被点「没用」、机器人最后一次回复不是「未能回答」——这样的会话数 ÷ 商家至少发过一条消息的会话数。",
    "one_contact": "一次解决率：每个会话里商家提出的每个问题（按主题：机器人答出的 FAQ 分类，或商家提到的工单号 GD…/申诉单号 SS…；"
                   "都没有时记为「未识别」主题）算一个问题；同一商家在之后 7 天内没有再就同一主题发起会话的问题数 ÷ 全部问题数。",
    "satisfaction": "满意度：评价为 4–5 星的会话数 ÷ 有评价的会话数；评价回复率 = 有评价的会话数 ÷ 已结束的会话数。",
    "escalation": "转人工率：转人工的会话数 ÷ 商家至少发过一条消息的会话数，按转人工原因分开统计。",
    "kb_decisions": "知识库决定占比：机器人每次用知识库回复时的决定（直接回答 / 您是想问 / 未能回答）各占全部知识库回复的比例；"
                    "点「您是想问」的选项后得到的回答也计为直接回答。",
    "feedback": "有用/没用：商家对机器人知识库回答的评价，按 FAQ 和分类统计。",
    "queue": "排队时长：转人工到客服接入的时间（只计已接入的会话），给出中位数（p50）和 90 分位数（p90）。",
    "agents": "客服：首次响应 = 接入到第一条客服回复；处理时长 = 转人工到会话结束；按会话最后负责的客服统计。",
    "appeals": "申诉审核时长：申诉提交到首次作出通过或驳回决定的时间（按提交日期落在范围内的申诉统计，只受商家筛选影响）。",
    "range": "时间范围按北京时间的日期计算，含首尾两天；会话按开始时间归入范围。最近 7 天内的问题是否再次出现，按目前已有的数据计算。",
}
DECISIONS = {"answer": "直接回答", "clarify": "您是想问", "no_answer": "未能回答"}
CUSTOM_TYPES = {"faq_answer": "answer", "kb_clarify": "clarify", "kb_no_answer": "no_answer"}
METRICS = ("self_service", "one_contact", "satisfaction", "escalation")


class AnalyticsError(Exception):
    """Input the analytics refuse; ``detail`` is the Chinese reason a 422 carries."""

    def __init__(self, detail: str, status: int = 422):
        super().__init__(detail)
        self.detail, self.status = detail, status


# --------------------------------------------------------------------------- the range and filters


@dataclass(frozen=True)
class Filters:
    start: date                      # first day (Beijing time), inclusive
    end: date                        # last day, inclusive
    category: str | None = None      # FAQ category: conversations answered from it, problems on it
    merchant: str | None = None      # merchant code
    agent: str | None = None         # agent username: conversations that agent handled

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, datetime.min.time(), TZ).astimezone(UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), datetime.min.time(), TZ).astimezone(UTC)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def today() -> date:
    return datetime.now(TZ).date()


def _parse_day(text: str | None, name: str) -> date | None:
    if text is None or text.strip() == "":
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise AnalyticsError(f"{name}格式不对，应为 YYYY-MM-DD，例如 2026-05-01") from None


def make_filters(db: Session, start: str | None = None, end: str | None = None, category: str | None = None,
                 merchant: str | None = None, agent: str | None = None) -> Filters:
    """Check the page's or a client's input: dates, a range of at most ``MAX_RANGE_DAYS``, filters that exist."""
    last = _parse_day(end, "结束日期") or today()
    first = _parse_day(start, "开始日期") or last - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if first > last:
        raise AnalyticsError("开始日期不能晚于结束日期")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise AnalyticsError(f"时间范围最长 {MAX_RANGE_DAYS} 天，请缩小范围")
    if first.year < 2000 or last.year > 2100:
        raise AnalyticsError("日期超出可统计的范围")
    category = (category or "").strip() or None
    merchant = (merchant or "").strip().upper() or None
    agent = (agent or "").strip() or None
    if category and db.scalar(select(Faq.id).where(Faq.category == category).limit(1)) is None:
        raise AnalyticsError(f"没有这个分类：{category}")
    if merchant and db.scalar(select(Merchant.id).where(Merchant.code == merchant)) is None:
        raise AnalyticsError(f"没有这个商家：{merchant}")
    if agent and db.scalar(select(User.id).where(User.username == agent)) is None:
        raise AnalyticsError(f"没有这个客服账号：{agent}")
    return Filters(first, last, category, merchant, agent)


def options(db: Session) -> dict:
    """What the page's filters offer."""
    categories = sorted(db.scalars(select(Faq.category).distinct()))
    agents = db.execute(select(User.username, User.display_name).where(User.role.in_(["agent", "admin"]))
                        .order_by(User.username)).all()
    return {"categories": categories, "agents": [{"username": u, "name": n} for u, n in agents],
            "targets": TARGETS, "definitions": DEFINITIONS, "max_range_days": MAX_RANGE_DAYS,
            "today": today().isoformat(), "default_days": DEFAULT_RANGE_DAYS}


# --------------------------------------------------------------------------- the rollup: facts per conversation
#
# ``analytics_conversations`` holds one row per conversation: the columns of the conversation the figures read,
# copied, and what its messages add up to; ``analytics_conversation_faqs`` the FAQs it was answered with and their
# 有用/没用; ``analytics_conversation_numbers`` the case/appeal numbers the merchant named. Triggers (migration
# 0006) list every conversation whose row or messages change in ``analytics_dirty``; :func:`refresh` rebuilds
# just those rows, and runs before every read of the figures, so they are never stale.

A, CF, CN = AnalyticsConversation, AnalyticsConversationFaq, AnalyticsConversationNumber
REFRESH_CHUNK = 5000


def _aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return max(0.0, (_aware(b) - _aware(a)).total_seconds())


def _is(column, value):
    return case((column == value, 1), else_=0)


def refresh(db: Session) -> int:
    """Rebuild the rollup rows of every conversation changed since the last refresh; commits. Returns how many
    conversations were rebuilt (0, after one cheap query, when nothing changed)."""
    if db.scalar(select(func.max(AnalyticsDirty.id))) is None:
        return 0
    db.execute(select(AnalyticsState.id).where(AnalyticsState.id == 1).with_for_update())  # one refresh at a time
    top = db.scalar(select(func.max(AnalyticsDirty.id)))  # what is left once a concurrent refresh finished
    if top is None:
        db.commit()
        return 0
    # take exactly the rows this statement sees: one a transaction commits meanwhile stays for the next refresh
    ids = sorted(set(db.scalars(delete(AnalyticsDirty).where(AnalyticsDirty.id <= top)
                                .returning(AnalyticsDirty.conversation_id))))
    for i in range(0, len(ids), REFRESH_CHUNK):
        _rebuild(db, ids[i:i + REFRESH_CHUNK])
    db.execute(update(AnalyticsState).where(AnalyticsState.id == 1)
               .values(refreshed_at=datetime.now(UTC), refreshed_conversations=len(ids)))
    db.commit()
    return len(ids)


def rebuild_all(db: Session) -> int:
    """Recompute the whole rollup from the conversations and messages (what the migration's first refresh does)."""
    db.execute(insert(AnalyticsDirty).from_select(["conversation_id"], select(Conversation.id)))
    db.commit()
    return refresh(db)


def _rebuild(db: Session, ids: list[int]) -> None:
    """The rollup rows of these conversations, from their conversation row and messages."""
    C, M = Conversation, Message
    for table in (A, CF, CN):
        db.execute(delete(table).where(table.conversation_id.in_(ids)))
    kind = M.payload[("custom", "type")].as_string()
    bot = M.sender == Sender.bot
    agg = (select(M.conversation_id.label("cid"),
                  func.sum(_is(M.sender, Sender.merchant)).label("merchant_messages"),
                  func.sum(_is(M.sender, Sender.agent)).label("agent_messages"),
                  func.sum(_is(M.feedback, Feedback.useless)).label("useless"),
                  func.max(case((bot, M.id))).label("last_bot"),
                  func.max(case((and_(bot, kind == "kb_no_answer"), M.id))).label("last_no_answer"),
                  func.sum(case((and_(bot, kind == "faq_answer"), 1), else_=0)).label("answer"),
                  func.sum(case((and_(bot, kind == "kb_clarify"), 1), else_=0)).label("clarify"),
                  func.sum(case((and_(bot, kind == "kb_no_answer"), 1), else_=0)).label("no_answer"))
           .where(M.conversation_id.in_(ids)).group_by(M.conversation_id).subquery())
    zero = literal(0)
    db.execute(insert(A).from_select(
        ["conversation_id", "merchant_id", "created_at", "handoff_reason", "agent_id", "rating", "waiting_since",
         "taken_at", "first_reply_at", "closed_at", "merchant_messages", "agent_messages", "useless",
         "unanswered_last", "answers", "clarifies", "no_answers"],
        select(C.id, C.merchant_id, C.created_at, C.handoff_reason, C.assigned_agent_id, C.rating, C.waiting_since,
               C.taken_at, C.first_agent_reply_at, C.closed_at,
               func.coalesce(agg.c.merchant_messages, zero), func.coalesce(agg.c.agent_messages, zero),
               func.coalesce(agg.c.useless, zero),
               case((and_(agg.c.last_bot.is_not(None), agg.c.last_no_answer == agg.c.last_bot), true()),
                    else_=false()),
               func.coalesce(agg.c.answer, zero), func.coalesce(agg.c.clarify, zero),
               func.coalesce(agg.c.no_answer, zero))
        .outerjoin(agg, agg.c.cid == C.id).where(C.id.in_(ids))))
    faq_id = M.payload[("custom", "faq_id")].as_integer()
    db.execute(insert(CF).from_select(
        ["conversation_id", "faq_id", "merchant_id", "created_at", "answered", "useful", "useless"],
        select(M.conversation_id, faq_id, C.merchant_id, C.created_at, func.count(),
               func.sum(_is(M.feedback, Feedback.useful)), func.sum(_is(M.feedback, Feedback.useless)))
        .join(C, C.id == M.conversation_id)
        .where(M.conversation_id.in_(ids), bot, kind == "faq_answer", faq_id.is_not(None))
        .group_by(M.conversation_id, faq_id, C.merchant_id, C.created_at)))
    numbers = _named_numbers(db, ids)
    if numbers:
        started = {i: (m, at) for i, m, at in db.execute(select(C.id, C.merchant_id, C.created_at)
                                                            .where(C.id.in_(list(numbers))))}
        db.execute(insert(CN), [{"conversation_id": cid, "number": n, "merchant_id": started[cid][0],
                                 "created_at": started[cid][1]}
                                for cid, found in sorted(numbers.items()) for n in sorted(found)])


def _named_numbers(db: Session, ids: list[int]) -> dict[int, set[str]]:
    """The case (GD…) and appeal (SS…) numbers the merchant named in these conversations, typed or picked from a
    button."""
    M = Message
    payload = func.upper(cast(M.payload, String))
    text = func.upper(M.text)
    named = [text.like(f"%{p}%") for p in ("GD", "SS")] + [payload.like(f"%{p}%") for p in ("GD", "SS")]
    out: dict[int, set[str]] = defaultdict(set)
    for cid, body, raw in db.execute(select(M.conversation_id, M.text, cast(M.payload, String))
                                     .where(M.conversation_id.in_(ids), M.sender == Sender.merchant, or_(*named))):
        for found in NUMBER.findall(f"{body or ''} {raw or ''}"):
            out[cid].add(found.upper())
    return out


# --------------------------------------------------------------------------- the definitions, as SQL over the rollup

COUNTED = A.merchant_messages > 0                        # only conversations where the merchant said something
PERSON = or_(A.handoff_reason.is_not(None), A.agent_messages > 0, A.taken_at.is_not(None))
SELF_SERVED = and_(COUNTED, not_(PERSON), A.useless == 0, not_(A.unanswered_last))
ESCALATED = A.handoff_reason.is_not(None)
SATISFIED = A.rating >= 4
QUEUED = and_(COUNTED, A.waiting_since.is_not(None), ESCALATED)   # waits counted from hand-over
AGENT_HANDLED = and_(COUNTED, A.agent_id.is_not(None), or_(A.taken_at.is_not(None), A.agent_messages > 0))
RESOLUTION_START = func.coalesce(A.waiting_since, A.taken_at)


def _count(condition):
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _total(condition, column):
    return func.coalesce(func.sum(case((condition, column), else_=0)), 0)


def _postgres(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def _read_settings(db: Session) -> None:
    """PostgreSQL, for this transaction: sort ~100k rows in memory, and no JIT (it compiles for longer than these
    queries run)."""
    if _postgres(db):
        db.execute(text("SET LOCAL work_mem = '64MB'"))
        db.execute(text("SET LOCAL jit = off"))


def _local_day_hour(db: Session):
    """The Beijing-time date ('YYYY-MM-DD') and hour a conversation started."""
    if _postgres(db):
        local = func.timezone(str(TZ), A.created_at)
        return func.to_char(local, "YYYY-MM-DD"), cast(extract("hour", local), Integer)
    local = func.datetime(A.created_at, "+8 hours")  # SQLite: China has kept UTC+8 without daylight saving since 1991
    return func.date(local), cast(func.strftime("%H", local), Integer)


def _plus_repeat_window(db: Session, column):
    """``column`` + 7 days, comparable with another timestamp column of the same table."""
    if _postgres(db):
        return column + REPEAT_WINDOW
    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff': shift the date and time, keep the microseconds
    return func.datetime(column, f"+{REPEAT_WINDOW.days} days").op("||")(func.substr(column, 20))


@dataclass
class Scope:
    """The range's conversations with the filters applied, as conditions on the rollup."""

    filters: Filters
    merchant_id: int | None
    agent_id: int | None

    def where(self, since: datetime | None = None, until: datetime | None = None, filtered: bool = True,
              table=A) -> list:
        """Conditions on ``table`` (the rollup or one of its per-conversation tables, which copy the start and
        merchant); the agent and category filters always on the rollup."""
        out = [table.created_at >= (since or self.filters.since), table.created_at < (until or self.filters.until)]
        if self.merchant_id is not None:
            out.append(table.merchant_id == self.merchant_id)
        if filtered and self.agent_id is not None:
            out.append(A.agent_id == self.agent_id)
        if filtered and self.filters.category is not None:
            out.append(A.conversation_id.in_(
                select(CF.conversation_id).join(Faq, Faq.id == CF.faq_id)
                .where(Faq.category == self.filters.category, CF.created_at >= (since or self.filters.since),
                       CF.created_at < (until or self.filters.until))))
        return out


def scope(db: Session, flt: Filters) -> Scope:
    merchant_id = db.scalar(select(Merchant.id).where(Merchant.code == flt.merchant)) if flt.merchant else None
    agent_id = db.scalar(select(User.id).where(User.username == flt.agent)) if flt.agent else None
    if flt.merchant and merchant_id is None:
        merchant_id = -1
    if flt.agent and agent_id is None:
        agent_id = -1
    return Scope(flt, merchant_id, agent_id)


def _durations(db: Session, start, end, where: list, group=None, scale: float = 1.0) -> dict:
    """Per ``group`` (or None): how many durations ``start`` → ``end`` (negative counts as 0, in seconds ÷ ``scale``)
    there are, their mean, p50 and p90. PostgreSQL computes them in the query; SQLite fetches the pairs."""
    key = (group if group is not None else literal(0)).label("key")
    where = [*where, start.is_not(None), end.is_not(None)]
    out: dict = {}
    if _postgres(db):
        secs = cast(func.greatest(extract("epoch", end - start), 0), Float) / scale
        for k, n, mean, p50, p90 in db.execute(
                select(key, func.count(), func.avg(secs), func.percentile_cont(0.5).within_group(secs),
                       func.percentile_cont(0.9).within_group(secs)).where(*where).group_by(key)):
            out[k if group is not None else None] = {"n": n, "mean": mean, "p50": p50, "p90": p90}
        return out
    values: dict = defaultdict(list)
    for k, a, b in db.execute(select(key, start, end).where(*where)):
        values[k if group is not None else None].append(_seconds(a, b) / scale)
    for k, xs in values.items():
        out[k] = {"n": len(xs), "mean": _mean(xs), "p50": percentile(xs, 0.5), "p90": percentile(xs, 0.9)}
    return out



# --------------------------------------------------------------------------- arithmetic


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def headline(num: int, den: int, key: str) -> dict:
    value = ratio(num, den)
    return {"value": _round(value), "numerator": num, "denominator": den, "target": TARGETS[key],
            "met": None if value is None else value >= TARGETS[key], "definition": DEFINITIONS[key]}


# --------------------------------------------------------------------------- one-contact resolution


def problems_query(db: Session, sc: Scope):
    """Every (conversation, topic) pair of the range (filters applied), with ``again_in``: the next conversation of
    the same merchant on the same topic when it started within 7 days, else NULL.

    A conversation's topics are the categories of the FAQs it was answered with and the case/appeal numbers the
    merchant named, or ``UNKNOWN_TOPIC``; the next conversations are looked for up to 7 days past the range."""
    flt = sc.filters
    window = (select(A.conversation_id, A.merchant_id, A.created_at)
              .where(*sc.where(until=flt.until + REPEAT_WINDOW, filtered=False), COUNTED).subquery("window"))
    ahead = {"until": flt.until + REPEAT_WINDOW, "filtered": False}
    topics = union(
        select(CF.conversation_id, Faq.category.label("topic")).join(Faq, Faq.id == CF.faq_id)
        .where(*sc.where(**ahead, table=CF)),
        select(CN.conversation_id, CN.number.label("topic")).where(*sc.where(**ahead, table=CN))).subquery("topics")
    topic = func.coalesce(topics.c.topic, UNKNOWN_TOPIC)
    order = {"partition_by": [window.c.merchant_id, topic], "order_by": [window.c.created_at, window.c.conversation_id]}
    pairs = (select(window.c.conversation_id, window.c.created_at, topic.label("topic"),
                    func.lead(window.c.conversation_id).over(**order).label("next_id"),
                    func.lead(window.c.created_at).over(**order).label("next_at"))
             .outerjoin(topics, topics.c.conversation_id == window.c.conversation_id).subquery("pairs"))
    repeated = and_(pairs.c.next_at.is_not(None), pairs.c.next_at <= _plus_repeat_window(db, pairs.c.created_at))
    where = [*sc.where(), pairs.c.created_at < flt.until]
    if flt.category is not None:
        where.append(pairs.c.topic == flt.category)
    return pairs, repeated, where


def _one_contact(db: Session, sc: Scope) -> tuple[int, int]:
    """(problems, problems raised again within 7 days)."""
    pairs, repeated, where = problems_query(db, sc)
    n, again = db.execute(select(func.count(), _count(repeated))
                          .select_from(pairs.join(A, A.conversation_id == pairs.c.conversation_id))
                          .where(*where)).one()
    return int(n), int(again)



# --------------------------------------------------------------------------- the dashboard


def compute(db: Session, flt: Filters) -> dict:
    """Every figure of the dashboard for one range and set of filters (what GET /api/analytics/summary returns)."""
    refresh(db)
    _read_settings(db)
    sc = scope(db, flt)
    grid = _grid(db, sc)
    n = sum(r["counted"] for r in grid)
    totals = Counter()
    for r in grid:
        totals.update(r)
    problems, repeated = _one_contact(db, sc)
    sat = headline(totals["satisfied"], totals["rated"], "satisfaction")
    sat.update(rated=totals["rated"], closed=totals["closed"], response_rate=_round(ratio(totals["rated"], totals["closed"])))
    result = {
        "range": {"start": flt.start.isoformat(), "end": flt.end.isoformat(), "days": len(flt.days),
                  "timezone": "Asia/Shanghai"},
        "filters": {"category": flt.category, "merchant": flt.merchant, "agent": flt.agent},
        "totals": {"conversations": totals["all"], "with_merchant_message": n, "escalated": totals["escalated"],
                   "closed": totals["closed"], "rated": totals["rated"], "problems": problems},
        "headline": {
            "self_service": headline(totals["self_served"], n, "self_service"),
            "one_contact": headline(problems - repeated, problems, "one_contact"),
            "satisfaction": sat,
        },
        "definitions": DEFINITIONS,
    }
    result["daily"] = _daily(flt, grid)
    result["hourly"] = _hourly(grid)
    result["escalations"], result["escalation_rate"] = _escalations(totals, n)
    result["kb_decisions"] = _decisions(totals)
    result["faqs"], result["categories"] = _faq_tables(db, sc)
    result["unanswered"] = _unanswered(db, sc, totals["all"])
    result["queue"] = _queue(db, sc, totals["queued"])
    result["agents"] = _agents(db, sc)
    result["appeals"] = _appeals(db, flt)
    result["ratings"] = [{"stars": s, "conversations": totals[f"stars_{s}"]} for s in range(1, 6)]
    return result


def _grid(db: Session, sc: Scope) -> list[dict]:
    """The range's conversations counted per Beijing-time day and hour, one query: everything the tiles, daily and
    hourly charts, escalation reasons, knowledge-base decisions and ratings need."""
    day, hour = _local_day_hour(db)
    columns = {
        "all": func.count(), "counted": _count(COUNTED), "self_served": _count(SELF_SERVED),
        "escalated": _count(and_(COUNTED, ESCALATED)), "closed": _count(and_(COUNTED, A.closed_at.is_not(None))),
        "rated": _count(and_(COUNTED, A.rating.is_not(None))), "satisfied": _count(and_(COUNTED, SATISFIED)),
        "queued": _count(QUEUED),
        **{f"reason_{r.value}": _count(and_(COUNTED, A.handoff_reason == r.value)) for r in HandoffReason},
        **{f"stars_{s}": _count(and_(COUNTED, A.rating == s)) for s in range(1, 6)},
        "answer": _total(COUNTED, A.answers), "clarify": _total(COUNTED, A.clarifies),
        "no_answer": _total(COUNTED, A.no_answers),
    }
    query = (select(day.label("day"), hour.label("hour"), *(c.label(k) for k, c in columns.items()))
             .where(*sc.where()).group_by(day, hour))
    return [{"day": r.day, "hour": int(r.hour), **{k: int(getattr(r, k)) for k in columns}} for r in db.execute(query)]


def _daily(flt: Filters, grid: list[dict]) -> list[dict]:
    days = {d.isoformat(): {"date": d.isoformat(), "conversations": 0, "self_served": 0, "escalated": 0, "rated": 0,
                            "satisfied": 0} for d in flt.days}
    for r in grid:
        row = days.get(r["day"])
        if row is None:
            continue
        row["conversations"] += r["counted"]
        for key in ("self_served", "escalated", "rated", "satisfied"):
            row[key] += r[key]
    for row in days.values():
        row["self_service_rate"] = _round(ratio(row["self_served"], row["conversations"]))
    return list(days.values())


def _hourly(grid: list[dict]) -> list[dict]:
    hours = Counter()
    for r in grid:
        hours[r["hour"]] += r["counted"]
    return [{"hour": h, "conversations": hours.get(h, 0)} for h in range(24)]


def _escalations(totals: Counter, n: int) -> tuple[list[dict], float | None]:
    reasons = {r.value: totals[f"reason_{r.value}"] for r in HandoffReason}
    rows = [{"reason": r.value, "label": labels.HANDOFF_REASON[r], "conversations": reasons[r.value],
             "rate": _round(ratio(reasons[r.value], n))} for r in HandoffReason]
    return rows, _round(ratio(sum(reasons.values()), n))


def _decisions(totals: Counter) -> list[dict]:
    everything = sum(totals[k] for k in DECISIONS)
    return [{"decision": k, "label": label, "count": totals[k], "share": _round(ratio(totals[k], everything))}
            for k, label in DECISIONS.items()]


def _faq_tables(db: Session, sc: Scope) -> tuple[list[dict], list[dict]]:
    faqs = {i: (q, c) for i, q, c in db.execute(select(Faq.id, Faq.question, Faq.category))}
    def of_range(query):
        """FAQ answers of the range's conversations: the per-FAQ table copies the start and merchant, so the
        rollup is joined only for the agent and category filters."""
        query = query.where(*sc.where(table=CF))
        if sc.agent_id is not None or sc.filters.category is not None:
            query = query.join(A, A.conversation_id == CF.conversation_id).where(*sc.where())
        return query

    per_faq = db.execute(of_range(select(CF.faq_id, func.sum(CF.answered), func.sum(CF.useful),
                                         func.sum(CF.useless), func.count()).group_by(CF.faq_id))).all()
    convs_per_category = dict(db.execute(of_range(
        select(Faq.category, func.count(CF.conversation_id.distinct())).join(Faq, Faq.id == CF.faq_id)
        .group_by(Faq.category))).all())
    rows = []
    per_category: dict[str, Counter] = defaultdict(Counter)
    for faq_id, answered, useful, useless, conversations in per_faq:
        answered, useful, useless = int(answered), int(useful), int(useless)
        question, category = faqs.get(faq_id, (f"（已删除的 FAQ {faq_id}）", UNKNOWN_TOPIC))
        rows.append({"faq_id": faq_id, "question": question, "category": category, "answered": answered,
                     "conversations": int(conversations), "useful": useful, "useless": useless,
                     "useless_rate": _round(ratio(useless, useful + useless))})
        per_category[category].update(answered=answered, useful=useful, useless=useless)
    rows.sort(key=lambda r: (-r["answered"], r["faq_id"]))
    categories = [{"category": cat, "conversations": int(convs_per_category.get(cat, 0)),
                   "answered": c["answered"], "useful": c["useful"], "useless": c["useless"],
                   "useless_rate": _round(ratio(c["useless"], c["useful"] + c["useless"]))}
                  for cat, c in per_category.items()]
    categories.sort(key=lambda r: (-r["conversations"], -r["answered"], r["category"]))
    return rows, categories


def _unanswered(db: Session, sc: Scope, conversations: int, limit: int = 20) -> list[dict]:
    """The questions the knowledge base could not answer most often (for the knowledge team)."""
    if not conversations:
        return []
    flt, U = sc.filters, UnansweredQuestion
    where = [U.created_at >= flt.since, U.created_at < flt.until]
    if flt.merchant or flt.agent or flt.category:
        where.append(U.conversation_id.in_(select(A.conversation_id).where(*sc.where())))
    rows = db.execute(select(U.text, func.count().label("n")).where(*where).group_by(U.text)
                      .order_by(func.count().desc(), U.text).limit(limit))
    return [{"question": t, "times": int(k)} for t, k in rows]


def _queue(db: Session, sc: Scope, queued: int) -> dict:
    waits = _durations(db, A.waiting_since, A.taken_at, [*sc.where(), QUEUED]).get(None, {})
    return {"escalated": queued, "taken": waits.get("n", 0), "wait_p50_seconds": _round(waits.get("p50"), 1),
            "wait_p90_seconds": _round(waits.get("p90"), 1), "wait_mean_seconds": _round(waits.get("mean"), 1)}


def _agents(db: Session, sc: Scope) -> list[dict]:
    where = [*sc.where(), AGENT_HANDLED]
    counts = db.execute(select(A.agent_id, func.count(), _count(A.rating.is_not(None)), _count(SATISFIED))
                        .where(*where).group_by(A.agent_id)).all()
    first = _durations(db, A.taken_at, A.first_reply_at, where, group=A.agent_id)
    done = _durations(db, RESOLUTION_START, A.closed_at, where, group=A.agent_id, scale=60.0)
    names = {i: (u, n) for i, u, n in db.execute(select(User.id, User.username, User.display_name))}
    rows = []
    for agent_id, n, rated, satisfied in counts:
        f, d = first.get(agent_id, {}), done.get(agent_id, {})
        username, name = names.get(agent_id, (str(agent_id), str(agent_id)))
        rows.append({"username": username, "name": name, "conversations": int(n),
                     "first_response_p50_seconds": _round(f.get("p50"), 1),
                     "first_response_mean_seconds": _round(f.get("mean"), 1),
                     "resolution_p50_minutes": _round(d.get("p50"), 1),
                     "resolution_mean_minutes": _round(d.get("mean"), 1),
                     "rated": int(rated), "satisfied": int(satisfied), "satisfaction": _round(ratio(int(satisfied), int(rated)))})
    rows.sort(key=lambda r: (-r["conversations"], r["username"]))
    return rows


def _appeals(db: Session, flt: Filters) -> dict:
    where = [Appeal.created_at >= flt.since, Appeal.created_at < flt.until]
    if flt.merchant:
        where.append(Appeal.merchant_id == select(Merchant.id).where(Merchant.code == flt.merchant).scalar_subquery())
    decided_at = (select(AppealEvent.appeal_id, func.min(AppealEvent.at).label("at"))
                  .where(AppealEvent.status.in_([AppealStatus.approved, AppealStatus.rejected]))
                  .group_by(AppealEvent.appeal_id).subquery())
    rows = db.execute(select(Appeal.created_at, decided_at.c.at)
                      .outerjoin(decided_at, decided_at.c.appeal_id == Appeal.id).where(*where)).all()
    hours = [s / 3600 for c, d in rows if (s := _seconds(c, d)) is not None]
    return {"filed": len(rows), "decided": len(hours), "review_mean_hours": _round(_mean(hours), 2),
            "review_p50_hours": _round(percentile(hours, 0.5), 2), "review_p90_hours": _round(percentile(hours, 0.9), 2)}


# --------------------------------------------------------------------------- drill-down and CSV


def drill(db: Session, flt: Filters, metric: str, outcome: str = "miss", limit: int = 200, offset: int = 0) -> dict:
    """The conversations behind a figure: those that count against it (``miss``) or for it (``hit``)."""
    if metric not in METRICS:
        raise AnalyticsError("指标只能是 " + "、".join(METRICS))
    if outcome not in ("hit", "miss", "all"):
        raise AnalyticsError("outcome 只能是 hit、miss 或 all")
    refresh(db)
    _read_settings(db)
    rows = drill_rows(db, scope(db, flt), metric, outcome)
    return {"metric": metric, "outcome": outcome, "total": len(rows), "rows": rows[offset:offset + limit]}


def _miss_reason(r) -> str:
    """Why a conversation does not count as self-service."""
    reasons = []
    if r.person:
        reasons.append("转人工：" + labels.HANDOFF_REASON[HandoffReason(r.handoff_reason)]
                       if r.handoff_reason else "有客服参与")
    if r.useless:
        reasons.append(f"{r.useless} 个回答被点「没用」")
    if r.unanswered_last:
        reasons.append("最后一个问题未能回答")
    return "；".join(reasons)


def drill_rows(db: Session, sc: Scope, metric: str, outcome: str) -> list[dict]:
    def keep(hit: bool) -> bool:
        return outcome == "all" or (outcome == "hit") == hit

    agents = {i: n for i, n in db.execute(select(User.id, User.display_name))}
    merchants = select(Merchant.code).where(Merchant.id == A.merchant_id).scalar_subquery()
    columns = [A.conversation_id, A.created_at, A.agent_id, A.rating, A.merchant_messages, A.handoff_reason,
               A.useless, A.unanswered_last, merchants.label("merchant"), PERSON.label("person"),
               SELF_SERVED.label("self_served")]

    def base(r) -> dict:
        return {"conversation_id": r.conversation_id, "merchant": r.merchant or "",
                "started_at": _aware(r.created_at).astimezone(TZ).strftime("%Y-%m-%d %H:%M"),
                "agent": agents.get(r.agent_id, "") if r.agent_id else "", "rating": r.rating,
                "messages": r.merchant_messages}

    out = []
    if metric == "one_contact":
        pairs, repeated, where = problems_query(db, sc)
        rows = db.execute(select(*columns, pairs.c.topic, pairs.c.next_id, repeated.label("repeated"))
                          .select_from(pairs.join(A, A.conversation_id == pairs.c.conversation_id))
                          .where(*where).order_by(A.created_at, A.conversation_id, pairs.c.topic))
        for r in rows:
            hit = not r.repeated
            if keep(hit):
                out.append({**base(r), "topic": r.topic, "result": "一次解决" if hit else "7 天内再次咨询",
                            "why": "" if hit else f"同一主题在会话 {r.next_id} 再次提出"})
        return out
    rows = db.execute(select(*columns).where(*sc.where(), COUNTED).order_by(A.created_at, A.conversation_id))
    for r in rows:
        if metric == "self_service":
            if keep(bool(r.self_served)):
                out.append({**base(r), "result": "自助解决" if r.self_served else "未自助解决",
                            "why": "" if r.self_served else _miss_reason(r)})
        elif metric == "satisfaction":
            if r.rating is not None and keep(r.rating >= 4):
                out.append({**base(r), "result": "满意" if r.rating >= 4 else "不满意", "why": f"{r.rating} 星"})
        elif keep(r.handoff_reason is None):
            reason = labels.HANDOFF_REASON[HandoffReason(r.handoff_reason)] if r.handoff_reason else ""
            out.append({**base(r), "result": "转人工" if r.handoff_reason else "未转人工", "why": reason})
    return out



TABLES = {
    "daily": ("每日会话", [("date", "日期"), ("conversations", "会话数"), ("self_served", "自助解决"),
                         ("self_service_rate", "自助解决率"), ("escalated", "转人工"), ("rated", "有评价"),
                         ("satisfied", "4–5 星")]),
    "hourly": ("各时段会话", [("hour", "小时"), ("conversations", "会话数")]),
    "escalations": ("转人工原因", [("label", "原因"), ("conversations", "会话数"), ("rate", "占全部会话")]),
    "kb_decisions": ("知识库决定", [("label", "决定"), ("count", "次数"), ("share", "占比")]),
    "faqs": ("FAQ", [("faq_id", "FAQ 编号"), ("question", "问题"), ("category", "分类"), ("answered", "回答次数"),
                     ("conversations", "会话数"), ("useful", "有用"), ("useless", "没用"), ("useless_rate", "没用占比")]),
    "categories": ("分类", [("category", "分类"), ("conversations", "会话数"), ("answered", "回答次数"),
                          ("useful", "有用"), ("useless", "没用"), ("useless_rate", "没用占比")]),
    "unanswered": ("未能回答的问题", [("question", "问题"), ("times", "次数")]),
    "agents": ("客服", [("name", "客服"), ("username", "账号"), ("conversations", "会话数"),
                       ("first_response_p50_seconds", "首次响应中位数（秒）"),
                       ("first_response_mean_seconds", "首次响应平均（秒）"),
                       ("resolution_p50_minutes", "处理时长中位数（分钟）"),
                       ("resolution_mean_minutes", "处理时长平均（分钟）"), ("rated", "有评价"),
                       ("satisfaction", "满意度")]),
    "ratings": ("评价分布", [("stars", "星级"), ("conversations", "会话数")]),
}
DRILL_COLUMNS = [("conversation_id", "会话编号"), ("merchant", "商家"), ("started_at", "开始时间"),
                 ("agent", "客服"), ("topic", "主题"), ("result", "结果"), ("why", "原因"), ("rating", "评价")]


def to_csv(columns: list[tuple[str, str]], rows: list[dict]) -> str:
    """CSV with a header of Chinese column names and a BOM, so spreadsheet programs read the Chinese."""
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf)
    writer.writerow([title for _, title in columns])
    for row in rows:
        writer.writerow(["" if row.get(key) is None else _cell(row.get(key)) for key, _ in columns])
    return buf.getvalue()


def _cell(value) -> str:
    text = str(value)
    # a cell a spreadsheet would run as a formula is written as text
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def table_csv(db: Session, flt: Filters, table: str) -> tuple[str, str]:
    """One table of the dashboard as CSV: (file name, text)."""
    if table not in TABLES:
        raise AnalyticsError("没有这个表：" + table + "（可选：" + "、".join(TABLES) + "）")
    title, columns = TABLES[table]
    data = compute(db, flt)
    return f"{title}_{flt.start}_{flt.end}.csv", to_csv(columns, data[table])


def drill_csv(db: Session, flt: Filters, metric: str, outcome: str) -> tuple[str, str]:
    data = drill(db, flt, metric, outcome, limit=10**9)
    return f"明细_{metric}_{outcome}_{flt.start}_{flt.end}.csv", to_csv(DRILL_COLUMNS, data["rows"])
