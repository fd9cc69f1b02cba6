"""Endpoints for our own action server, guarded by the internal token."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, HTTPException
from pydantic import BaseModel, Field

from .. import crud, labels
from ..deps import GatewayDep, KbDep, SessionDep, SettingsDep, require_internal_token
from ..kb_service import KbUnavailableError
from ..models import FaqStatus, HandoffReason, User
from ..rendering import answer_html
from ..schemas import KbHit, KbSearchRequest, KbSearchResponse
from ..services import faqs as faq_service
from ..services import handover

KB_WAIT_S = 20.0
router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[Depends(require_internal_token)],
                   include_in_schema=False)  # for our action server only: not in /docs


@router.post("/kb/search", response_model=KbSearchResponse, summary="知识库检索与回答决策")
def kb_search(body: KbSearchRequest, kb: KbDep, db: SessionDep,
              x_merchant_id: str = Header(default="", include_in_schema=False)) -> KbSearchResponse:
    kb.wait_ready(timeout=KB_WAIT_S)  # just after a restart the index is still loading: wait rather than fail
    context = crud.get_faqs(db, [body.context_faq_id]).get(body.context_faq_id) if body.context_faq_id else None
    try:
        result, context_used = kb.search_in_context(body.text, context.question if context else None,
                                                    context.id if context else None, k=body.k)
    except KbUnavailableError:
        raise HTTPException(status_code=503, detail="知识库正在加载，请稍后再试") from None
    if body.log_unanswered and result.decision.value == "no_answer" and body.text.strip():
        merchant = crud.get_merchant_by_code(db, x_merchant_id.strip()) if x_merchant_id else None
        top = result.hits[0] if result.hits else None
        faq_service.log_unanswered(db, body.text, merchant.id if merchant else None, body.conversation_id,
                                   top.faq_id if top else None, top.score if top else None)
        db.commit()
    faqs = crud.get_faqs(db, [h.faq_id for h in result.hits])
    hits = [
        KbHit(faq_id=h.faq_id, key=f.key, question=f.question, answer=f.answer, category=f.category,
              action=f.action, score=h.score, answer_html=answer_html(f.answer))
        for h in result.hits
        if (f := faqs.get(h.faq_id)) is not None
    ]
    return KbSearchResponse(decision=result.decision.value, normalized=result.normalized, hits=hits,
                            context_used=context_used)


@router.get("/kb/faqs/{faq_id}", response_model=KbHit, summary="按编号取一条已发布的 FAQ")
def kb_faq(faq_id: int, db: SessionDep) -> KbHit:
    faq = crud.get_faqs(db, [faq_id]).get(faq_id)
    if faq is None or faq.status != FaqStatus.published:
        raise HTTPException(status_code=404, detail="FAQ 不存在或未发布")
    return KbHit(faq_id=faq.id, key=faq.key, question=faq.question, answer=faq.answer,
                 category=faq.category, action=faq.action, score=1.0, answer_html=answer_html(faq.answer))


class HandoffIn(BaseModel):
    kind: str = Field(default="merchant_asked", description="merchant_asked / not_understood / upset / none_matched")
    reason: str = Field(default="", max_length=200)


@router.post("/conversations/{conversation_id}/handoff", summary="转人工：会话进入客服队列（有空闲客服时直接分配）")
def handoff(conversation_id: int, body: HandoffIn, db: SessionDep, gateway: GatewayDep, settings: SettingsDep,
            x_merchant_id: str = Header(default="", include_in_schema=False)) -> dict:
    try:
        kind = HandoffReason(body.kind)
    except ValueError:
        raise HTTPException(status_code=422, detail="转人工原因不在可选范围内") from None
    merchant = crud.get_merchant_by_code(db, x_merchant_id.strip())
    conv = crud.get_conversation(db, merchant, conversation_id) if merchant else None
    if conv is None:
        raise HTTPException(status_code=404, detail="会话不存在")
    change = handover.escalate(db, conv, kind, f"已转人工：{body.reason or labels.HANDOFF_REASON[kind]}")
    changes = [change, *handover.assign_waiting(db, settings)] if change else []
    db.commit()
    gateway.push_handover(changes)
    agent = db.get(User, conv.assigned_agent_id) if conv.assigned_agent_id else None
    return {"conversation_id": conv.id, "mode": conv.mode.value, "agent_name": agent.display_name if agent else None}
