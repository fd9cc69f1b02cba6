"""Support staff: move cases and appeals on (the merchant sees each step in the timeline)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import presenters, schemas, security
from ..deps import AdminDep, AgentDep, GatewayDep, SessionDep
from ..gateway import merchant_channel, notification_event
from ..models import (
    OPEN_APPEAL_STATUSES,
    OPEN_CASE_STATUSES,
    Appeal,
    AppealStatus,
    CaseStatus,
    Conversation,
    Merchant,
    Role,
    ServiceCase,
    User,
)
from ..services import appeals as appeal_service
from ..services import cases as case_service
from ..services import handover, notifications

router = APIRouter(prefix="/api/staff", tags=["staff"])


def _merchant_code(db, merchant_id: int) -> str:
    return db.get(Merchant, merchant_id).code


def _known(db, conversation_id: int | None) -> int | None:
    """The conversation an action was taken from, if it exists (for its audit trail)."""
    return conversation_id if conversation_id and db.get(Conversation, conversation_id) else None


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
def advance_case(number: str, body: schemas.CaseAdvance, staff: AgentDep, db: SessionDep, gateway: GatewayDep,
                 conversation_id: int | None = Query(default=None, ge=1, le=2**31 - 1,
                                                     description="在控制台里处理某个会话时传入，记入该会话的操作记录"),
                 ) -> schemas.CaseDetail:
    try:
        status = CaseStatus(body.status)
    except ValueError:
        raise HTTPException(status_code=422, detail="工单状态不在可选范围内") from None
    c = case_service.find_case(db, number, None)
    case_service.advance(db, c, status, body.note, body.expected_done_at)
    handover.audit(db, staff.actor, "case", _known(db, conversation_id), c.number, f"{status.value}：{body.note}")
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
def review_appeal(number: str, body: schemas.AppealReview, staff: AgentDep, db: SessionDep, gateway: GatewayDep,
                  conversation_id: int | None = Query(default=None, ge=1, le=2**31 - 1),
                  ) -> schemas.AppealDetail:
    try:
        status = AppealStatus(body.status)
    except ValueError:
        raise HTTPException(status_code=422, detail="审核结果不在可选范围内") from None
    a = appeal_service.find_appeal(db, number, None, lock=True)
    appeal_service.review(db, a, status, body.note, staff.actor)
    handover.audit(db, staff.actor, "review", _known(db, conversation_id), a.number, f"{status.value}：{body.note}")
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
