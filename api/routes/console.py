"""The agent console's API: the queue and lists, take, reply, transfer, close, hand back, private notes, answer
suggestions, canned replies and the agent's availability. Agents (and admins) only; kb editors and merchants get
403. Every change is pushed live: to the merchant's widget (``conv:N``) and to every agent's console (``agents``).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import func, or_, select
from starlette.concurrency import run_in_threadpool

from core.settings import Settings

from .. import labels, presenters, schemas
from ..deps import AgentDep, AgentOnlyDep, GatewayDep, KbDep, RasaDep, SessionDep, SettingsDep
from ..gateway import conv_channel, typing_event
from ..kb_service import KbUnavailableError
from ..models import (
    OPEN_CASE_STATUSES,
    AuditEvent,
    Availability,
    CannedReply,
    Conversation,
    ConversationMode,
    Merchant,
    Message,
    Role,
    Sender,
    User,
)
from ..rasa_client import RasaUnavailableError
from ..services import appeals as appeal_service
from ..services import cases as case_service
from ..services import handover
from ..services.handover import HandoverError

router = APIRouter(prefix="/api/staff", tags=["agent console"])
VIEWS = {"queue": "待接入", "mine": "我的会话", "active": "全部进行中", "closed": "已结束"}


# --------------------------------------------------------------------------- schemas


class ConsoleConversation(schemas.BaseModel):
    id: int
    mode: str
    mode_label: str
    merchant_code: str
    merchant_name: str
    handoff_reason: str | None
    handoff_reason_label: str | None
    waiting_since: datetime | None
    taken_at: datetime | None
    first_agent_reply_at: datetime | None
    assigned_agent_id: int | None
    assigned_agent_name: str | None
    last_message: str
    last_sender: str | None
    rating: int | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class NoteOut(schemas.BaseModel):
    id: int
    author: str
    text: str
    created_at: datetime


class AuditOut(schemas.BaseModel):
    at: datetime
    actor: str
    action: str
    detail: str


class MerchantProfile(schemas.BaseModel):
    code: str
    name: str
    main_category: str
    open_cases: list[schemas.CaseDetail]
    penalties: list[schemas.PenaltyOut]
    appeals: list[schemas.AppealDetail]
    conversations: int


class ConsoleDetail(schemas.BaseModel):
    conversation: ConsoleConversation
    summary: str
    messages: list[schemas.MessageOut]
    notes: list[NoteOut]
    audit: list[AuditOut]
    merchant: MerchantProfile


class AgentOut(schemas.BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    availability: str
    availability_label: str
    active: int


class MeOut(AgentOut):
    max_conversations: int
    queue_overdue_seconds: int
    sla_first_response_seconds: int
    sla_resolution_minutes: int


class AvailabilityIn(schemas.BaseModel):
    availability: str


class TextIn(schemas.BaseModel):
    text: str = schemas.Field(min_length=1, max_length=2000)


class TransferIn(schemas.BaseModel):
    agent_id: int = schemas.Field(ge=1, le=2**31 - 1)
    note: str = schemas.Field(default="", max_length=500)


class CannedIn(schemas.BaseModel):
    title: str = schemas.Field(min_length=1, max_length=50)
    text: str = schemas.Field(min_length=1, max_length=2000)
    shared: bool = False


class CannedOut(schemas.BaseModel):
    id: int
    title: str
    text: str
    shared: bool


class Suggestion(schemas.BaseModel):
    faq_id: int
    question: str
    answer: str
    category: str
    score: float


class SuggestionsOut(schemas.BaseModel):
    query: str
    decision: str | None
    suggestions: list[Suggestion]


# --------------------------------------------------------------------------- presenting


def _summary_rows(db, convs: list[Conversation]) -> list[ConsoleConversation]:
    """The list rows, with each conversation's merchant, agent and last message loaded in one query each."""
    if not convs:
        return []
    merchants = {m.id: m for m in db.scalars(select(Merchant).where(Merchant.id.in_({c.merchant_id for c in convs})))}
    agent_ids = {c.assigned_agent_id for c in convs if c.assigned_agent_id}
    agents = {u.id: u for u in db.scalars(select(User).where(User.id.in_(agent_ids)))} if agent_ids else {}
    last_ids = select(func.max(Message.id)).where(Message.conversation_id.in_([c.id for c in convs])) \
        .group_by(Message.conversation_id)
    lasts = {m.conversation_id: m for m in db.scalars(select(Message).where(Message.id.in_(last_ids)))}
    return [_summary_row(c, merchants[c.merchant_id], agents.get(c.assigned_agent_id), lasts.get(c.id))
            for c in convs]


def _summary_row(conv: Conversation, merchant: Merchant, agent: User | None,
                 last: Message | None) -> ConsoleConversation:
    aware = presenters.aware
    return ConsoleConversation(
        id=conv.id, mode=conv.mode.value, mode_label=labels.CONVERSATION_MODE[conv.mode], merchant_code=merchant.code,
        merchant_name=merchant.name, handoff_reason=conv.handoff_reason.value if conv.handoff_reason else None,
        handoff_reason_label=labels.HANDOFF_REASON[conv.handoff_reason] if conv.handoff_reason else None,
        waiting_since=aware(conv.waiting_since), taken_at=aware(conv.taken_at),
        first_agent_reply_at=aware(conv.first_agent_reply_at), assigned_agent_id=conv.assigned_agent_id,
        assigned_agent_name=agent.display_name if agent else None, last_message=(last.text[:80] if last else ""),
        last_sender=last.sender.value if last else None, rating=conv.rating, created_at=aware(conv.created_at),
        updated_at=aware(conv.updated_at), closed_at=aware(conv.closed_at))


def bot_summary(messages: list[Message], conv: Conversation) -> str:
    """One line on the bot's part, so the agent never asks the merchant to repeat themselves."""
    asked = [m.text for m in messages if m.sender == Sender.merchant and not (m.payload or {}).get("payload")]
    answered = [m for m in messages if m.sender == Sender.bot and ((m.payload or {}).get("custom") or {}).get("faq_id")]
    parts = [f"商家问了 {len(asked)} 个问题" + (f"，最近一个：「{asked[-1][:40]}」" if asked else "")]
    if answered:
        parts.append(f"机器人用知识库回答了 {len(answered)} 次")
    if conv.handoff_reason:
        parts.append(f"转人工原因：{labels.HANDOFF_REASON[conv.handoff_reason]}")
    return "；".join(parts)


def _profile(db, merchant: Merchant) -> MerchantProfile:
    cases = [c for c in case_service.list_cases(db, merchant, only_open=True, limit=10)
             if c.status in OPEN_CASE_STATUSES]
    appeals = appeal_service.list_appeals(db, merchant)[:10]
    open_ids = appeal_service.open_appeal_penalty_ids(db, merchant)
    penalties = [presenters.penalty(p, appeal_service.appeal_blocker(p, open_ids))
                 for p in appeal_service.list_penalties(db, merchant)[:10]]
    n = db.scalar(select(func.count(Conversation.id)).where(Conversation.merchant_id == merchant.id))
    return MerchantProfile(code=merchant.code, name=merchant.name, main_category=merchant.main_category,
                           open_cases=[presenters.case_detail(c, merchant.code) for c in cases],
                           penalties=penalties,
                           appeals=[presenters.appeal_detail(a, merchant.code) for a in appeals],
                           conversations=int(n or 0))


def _detail(db, conv: Conversation) -> ConsoleDetail:
    messages = list(db.scalars(select(Message).where(Message.conversation_id == conv.id).order_by(Message.id)
                               .limit(500)))
    audit = db.scalars(select(AuditEvent).where(AuditEvent.conversation_id == conv.id).order_by(AuditEvent.id))
    return ConsoleDetail(
        conversation=_summary_rows(db, [conv])[0], summary=bot_summary(messages, conv),
        messages=[presenters.message(m) for m in messages],
        notes=[NoteOut(id=n.id, author=name, text=n.text, created_at=presenters.aware(n.created_at))
               for n, name in handover.notes(db, conv.id)],
        audit=[AuditOut(at=presenters.aware(a.at), actor=a.actor, action=a.action, detail=a.detail) for a in audit],
        merchant=_profile(db, db.get(Merchant, conv.merchant_id)))


def _agent_out(db, user: User, settings: Settings, counts: dict[int, int] | None = None) -> AgentOut:
    counts = handover.active_counts(db) if counts is None else counts
    availability = handover.effective_availability(user, settings)
    return AgentOut(id=user.id, username=user.username, display_name=user.display_name, role=user.role.value,
                    availability=availability.value, availability_label=labels.AVAILABILITY[availability],
                    active=counts.get(user.id, 0))


def _fail(exc: HandoverError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.detail)


# --------------------------------------------------------------------------- the agent


@router.get("/me", response_model=MeOut, summary="当前客服与控制台设置")
def me(agent: AgentDep, db: SessionDep, settings: SettingsDep) -> MeOut:
    out = _agent_out(db, agent.user, settings)
    return MeOut(**out.model_dump(), max_conversations=settings.agent_max_conversations,
                 queue_overdue_seconds=settings.queue_overdue_seconds,
                 sla_first_response_seconds=settings.sla_first_response_seconds,
                 sla_resolution_minutes=settings.sla_resolution_minutes)


@router.put("/me/availability", response_model=AgentOut, summary="设置在线状态（控制台每分钟上报一次）")
def set_availability(body: AvailabilityIn, agent: AgentDep, db: SessionDep, settings: SettingsDep,
                     gateway: GatewayDep) -> AgentOut:
    try:
        availability = Availability(body.availability)
    except ValueError:
        raise HTTPException(status_code=422, detail="状态只能是 online、busy 或 offline") from None
    handover.set_availability(db, agent.user, availability)
    changes = handover.assign_waiting(db, settings) if availability == Availability.online else []
    db.commit()
    gateway.push_handover(changes)
    return _agent_out(db, agent.user, settings)


@router.get("/agents", response_model=list[AgentOut], summary="客服列表（转接用）")
def agents(_: AgentDep, db: SessionDep, settings: SettingsDep) -> list[AgentOut]:
    counts = handover.active_counts(db)
    users = db.scalars(select(User).where(User.is_active.is_(True), User.role.in_([Role.agent, Role.admin]))
                       .order_by(User.id))
    return [_agent_out(db, u, settings, counts) for u in users]


# --------------------------------------------------------------------------- conversations


@router.get("/conversations", response_model=list[ConsoleConversation], summary="会话列表")
def conversations(agent: AgentDep, db: SessionDep,
                  view: str = Query(default="queue", description="queue 待接入 · mine 我的 · active 进行中 · closed 已结束"),
                  q: str = Query(default="", max_length=50, description="商家编号或名称"),
                  limit: int = Query(default=100, ge=1, le=500)) -> list[ConsoleConversation]:
    if view not in VIEWS:
        raise HTTPException(status_code=422, detail="view 只能是 queue、mine、active 或 closed")
    stmt = select(Conversation)
    if view == "queue":  # oldest first: the one waiting longest is served first
        stmt = stmt.where(Conversation.mode == ConversationMode.waiting_agent) \
            .order_by(Conversation.waiting_since, Conversation.id)
    elif view == "mine":
        stmt = stmt.where(Conversation.mode == ConversationMode.agent, Conversation.assigned_agent_id == agent.user.id) \
            .order_by(Conversation.updated_at.desc())
    elif view == "active":
        stmt = stmt.where(or_(Conversation.mode == ConversationMode.agent,
                              Conversation.mode == ConversationMode.waiting_agent)).order_by(Conversation.updated_at.desc())
    else:
        stmt = stmt.where(Conversation.mode == ConversationMode.closed, Conversation.taken_at.is_not(None)) \
            .order_by(Conversation.closed_at.desc())
    if q.strip():
        stmt = stmt.where(handover.merchant_filter(q))
    return _summary_rows(db, list(db.scalars(stmt.limit(limit))))


@router.get("/conversations/{conversation_id}", response_model=ConsoleDetail, summary="会话详情（含机器人上下文）")
def conversation(conversation_id: int, _: AgentDep, db: SessionDep) -> ConsoleDetail:
    try:
        return _detail(db, handover.get(db, conversation_id))
    except HandoverError as exc:
        raise _fail(exc) from None


@router.post("/conversations/{conversation_id}/take", response_model=ConsoleDetail, summary="接入会话")
def take(conversation_id: int, agent: AgentDep, db: SessionDep, gateway: GatewayDep) -> ConsoleDetail:
    try:
        change = handover.take(db, conversation_id, agent.user)
    except HandoverError as exc:
        db.rollback()
        raise _fail(exc) from None
    db.commit()
    gateway.push_handover([change])
    return _detail(db, change.conversation)


@router.post("/conversations/{conversation_id}/reply", response_model=schemas.MessageOut, summary="客服回复")
def reply(conversation_id: int, body: TextIn, agent: AgentDep, db: SessionDep,
          gateway: GatewayDep) -> schemas.MessageOut:
    try:
        change = handover.reply(db, conversation_id, agent.user, body.text)
    except HandoverError as exc:
        raise _fail(exc) from None
    db.commit()
    gateway.push_everywhere(change.messages)
    gateway.hub.publish(conv_channel(conversation_id), typing_event(conversation_id, "agent", typing=False))
    return presenters.message(change.messages[0])


@router.post("/conversations/{conversation_id}/typing", status_code=204, summary="客服正在输入")
def agent_typing(conversation_id: int, agent: AgentDep, db: SessionDep, gateway: GatewayDep) -> None:
    conv = db.get(Conversation, conversation_id)
    if conv is not None and conv.mode == ConversationMode.agent and conv.assigned_agent_id == agent.user.id:
        gateway.hub.publish(conv_channel(conv.id), typing_event(conv.id, "agent"))


@router.post("/conversations/{conversation_id}/transfer", response_model=ConsoleDetail, summary="转接给其他客服")
def transfer(conversation_id: int, body: TransferIn, agent: AgentDep, db: SessionDep,
             gateway: GatewayDep) -> ConsoleDetail:
    try:
        change = handover.transfer(db, conversation_id, agent.user, body.agent_id, body.note)
    except HandoverError as exc:
        raise _fail(exc) from None
    db.commit()
    gateway.push_handover([change])
    return _detail(db, change.conversation)


@router.post("/conversations/{conversation_id}/close", response_model=ConsoleDetail, summary="结束会话（请商家评价）")
def close(conversation_id: int, agent: AgentDep, db: SessionDep, settings: SettingsDep,
          gateway: GatewayDep) -> ConsoleDetail:
    try:
        change = handover.close(db, conversation_id, agent.user)
    except HandoverError as exc:
        raise _fail(exc) from None
    db.flush()
    changes = [change, *handover.assign_waiting(db, settings)]  # a place is free: the queue moves on
    db.commit()
    gateway.push_handover(changes)
    return _detail(db, change.conversation)


@router.post("/conversations/{conversation_id}/release", response_model=ConsoleDetail, summary="交还给智能助手")
async def release(conversation_id: int, agent: AgentOnlyDep, request: Request, rasa: RasaDep,
                  gateway: GatewayDep) -> ConsoleDetail:
    sessions, settings = request.app.state.sessions, request.app.state.settings

    def check() -> None:
        with sessions() as db:
            conv = handover.get(db, conversation_id)
            if conv.mode not in (ConversationMode.agent, ConversationMode.waiting_agent):
                raise HandoverError(409, "会话不在人工服务中")

    def hand_back() -> tuple[list[handover.Change], ConsoleDetail]:
        with sessions() as db:
            user = db.get(User, agent.user.id)
            change = handover.release(db, conversation_id, user)
            db.flush()
            changes = [change, *handover.assign_waiting(db, settings)]
            db.commit()
            return changes, _detail(db, change.conversation)

    try:
        await run_in_threadpool(check)  # no session is held while Rasa is asked
        await rasa.resume(f"conv-{conversation_id}")
        changes, detail = await run_in_threadpool(hand_back)
    except HandoverError as exc:
        raise _fail(exc) from None
    except RasaUnavailableError:
        raise HTTPException(status_code=503, detail="智能助手暂时不可用，会话仍由人工负责") from None
    gateway.push_handover(changes)
    return detail


class Understood(schemas.BaseModel):
    message_id: int
    intent: str | None
    confidence: float


@router.get("/conversations/{conversation_id}/understood", response_model=list[Understood],
            summary="机器人对商家每条消息的理解（意图与置信度，来自 Rasa）")
async def understood(conversation_id: int, _: AgentOnlyDep, request: Request, rasa: RasaDep) -> list[Understood]:
    sessions = request.app.state.sessions

    def merchant_messages() -> list[Message]:
        with sessions() as db:
            handover.get(db, conversation_id)
            return list(db.scalars(select(Message).where(Message.conversation_id == conversation_id,
                                                         Message.sender == Sender.merchant).order_by(Message.id)))

    try:
        messages = await run_in_threadpool(merchant_messages)
        turns = await rasa.understood(f"conv-{conversation_id}")
    except HandoverError as exc:
        raise _fail(exc) from None
    except RasaUnavailableError:
        raise HTTPException(status_code=503, detail="智能助手暂时不可用，无法读取它的理解") from None
    return match_turns(messages, turns)


def match_turns(messages: list[Message], turns: list[dict]) -> list[Understood]:
    """Pair Rasa's user turns with the stored merchant messages, in order: a button's message was sent to Rasa as
    its payload, the others as their text; messages Rasa never saw (a person owned the conversation) are skipped."""
    out, i = [], 0
    for msg in messages:
        sent = (msg.payload or {}).get("payload") or msg.text
        for j in range(i, len(turns)):
            if turns[j]["text"] == sent:
                out.append(Understood(message_id=msg.id, intent=turns[j]["intent"], confidence=turns[j]["confidence"]))
                i = j + 1
                break
    return out


# --------------------------------------------------------------------------- notes, suggestions, canned replies


@router.get("/conversations/{conversation_id}/notes", response_model=list[NoteOut], summary="内部备注")
def list_notes(conversation_id: int, _: AgentDep, db: SessionDep) -> list[NoteOut]:
    return [NoteOut(id=n.id, author=name, text=n.text, created_at=presenters.aware(n.created_at))
            for n, name in handover.notes(db, conversation_id)]


@router.post("/conversations/{conversation_id}/notes", response_model=NoteOut, status_code=201,
             summary="添加内部备注（商家看不到）")
def add_note(conversation_id: int, body: TextIn, agent: AgentDep, db: SessionDep) -> NoteOut:
    try:
        note = handover.add_note(db, conversation_id, agent.user, body.text)
    except HandoverError as exc:
        raise _fail(exc) from None
    db.commit()
    return NoteOut(id=note.id, author=agent.user.display_name, text=note.text,
                   created_at=presenters.aware(note.created_at))


def _suggest(kb, db, text: str, k: int = 3) -> SuggestionsOut:
    from .. import crud

    if not text.strip():
        return SuggestionsOut(query=text, decision=None, suggestions=[])
    try:
        result = kb.search(text, k=k)
    except KbUnavailableError:
        raise HTTPException(status_code=503, detail="知识库正在加载，请稍后再试") from None
    faqs = crud.get_faqs(db, [h.faq_id for h in result.hits])
    return SuggestionsOut(query=text, decision=result.decision.value, suggestions=[
        Suggestion(faq_id=h.faq_id, question=f.question, answer=f.answer, category=f.category, score=round(h.score, 3))
        for h in result.hits[:k] if (f := faqs.get(h.faq_id)) is not None])


@router.get("/conversations/{conversation_id}/suggestions", response_model=SuggestionsOut,
            summary="针对商家最新一条消息的知识库答案建议")
def suggestions(conversation_id: int, _: AgentDep, db: SessionDep, kb: KbDep) -> SuggestionsOut:
    last = db.scalar(select(Message).where(Message.conversation_id == conversation_id,
                                           Message.sender == Sender.merchant).order_by(Message.id.desc()).limit(1))
    return _suggest(kb, db, last.text if last else "")


@router.get("/kb/search", response_model=SuggestionsOut, summary="在控制台里搜索知识库")
def kb_search(_: AgentDep, db: SessionDep, kb: KbDep, q: str = Query(min_length=1, max_length=200),
              k: int = Query(default=5, ge=1, le=10)) -> SuggestionsOut:
    return _suggest(kb, db, q, k)


def _canned_out(c: CannedReply) -> CannedOut:
    return CannedOut(id=c.id, title=c.title, text=c.text, shared=c.owner_id is None)


@router.get("/canned-replies", response_model=list[CannedOut], summary="常用语（我的 + 共享）")
def canned_replies(agent: AgentDep, db: SessionDep) -> list[CannedOut]:
    rows = db.scalars(select(CannedReply).where(or_(CannedReply.owner_id == agent.user.id,
                                                    CannedReply.owner_id.is_(None)))
                      .order_by(CannedReply.owner_id.is_(None), CannedReply.title))
    return [_canned_out(c) for c in rows]


@router.post("/canned-replies", response_model=CannedOut, status_code=201, summary="新建常用语")
def add_canned(body: CannedIn, agent: AgentDep, db: SessionDep) -> CannedOut:
    if body.shared and agent.user.role != Role.admin:
        raise HTTPException(status_code=403, detail="只有管理员可以维护共享常用语")
    row = CannedReply(owner_id=None if body.shared else agent.user.id, title=body.title.strip(), text=body.text.strip())
    db.add(row)
    db.commit()
    return _canned_out(row)


@router.delete("/canned-replies/{canned_id}", status_code=204, summary="删除常用语")
def delete_canned(canned_id: int, agent: AgentDep, db: SessionDep) -> None:
    row = db.get(CannedReply, canned_id)
    if row is None or (row.owner_id is None and agent.user.role != Role.admin) \
            or (row.owner_id is not None and row.owner_id != agent.user.id):
        raise HTTPException(status_code=404, detail="常用语不存在")
    db.delete(row)
    db.commit()

