"""What the chat widget needs besides the conversation itself: suggestions while typing, 服务进度提醒."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query

from .. import crud, presenters, schemas
from ..deps import KbDep, MerchantDep, SessionDep
from ..kb_service import KbUnavailableError
from ..services import notifications

router = APIRouter(prefix="/api", tags=["widget"])
MIN_SUGGEST_CHARS = 2


@router.get("/suggest", response_model=list[schemas.Suggestion], summary="输入联想：知识库里最接近的问题")
def suggest(_: MerchantDep, kb: KbDep, db: SessionDep,
            q: str = Query(default="", max_length=200), k: int = Query(default=5, ge=1, le=8)) -> list[schemas.Suggestion]:
    text = q.strip()
    if len(text) < MIN_SUGGEST_CHARS:
        return []
    try:
        result = kb.search(text, k=k)
    except KbUnavailableError:
        return []  # suggestions are a convenience: no error while the index loads
    if result.decision.value == "no_answer":
        return []
    faqs = crud.get_faqs(db, [h.faq_id for h in result.hits])
    return [schemas.Suggestion(faq_id=h.faq_id, question=f.question)
            for h in result.hits if (f := faqs.get(h.faq_id)) is not None]


@router.get("/notifications", response_model=list[schemas.NotificationOut], summary="未读的服务进度提醒")
def unread_notifications(merchant: MerchantDep, db: SessionDep) -> list[schemas.NotificationOut]:
    return [presenters.notification(n) for n in notifications.unread(db, merchant.id)]


@router.post("/notifications/read", summary="把服务进度提醒标为已读")
def mark_read(body: schemas.MarkReadIn, merchant: MerchantDep, db: SessionDep) -> dict:
    if any(i <= 0 for i in body.ids):
        raise HTTPException(status_code=422, detail="提醒编号无效")
    count = notifications.mark_read(db, merchant.id, body.ids)
    db.commit()
    return {"marked": count}
