"""Support staff: move cases and appeals on (the merchant sees each step in the timeline)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.concurrency import run_in_threadpool

from .. import presenters, schemas, security
from ..deps import AdminDep, AgentDep, AgentOnlyDep, GatewayDep, RasaDep, SessionDep
from ..gateway import conv_channel, merchant_channel, notification_event, typing_event
from ..models import (
    OPEN_APPEAL_STATUSES,
    OPEN_CASE_STATUSES,
    Appeal,
    AppealStatus,
    CaseStatus,
    Conversation,
    ConversationMode,
    Merchant,
    Message,
    Role,
    Sender,
    ServiceCase,
    User,
)
from ..rasa_client import RasaUnavailableError
from ..services import appeals as appeal_service
from ..services import cases as case_service
from ..services import notifications

router = APIRouter(prefix="/api/staff", tags=["staff"])


def _merchant_code(db, merchant_id: int) -> str:
    return db.get(Merchant, merchant_id).code


def _notify(gateway, note) -> None:
    """服务进度提醒: live in the merchant's open widgets; the stored row shows on the next open otherwise."""
    gateway.hub.publish(merchant_channel(note.merchant_id), notification_event(note))


@router.get("/cases", response_model=list[schemas.CaseSummary], summary="工单列表")
def cases(_: AgentDep, db: SessionDep, open: bool = True, limit: int = 100) -> list[schemas.CaseSummary]:
    query = select(ServiceCase)
    if open:
        query = query.where(ServiceCase.status.in_(OPEN_CASE_STATUSES))
    rows = db.scalars(query.order_by(ServiceCase.updated_at.desc()).limit(min(max(limit, 1), 500)))
    return [presenters.case_summary(c) for c in rows]


@router.get("/cases/{number}", response_model=schemas.CaseDetail, summary="工单详情")
def case(number: str, _: AgentDep, db: SessionDep) -> schemas.CaseDetail:
    c = case_service.find_case(db, number, None)
    return presenters.case_detail(c, _merchant_code(db, c.merchant_id))


@router.post("/cases/{number}/events", response_model=schemas.CaseDetail, summary="更新工单进度")
def advance_case(number: str, body: schemas.CaseAdvance, _: AgentDep, db: SessionDep,
                 gateway: GatewayDep) -> schemas.CaseDetail:
    try:
        status = CaseStatus(body.status)
    except ValueError:
        raise HTTPException(status_code=422, detail="工单状态不在可选范围内") from None
    c = case_service.find_case(db, number, None)
    case_service.advance(db, c, status, body.note, body.expected_done_at)
    note = notifications.case_changed(db, c, body.note)
    db.commit()
    _notify(gateway, note)
    return presenters.case_detail(c, _merchant_code(db, c.merchant_id))


@router.get("/appeals", response_model=list[schemas.AppealSummary], summary="申诉列表")
def appeals(_: AgentDep, db: SessionDep, open: bool = True) -> list[schemas.AppealSummary]:
    query = select(Appeal).options(selectinload(Appeal.penalty))
    if open:
        query = query.where(Appeal.status.in_(OPEN_APPEAL_STATUSES))
    return [presenters.appeal_summary(a) for a in db.scalars(query.order_by(Appeal.sla_due_at).limit(200))]


@router.get("/appeals/{number}", response_model=schemas.AppealDetail, summary="申诉详情")
def appeal(number: str, _: AgentDep, db: SessionDep) -> schemas.AppealDetail:
    a = appeal_service.find_appeal(db, number, None)
    return presenters.appeal_detail(a, _merchant_code(db, a.merchant_id))


@router.post("/appeals/{number}/review", response_model=schemas.AppealDetail, summary="审核申诉")
def review_appeal(number: str, body: schemas.AppealReview, staff: AgentDep, db: SessionDep,
                  gateway: GatewayDep) -> schemas.AppealDetail:
    try:
        status = AppealStatus(body.status)
    except ValueError:
        raise HTTPException(status_code=422, detail="审核结果不在可选范围内") from None
    a = appeal_service.find_appeal(db, number, None, lock=True)
    appeal_service.review(db, a, status, body.note, staff.actor)
    note = notifications.appeal_changed(db, a, body.note)
    db.commit()
    _notify(gateway, note)
    return presenters.appeal_detail(a, _merchant_code(db, a.merchant_id))


class UserCreate(schemas.BaseModel):
    username: str = schemas.Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    display_name: str = schemas.Field(min_length=1, max_length=100)
    password: str = schemas.Field(min_length=8, max_length=200)
    role: str


class UserOut(schemas.BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    is_active: bool


@router.post("/users", response_model=UserOut, status_code=201, summary="新建员工账号（管理员）")
def create_user(body: UserCreate, _: AdminDep, db: SessionDep) -> UserOut:
    try:
        role = Role(body.role)
    except ValueError:
        raise HTTPException(status_code=422, detail="角色只能是 agent、kb_editor 或 admin") from None
    if role == Role.merchant:
        raise HTTPException(status_code=422, detail="商家账号由商家后台签发凭证，无需在此创建")
    if db.scalar(select(User).where(User.username == body.username)):
        raise HTTPException(status_code=409, detail="用户名已存在")
    user = User(username=body.username, display_name=body.display_name.strip(),
                password_hash=security.hash_password(body.password), role=role)
    db.add(user)
    db.commit()
    return UserOut(id=user.id, username=user.username, display_name=user.display_name, role=user.role.value,
                   is_active=user.is_active)


@router.get("/users", response_model=list[UserOut], summary="员工账号（管理员）")
def users(_: AdminDep, db: SessionDep) -> list[UserOut]:
    return [UserOut(id=u.id, username=u.username, display_name=u.display_name, role=u.role.value,
                    is_active=u.is_active) for u in db.scalars(select(User).order_by(User.id))]


# --------------------------------------------------------------------------- the agent console's conversations


class AgentReply(schemas.BaseModel):
    text: str = schemas.Field(min_length=1, max_length=2000)


def _staff_conversation(db, conversation_id: int) -> Conversation:
    conv = db.get(Conversation, conversation_id)
    if conv is None:
        raise HTTPException(status_code=404, detail="会话不存在")
    return conv


def _detail(db, conv: Conversation) -> schemas.ConversationDetail:
    msgs = db.scalars(select(Message).where(Message.conversation_id == conv.id).order_by(Message.id).limit(500))
    return schemas.ConversationDetail(**presenters.conversation(conv).model_dump(),
                                      merchant_code=_merchant_code(db, conv.merchant_id),
                                      messages=[presenters.message(m) for m in msgs])


@router.get("/conversations", response_model=list[schemas.ConversationDetail], summary="待接入和服务中的会话")
def conversations(_: AgentDep, db: SessionDep, mode: str = "waiting_agent") -> list[schemas.ConversationDetail]:
    try:
        wanted = ConversationMode(mode)
    except ValueError:
        raise HTTPException(status_code=422, detail="mode 只能是 bot、waiting_agent、agent 或 closed") from None
    rows = db.scalars(select(Conversation).where(Conversation.mode == wanted).order_by(Conversation.updated_at).limit(50))
    return [_detail(db, c) for c in rows]


@router.post("/conversations/{conversation_id}/take", response_model=schemas.ConversationDetail, summary="接入会话")
def take(conversation_id: int, agent: AgentDep, db: SessionDep, gateway: GatewayDep) -> schemas.ConversationDetail:
    conv = _staff_conversation(db, conversation_id)
    if conv.mode == ConversationMode.agent and conv.assigned_agent_id not in (None, agent.user.id):
        raise HTTPException(status_code=409, detail="该会话已由其他客服接入")
    if conv.mode == ConversationMode.closed:
        raise HTTPException(status_code=409, detail="会话已结束")
    conv.mode, conv.assigned_agent_id = ConversationMode.agent, agent.user.id
    msg = Message(conversation_id=conv.id, sender=Sender.system, text=f"人工客服 {agent.user.display_name} 已接入")
    db.add(msg)
    db.commit()
    gateway.push_messages([msg])
    gateway.push_mode(conv)
    return _detail(db, conv)


@router.post("/conversations/{conversation_id}/reply", response_model=schemas.MessageOut, summary="客服回复")
def reply(conversation_id: int, body: AgentReply, agent: AgentDep, db: SessionDep,
          gateway: GatewayDep) -> schemas.MessageOut:
    conv = _staff_conversation(db, conversation_id)
    if conv.mode != ConversationMode.agent or conv.assigned_agent_id != agent.user.id:
        raise HTTPException(status_code=409, detail="请先接入该会话再回复")
    msg = Message(conversation_id=conv.id, sender=Sender.agent, text=body.text.strip(), agent_id=agent.user.id,
                  payload={"agent_name": agent.user.display_name})
    db.add(msg)
    db.commit()
    gateway.push_messages([msg])
    return presenters.message(msg)


@router.post("/conversations/{conversation_id}/typing", status_code=204, summary="客服正在输入")
def agent_typing(conversation_id: int, agent: AgentDep, db: SessionDep, gateway: GatewayDep) -> None:
    conv = _staff_conversation(db, conversation_id)
    if conv.mode == ConversationMode.agent and conv.assigned_agent_id == agent.user.id:
        gateway.hub.publish(conv_channel(conv.id), typing_event(conv.id, "agent"))


@router.post("/conversations/{conversation_id}/release", response_model=schemas.ConversationDetail,
             summary="交还给智能助手")
async def release(conversation_id: int, _: AgentOnlyDep, request: Request, rasa: RasaDep,
                  gateway: GatewayDep) -> schemas.ConversationDetail:
    sessions = request.app.state.sessions

    def check() -> None:
        with sessions() as db:
            conv = _staff_conversation(db, conversation_id)
            if conv.mode not in (ConversationMode.agent, ConversationMode.waiting_agent):
                raise HTTPException(status_code=409, detail="会话不在人工服务中")

    def hand_back() -> tuple[Conversation, Message, schemas.ConversationDetail]:
        with sessions() as db:
            conv = _staff_conversation(db, conversation_id)
            conv.mode, conv.assigned_agent_id = ConversationMode.bot, None
            msg = Message(conversation_id=conv.id, sender=Sender.system, text="客服已结束人工服务，智能助手继续为您服务")
            db.add(msg)
            db.commit()
            return conv, msg, _detail(db, conv)

    await run_in_threadpool(check)  # no session is held while Rasa is asked
    try:
        await rasa.resume(f"conv-{conversation_id}")
    except RasaUnavailableError:
        raise HTTPException(status_code=503, detail="智能助手暂时不可用，会话仍由人工负责") from None
    conv, msg, detail = await run_in_threadpool(hand_back)
    gateway.push_messages([msg])
    gateway.push_mode(conv)
    return detail
