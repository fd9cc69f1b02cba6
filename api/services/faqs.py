"""The FAQ store: edits with version history, synonyms, hot questions, the unanswered log."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, selectinload

from ..models import (
    Faq,
    FaqQuestion,
    FaqStatus,
    FaqVersion,
    HotQuestion,
    KbChange,
    KbState,
    Synonym,
    UnansweredQuestion,
    utcnow,
)
from .errors import Conflict, Invalid, NotFound

ACTIONS = {"check_progress", "file_appeal", "list_my_cases", "request_human"}


def get_faq(db: Session, faq_id: int) -> Faq:
    faq = db.scalar(select(Faq).where(Faq.id == faq_id).options(selectinload(Faq.similar_questions)))
    if faq is None:
        raise NotFound("FAQ 不存在")
    return faq


def snapshot(faq: Faq) -> dict:
    return {"question": faq.question, "answer": faq.answer, "category": faq.category, "tags": list(faq.tags or []),
            "action": faq.action, "status": faq.status.value, "similar": faq.similar}


def _clean_similar(question: str, similar: list[str]) -> list[str]:
    seen, out = {question}, []
    for text in similar:
        text = text.strip()
        if text and text not in seen:
            if len(text) > 200:
                raise Invalid("相似问法每条不能超过 200 字")
            seen.add(text)
            out.append(text)
    return out


def save_faq(db: Session, faq: Faq | None, *, editor: str, question: str, answer: str, category: str,
             similar: list[str], tags: list[str], action: str | None, status: FaqStatus,
             expected_version: int | None = None) -> Faq:
    """Create or update an FAQ and record the new version."""
    question, answer, category = question.strip(), answer.strip(), category.strip()
    if not question or not answer or not category:
        raise Invalid("标准问题、答案和分类都不能为空")
    if action is not None and action not in ACTIONS:
        raise Invalid("关联动作只能是：" + "、".join(sorted(ACTIONS)))
    if faq is None:
        faq = Faq(key=f"faq-{utcnow():%y%m%d%H%M%S%f}", version=0, created_at=utcnow())
        db.add(faq)
    elif expected_version is not None and faq.version != expected_version:
        raise Conflict(f"这条 FAQ 已被他人修改（当前版本 {faq.version}），请刷新后再编辑")
    faq.question, faq.answer, faq.category = question, answer, category
    faq.tags = [t.strip() for t in tags if t.strip()][:10]
    faq.action, faq.status, faq.updated_by = action, status, editor
    wanted = _clean_similar(question, similar)
    kept = {q.text: q for q in faq.similar_questions if q.text in wanted}
    faq.similar_questions = [kept.get(t) or FaqQuestion(text=t) for t in wanted]
    faq.version += 1
    faq.updated_at = utcnow()
    db.flush()
    db.add(FaqVersion(faq_id=faq.id, version=faq.version, snapshot=snapshot(faq), editor=editor, at=utcnow()))
    record_change(db, faq.id)
    return faq


def set_status(db: Session, faq: Faq, status: FaqStatus, editor: str) -> Faq:
    return save_faq(db, faq, editor=editor, question=faq.question, answer=faq.answer, category=faq.category,
                    similar=faq.similar, tags=list(faq.tags or []), action=faq.action, status=status)


def list_faqs(db: Session, status: FaqStatus | None = None, category: str | None = None,
              q: str | None = None, limit: int = 500) -> list[Faq]:
    query = select(Faq).options(selectinload(Faq.similar_questions))
    if status is not None:
        query = query.where(Faq.status == status)
    if category:
        query = query.where(Faq.category == category)
    if q:
        query = query.where(Faq.question.contains(q.strip()))
    return list(db.scalars(query.order_by(Faq.category, Faq.id).limit(limit)))


def synonyms(db: Session) -> dict[str, str]:
    return {s.term: s.canonical for s in db.scalars(select(Synonym))}


def replace_synonyms(db: Session, table: dict[str, str]) -> int:
    """Make ``table`` the synonym table; returns the knowledge base's new revision."""
    db.execute(delete(Synonym))
    db.add_all(Synonym(term=t, canonical=c) for t, c in table.items())
    db.flush()
    return record_change(db, None)


# --------------------------------------------------------------------------- the knowledge base's revision


def record_change(db: Session, faq_id: int | None) -> int:
    """Bump the revision and log what changed (one FAQ, or the synonyms when ``faq_id`` is None), in the
    caller's transaction; returns the new revision.

    Every change to what the index holds calls it (``save_faq``, ``replace_synonyms``; deleting an FAQ must
    too), or other API instances never hear of it. The bump locks the single ``kb_state`` row until the
    transaction ends, so revisions commit in order and without gaps (a rolled-back change takes its revision
    with it). Change one FAQ per transaction: the row is locked after the FAQ's, always in that order.
    """
    revision = db.scalar(update(KbState).where(KbState.id == 1).values(revision=KbState.revision + 1)
                         .returning(KbState.revision))
    if revision is None:  # a database made without migration 0004's row
        revision = 1
        db.add(KbState(id=1, revision=revision))
    db.add(KbChange(revision=revision, kind="synonyms" if faq_id is None else "faq", faq_id=faq_id, at=utcnow()))
    db.flush()
    return revision


def kb_revision(db: Session) -> int:
    """The revision of the last committed FAQ or synonym change (0: none since the database was made)."""
    return db.scalar(select(KbState.revision).where(KbState.id == 1)) or 0


def kb_changes_since(db: Session, revision: int) -> list[KbChange]:
    return list(db.scalars(select(KbChange).where(KbChange.revision > revision).order_by(KbChange.revision)))


def last_change(db: Session, faq_id: int | None) -> int:
    """The revision of the last change to this FAQ (or, with None, to the synonyms); 0 if none."""
    where = KbChange.faq_id.is_(None) if faq_id is None else KbChange.faq_id == faq_id
    return db.scalar(select(func.max(KbChange.revision)).where(where)) or 0


def hot_questions(db: Session, limit: int = 8) -> list[Faq]:
    rows = db.scalars(select(HotQuestion).join(Faq).where(Faq.status == FaqStatus.published)
                      .order_by(HotQuestion.position, HotQuestion.id).limit(limit)
                      .options(selectinload(HotQuestion.faq)))
    return [h.faq for h in rows]


def log_unanswered(db: Session, text: str, merchant_id: int | None, conversation_id: int | None,
                   top_faq_id: int | None, top_score: float | None) -> UnansweredQuestion:
    row = UnansweredQuestion(text=text[:2000], merchant_id=merchant_id, conversation_id=conversation_id,
                             top_faq_id=top_faq_id, top_score=top_score)
    db.add(row)
    db.flush()
    return row


def unanswered(db: Session, include_resolved: bool = False, limit: int = 200) -> list[UnansweredQuestion]:
    query = select(UnansweredQuestion)
    if not include_resolved:
        query = query.where(UnansweredQuestion.resolved.is_(False))
    return list(db.scalars(query.order_by(UnansweredQuestion.id.desc()).limit(limit)))


def count_published(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Faq).where(Faq.status == FaqStatus.published)) or 0
