"""The FAQ store: edits with version history, synonyms, hot questions, the unanswered log."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased, selectinload

from knowledge_base.normalize import normalize

from ..models import (
    Faq,
    FaqQuestion,
    FaqStatus,
    FaqVersion,
    Feedback,
    HotQuestion,
    KbChange,
    KbState,
    Message,
    Sender,
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


def snapshot(faq: Faq, note: str = "") -> dict:
    """The FAQ as it is now; ``note`` says how the version came about (发布, 导入, 恢复自版本 3…)."""
    snap = {"question": faq.question, "answer": faq.answer, "category": faq.category, "tags": list(faq.tags or []),
            "action": faq.action, "status": faq.status.value, "similar": faq.similar}
    if note:
        snap["note"] = note
    return snap


def clean_phrasing(text: str) -> str:
    """A phrasing as stored: trimmed, runs of white space made one space."""
    return " ".join((text or "").split())


def _same_key(text: str) -> str:
    """Two phrasings with the same key are one: normalised, spaces left out (they mean nothing in Chinese)."""
    return normalize(text).replace(" ", "")


def _clean_similar(question: str, similar: list[str]) -> list[str]:
    """Similar questions trimmed, without blanks and without repeats: two that read the same once normalised
    (full-width, traditional, case, punctuation) are one phrasing, and so is one that repeats the question."""
    seen, out = {_same_key(question) or question}, []
    for text in similar:
        text = clean_phrasing(text)
        if len(text) > 200:
            raise Invalid("相似问法每条不能超过 200 字")
        key = _same_key(text)
        if key and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def save_faq(db: Session, faq: Faq | None, *, editor: str, question: str, answer: str, category: str,
             similar: list[str], tags: list[str], action: str | None, status: FaqStatus,
             expected_version: int | None = None, note: str = "", key: str | None = None) -> Faq:
    """Create or update an FAQ and record the new version."""
    faq = fill_faq(db, faq, editor=editor, question=question, answer=answer, category=category, similar=similar,
                   tags=tags, action=action, status=status, expected_version=expected_version, key=key)
    db.flush()
    db.add(FaqVersion(faq_id=faq.id, version=faq.version, snapshot=snapshot(faq, note), editor=editor, at=utcnow()))
    record_change(db, faq.id)
    return faq


def fill_faq(db: Session, faq: Faq | None, *, editor: str, question: str, answer: str, category: str,
             similar: list[str], tags: list[str], action: str | None, status: FaqStatus,
             expected_version: int | None = None, key: str | None = None) -> Faq:
    """``save_faq``'s checks and new values, without writing yet: the caller flushes, then adds the version and
    the change (``save_faq`` for one FAQ; the import for many at once, ``add_versions``)."""
    question, answer, category = clean_phrasing(question), answer.strip(), category.strip()
    if not question or not answer or not category:
        raise Invalid("标准问题、答案和分类都不能为空")
    if action is not None and action not in ACTIONS:
        raise Invalid("关联动作只能是：" + "、".join(sorted(ACTIONS)))
    if faq is None:
        faq = Faq(key=key or f"faq-{utcnow():%y%m%d%H%M%S%f}", version=0, created_at=utcnow())
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
    return faq


def add_versions(db: Session, faqs: list[Faq], editor: str, note: str = "") -> list[int]:
    """The version rows and the knowledge-base changes of many FAQs filled by ``fill_faq`` and flushed, in one
    flush: one revision bump for all (``record_changes``); returns their revisions, in the FAQs' order."""
    at = utcnow()
    db.add_all(FaqVersion(faq_id=f.id, version=f.version, snapshot=snapshot(f, note), editor=editor, at=at)
               for f in faqs)
    return record_changes(db, [f.id for f in faqs])


STATUS_NOTE = {FaqStatus.published: "发布", FaqStatus.archived: "下线", FaqStatus.draft: "改为草稿"}


def set_status(db: Session, faq: Faq, status: FaqStatus, editor: str) -> Faq:
    return save_faq(db, faq, editor=editor, question=faq.question, answer=faq.answer, category=faq.category,
                    similar=faq.similar, tags=list(faq.tags or []), action=faq.action, status=status,
                    note=STATUS_NOTE[status])


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


def record_changes(db: Session, faq_ids: list[int]) -> list[int]:
    """``record_change`` for many FAQs with one bump of the revision (by their number): each FAQ still gets a
    revision and a ``kb_changes`` row of its own, so other instances apply each. Returns the revisions."""
    if not faq_ids:
        return []
    n = len(faq_ids)
    last = db.scalar(update(KbState).where(KbState.id == 1).values(revision=KbState.revision + n)
                     .returning(KbState.revision))
    if last is None:  # a database made without migration 0004's row
        last = n
        db.add(KbState(id=1, revision=last))
    revisions = list(range(last - n + 1, last + 1))
    at = utcnow()
    db.add_all(KbChange(revision=r, kind="faq", faq_id=faq_id, at=at) for r, faq_id in zip(revisions, faq_ids))
    db.flush()
    return revisions


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


# --------------------------------------------------------------------------- the workbench: list, stats, versions


def search_faqs(db: Session, *, q: str | None = None, status: FaqStatus | None = None, category: str | None = None,
                tag: str | None = None) -> list[Faq]:
    """Every FAQ matching the filters (the question, answer, key or a similar question containing ``q``),
    in category order; the caller pages."""
    query = select(Faq)
    if status is not None:
        query = query.where(Faq.status == status)
    if category:
        query = query.where(Faq.category == category)
    if q and q.strip():
        text = q.strip()
        in_similar = select(FaqQuestion.id).where(FaqQuestion.faq_id == Faq.id, FaqQuestion.text.contains(text))
        query = query.where(or_(Faq.question.contains(text), Faq.answer.contains(text), Faq.key == text,
                                in_similar.exists()))
    faqs = list(db.scalars(query.order_by(Faq.category, Faq.id)))
    if tag:  # tags are a JSON list: filtered here, the same on every database
        faqs = [f for f in faqs if tag in (f.tags or [])]
    return faqs


def similar_counts(db: Session) -> dict[int, int]:
    return dict(db.execute(select(FaqQuestion.faq_id, func.count()).group_by(FaqQuestion.faq_id)).all())


def facets(db: Session) -> tuple[list[str], list[str]]:
    """Every category and every tag in use, for the filters."""
    categories = list(db.scalars(select(Faq.category).distinct().order_by(Faq.category)))
    tags = sorted({t for row in db.scalars(select(Faq.tags)) for t in (row or []) if isinstance(t, str)})
    return categories, tags


@dataclass
class FaqStats:
    hits: int = 0          # answered with this FAQ
    useful: int = 0        # of those, marked 有用
    useless: int = 0       # marked 没用
    offered: int = 0       # offered among 您是想问…
    not_picked: int = 0    # offered, and the merchant did not pick it


def faq_stats(db: Session, start: datetime, end: datetime) -> dict[int, FaqStats]:
    """How each FAQ did between ``start`` and ``end``, read from the bot's stored replies: one grouped query for
    answers and feedback, one for the 您是想问 offers with the bot reply that followed each."""
    stats: dict[int, FaqStats] = {}
    custom = Message.payload["custom"]
    faq_id = custom["faq_id"].as_integer()
    in_range = (Message.sender == Sender.bot, Message.created_at >= start, Message.created_at < end)
    rows = db.execute(
        select(faq_id, func.count(),
               func.sum(case((Message.feedback == Feedback.useful, 1), else_=0)),
               func.sum(case((Message.feedback == Feedback.useless, 1), else_=0)))
        .where(*in_range, custom["type"].as_string() == "faq_answer")
        .group_by(faq_id))
    for fid, hits, useful, useless in rows:
        if fid is not None:
            stats[fid] = FaqStats(hits=hits, useful=int(useful or 0), useless=int(useless or 0))
    after = aliased(Message)
    next_reply = (select(func.min(after.id))
                  .where(after.conversation_id == Message.conversation_id, after.id > Message.id,
                         after.sender == Sender.bot)
                  .correlate(Message).scalar_subquery())
    reply = aliased(Message)
    offers = db.execute(
        select(Message.payload, reply.payload)
        .outerjoin(reply, reply.id == next_reply)
        .where(*in_range, custom["type"].as_string() == "kb_clarify"))
    for offer, answer in offers:
        offered = _offered_ids(offer)
        answer_custom = (answer or {}).get("custom") or {}
        picked = answer_custom.get("faq_id") if answer_custom.get("type") == "faq_answer" else None
        for fid in offered:
            row = stats.setdefault(fid, FaqStats())
            row.offered += 1
            if fid != picked:
                row.not_picked += 1
    return stats


def _offered_ids(payload: dict | None) -> list[int]:
    """The FAQs a 您是想问 reply offered: from what the bot understood, else from its buttons."""
    custom = (payload or {}).get("custom") or {}
    ids = [f.get("id") for f in (custom.get("understood") or {}).get("faqs") or [] if isinstance(f, dict)]
    if not ids:
        for button in (payload or {}).get("buttons") or []:
            m = _FAQ_BUTTON.search(str(button.get("payload", "")))
            if m:
                ids.append(int(m.group(1)))
    return [i for i in dict.fromkeys(ids) if isinstance(i, int)]


_FAQ_BUTTON = re.compile(r'"faq_id"\s*:\s*"?(\d+)')


def get_version(db: Session, faq_id: int, version: int) -> FaqVersion:
    row = db.scalar(select(FaqVersion).where(FaqVersion.faq_id == faq_id, FaqVersion.version == version))
    if row is None:
        raise NotFound(f"版本 {version} 不存在")
    return row


DIFF_FIELDS = {"question": "标准问题", "category": "分类", "tags": "标签", "action": "关联动作", "status": "状态"}


def diff_versions(old: dict, new: dict) -> dict:
    """What changed from ``old`` to ``new`` (two snapshots): the fields, the similar questions added and removed,
    and the answer line by line (``difflib``: each line marked " ", "-" or "+")."""
    fields = [{"field": name, "label": label, "old": old.get(name), "new": new.get(name)}
              for name, label in DIFF_FIELDS.items() if old.get(name) != new.get(name)]
    before, after = old.get("similar") or [], new.get("similar") or []
    answer = [{"op": line[0], "text": line[2:]}
              for line in difflib.ndiff((old.get("answer") or "").splitlines(), (new.get("answer") or "").splitlines())
              if line[:1] in " -+"]
    return {"fields": fields, "similar_added": [t for t in after if t not in before],
            "similar_removed": [t for t in before if t not in after],
            "similar_kept": sum(1 for t in after if t in before),
            "answer": answer, "answer_changed": (old.get("answer") or "") != (new.get("answer") or "")}


def restore_version(db: Session, faq: Faq, version: int, editor: str) -> Faq:
    """Bring back a version's content as a new version; the status stays as it is (publishing is its own step)."""
    snap = get_version(db, faq.id, version).snapshot
    return save_faq(db, faq, editor=editor, question=snap["question"], answer=snap["answer"],
                    category=snap["category"], similar=snap.get("similar") or [], tags=snap.get("tags") or [],
                    action=snap.get("action"), status=faq.status, note=f"恢复自版本 {version}")


def move_similar(db: Session, source: Faq | None, target: Faq, text: str, editor: str) -> tuple[Faq | None, Faq]:
    """Move a similar question to ``target``: taken out of ``source`` if it is saved there (an editor may move
    one they have only typed), added to ``target``; each FAQ changed gets a new version, in one transaction."""
    text = clean_phrasing(text)
    if source is not None and source.id == target.id:
        raise Invalid("不能移动到同一条 FAQ")
    faqs = sorted([f for f in (source, target) if f is not None], key=lambda f: f.id)
    for faq in faqs:  # rows locked in id order: no deadlock with other writers
        db.refresh(faq, with_for_update=True)
    if source is not None and text in source.similar:
        source = save_faq(db, source, editor=editor, question=source.question, answer=source.answer,
                          category=source.category, similar=[t for t in source.similar if t != text],
                          tags=list(source.tags or []), action=source.action, status=source.status,
                          note=f"相似问法「{text[:30]}」移至 FAQ {target.id}")
    origin = f"FAQ {source.id}" if source is not None else "新建中的 FAQ"
    target = save_faq(db, target, editor=editor, question=target.question, answer=target.answer,
                      category=target.category, similar=[*target.similar, text], tags=list(target.tags or []),
                      action=target.action, status=target.status, note=f"相似问法「{text[:30]}」移自{origin}")
    return source, target
