"""A merchant's conversations: history, feedback on answers, the closing rating, 留言 when the queue is long."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from .. import crud, presenters, schemas
from ..deps import GatewayDep, MerchantDep, SessionDep
from ..models import Conversation, ConversationMode, Feedback, Message, Sender, utcnow
from ..services import handover

router = APIRouter(prefix="/api", tags=["conversations"])
NOT_FOUND = "会话不存在"


@router.get("/conversations", response_model=list[schemas.ConversationOut], summary="我的会话")
def my_conversations(merchant: MerchantDep, db: SessionDep) -> list[schemas.ConversationOut]:
    rows = db.scalars(select(Conversation).where(Conversation.merchant_id == merchant.id)
                      .order_by(Conversation.id.desc()).limit(50))
    return [presenters.conversation(c) for c in rows]


@router.post("/conversations", response_model=schemas.ConversationOut, status_code=201, summary="开始新会话")
def new_conversation(merchant: MerchantDep, db: SessionDep) -> schemas.ConversationOut:
    conv = Conversation(merchant_id=merchant.id, mode=ConversationMode.bot)
    db.add(conv)
    db.commit()
    return presenters.conversation(conv)


@router.get("/conversations/{conversation_id}", response_model=schemas.ConversationDetail, summary="会话记录")
def my_conversation(conversation_id: int, merchant: MerchantDep, db: SessionDep,
                    after_id: int = 0) -> schemas.ConversationDetail:
    conv = crud.get_conversation(db, merchant, conversation_id)
    if conv is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    msgs = db.scalars(select(Message).where(Message.conversation_id == conv.id, Message.id > after_id)
                      .order_by(Message.id).limit(500))
    return schemas.ConversationDetail(**presenters.conversation(conv).model_dump(),
                                      messages=[presenters.message(m) for m in msgs])


@router.post("/messages/{message_id}/feedback", response_model=schemas.MessageOut, summary="回答有用/没用")
def feedback(message_id: int, body: schemas.FeedbackIn, merchant: MerchantDep, db: SessionDep) -> schemas.MessageOut:
    try:
        value = Feedback(body.value)
    except ValueError:
        raise HTTPException(status_code=422, detail="评价只能是 useful（有用）或 useless（没用）") from None
    msg = db.scalar(select(Message).join(Conversation).where(
        Message.id == message_id, Conversation.merchant_id == merchant.id))
    if msg is None:
        raise HTTPException(status_code=404, detail="消息不存在")
    if msg.sender != Sender.bot:
        raise HTTPException(status_code=422, detail="只能评价助手的回答")
    msg.feedback = value
    db.commit()
    return presenters.message(msg)


@router.post("/conversations/{conversation_id}/rating", response_model=schemas.ConversationOut,
             summary="结束会话并评价（1–5 分）")
def rate(conversation_id: int, body: schemas.RatingIn, merchant: MerchantDep, db: SessionDep,
         gateway: GatewayDep) -> schemas.ConversationOut:
    conv = crud.get_conversation(db, merchant, conversation_id)
    if conv is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    if conv.rating is not None:
        raise HTTPException(status_code=409, detail="这次会话已经评价过了")
    conv.rating, conv.rating_comment = body.rating, body.comment.strip()
    if conv.mode != ConversationMode.closed:
        conv.mode, conv.closed_at = ConversationMode.closed, utcnow()
    db.commit()
    gateway.push_mode(conv)
    return presenters.conversation(conv)


class LeaveMessageIn(schemas.BaseModel):
    text: str = schemas.Field(min_length=1, max_length=2000)


class LeaveMessageOut(schemas.BaseModel):
    case_number: str
    conversation: schemas.ConversationOut


@router.post("/conversations/{conversation_id}/leave-message", response_model=LeaveMessageOut, status_code=201,
             summary="排队太久时留言：生成一个工单，会话结束")
def leave_message(conversation_id: int, body: LeaveMessageIn, merchant: MerchantDep, db: SessionDep,
                  gateway: GatewayDep) -> LeaveMessageOut:
    conv = crud.get_conversation(db, merchant, conversation_id)
    if conv is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    try:
        change, case = handover.leave_message(db, conv, body.text, merchant.code)
    except handover.HandoverError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from None
    db.commit()
    gateway.push_handover([change])
    return LeaveMessageOut(case_number=case.number, conversation=presenters.conversation(conv))
