"""The knowledge team's editor API; every change reaches the bot's answers at once."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import delete

from .. import presenters
from ..deps import EditorDep, KbDep, PrincipalDep, SessionDep
from ..kb_service import SynonymJob
from ..models import Faq, FaqStatus, HotQuestion, UnansweredQuestion
from ..services import faqs as faq_service

router = APIRouter(prefix="/api/kb", tags=["knowledge base"])


class FaqIn(BaseModel):
    question: str = Field(min_length=1, max_length=200)
    answer: str = Field(min_length=1, max_length=5000)
    category: str = Field(min_length=1, max_length=50)
    similar: list[str] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=10)
    action: str | None = None
    status: str = "draft"
    version: int | None = Field(default=None, description="编辑时带上读到的版本号，防止覆盖他人的修改")


class FaqOut(BaseModel):
    id: int
    key: str
    question: str
    answer: str
    category: str
    similar: list[str]
    tags: list[str]
    action: str | None
    status: str
    version: int
    updated_by: str
    updated_at: datetime


class VersionOut(BaseModel):
    version: int
    editor: str
    at: datetime
    snapshot: dict


class HotQuestionOut(BaseModel):
    faq_id: int
    question: str
    category: str


class SynonymIn(BaseModel):
    term: str = Field(min_length=1, max_length=50)
    canonical: str = Field(min_length=1, max_length=50)


class UnansweredOut(BaseModel):
    id: int
    text: str
    top_faq_id: int | None
    top_score: float | None
    resolved: bool
    created_at: datetime


def faq_out(f: Faq) -> FaqOut:
    return FaqOut(id=f.id, key=f.key, question=f.question, answer=f.answer, category=f.category, similar=f.similar,
                  tags=list(f.tags or []), action=f.action, status=f.status.value, version=f.version,
                  updated_by=f.updated_by, updated_at=presenters.aware(f.updated_at))


def _status(value: str) -> FaqStatus:
    try:
        return FaqStatus(value)
    except ValueError:
        raise HTTPException(status_code=422, detail="状态只能是 draft、published 或 archived") from None


@router.get("/faqs", response_model=list[FaqOut], summary="FAQ 列表")
def list_faqs(_: EditorDep, db: SessionDep, status: str | None = None, category: str | None = None,
              q: str | None = None) -> list[FaqOut]:
    return [faq_out(f) for f in faq_service.list_faqs(db, _status(status) if status else None, category, q)]


@router.get("/faqs/{faq_id}", response_model=FaqOut, summary="一条 FAQ")
def get_faq(faq_id: int, _: EditorDep, db: SessionDep) -> FaqOut:
    return faq_out(faq_service.get_faq(db, faq_id))


@router.post("/faqs", response_model=FaqOut, status_code=201, summary="新建 FAQ")
def create_faq(body: FaqIn, editor: EditorDep, db: SessionDep, kb: KbDep) -> FaqOut:
    faq = faq_service.save_faq(db, None, editor=editor.actor, question=body.question, answer=body.answer,
                               category=body.category, similar=body.similar, tags=body.tags, action=body.action,
                               status=_status(body.status))
    db.commit()
    kb.refresh_faq(faq.id)
    return faq_out(faq)


@router.put("/faqs/{faq_id}", response_model=FaqOut, summary="修改 FAQ")
def update_faq(faq_id: int, body: FaqIn, editor: EditorDep, db: SessionDep, kb: KbDep) -> FaqOut:
    faq = faq_service.save_faq(db, faq_service.get_faq(db, faq_id), editor=editor.actor, question=body.question,
                               answer=body.answer, category=body.category, similar=body.similar, tags=body.tags,
                               action=body.action, status=_status(body.status), expected_version=body.version)
    db.commit()
    kb.refresh_faq(faq.id)
    return faq_out(faq)


@router.post("/faqs/{faq_id}/publish", response_model=FaqOut, summary="发布")
def publish(faq_id: int, editor: EditorDep, db: SessionDep, kb: KbDep) -> FaqOut:
    faq = faq_service.set_status(db, faq_service.get_faq(db, faq_id), FaqStatus.published, editor.actor)
    db.commit()
    kb.refresh_faq(faq.id)
    return faq_out(faq)


@router.post("/faqs/{faq_id}/archive", response_model=FaqOut, summary="下线（归档）")
def archive(faq_id: int, editor: EditorDep, db: SessionDep, kb: KbDep) -> FaqOut:
    faq = faq_service.set_status(db, faq_service.get_faq(db, faq_id), FaqStatus.archived, editor.actor)
    db.commit()
    kb.refresh_faq(faq.id)
    return faq_out(faq)


@router.get("/faqs/{faq_id}/versions", response_model=list[VersionOut], summary="版本历史")
def versions(faq_id: int, _: EditorDep, db: SessionDep) -> list[VersionOut]:
    faq = faq_service.get_faq(db, faq_id)
    return [VersionOut(version=v.version, editor=v.editor, at=presenters.aware(v.at), snapshot=v.snapshot)
            for v in faq.versions]


@router.get("/synonyms", response_model=list[SynonymIn], summary="同义词表")
def get_synonyms(_: EditorDep, db: SessionDep) -> list[SynonymIn]:
    return [SynonymIn(term=t, canonical=c) for t, c in sorted(faq_service.synonyms(db).items())]


class SynonymJobOut(BaseModel):
    """Applying a synonym table: only the phrasings it reads differently are embedded again, in the background;
    searches use the previous table until the new index is ready."""

    state: str = Field(description="idle 未修改 | queued 已保存、排队中 | running 计算中 | done 已生效 | "
                                   "failed 失败（仍使用原来的同义词表）")
    message: str
    revision: int = Field(description="知识库修订号：这张同义词表保存时的修订")
    terms: int = Field(description="同义词条数")
    done: int = Field(description="已重新计算的问法数")
    total: int = Field(description="需要重新计算的问法数")
    reused: int = Field(description="沿用原向量的问法数")
    superseded: int = Field(description="尚未生效就被这张表取代的同义词表数")
    started_at: datetime | None
    finished_at: datetime | None


class SynonymsSavedOut(BaseModel):
    synonyms: list[SynonymIn]
    job: SynonymJobOut


def job_out(job: SynonymJob) -> SynonymJobOut:
    return SynonymJobOut(**dataclasses.asdict(job))


@router.put("/synonyms", response_model=SynonymsSavedOut, status_code=202, summary="替换同义词表（后台生效）")
def put_synonyms(body: list[SynonymIn], _: EditorDep, db: SessionDep, kb: KbDep) -> SynonymsSavedOut:
    table = {s.term.strip(): s.canonical.strip() for s in body if s.term.strip() and s.canonical.strip()}
    revision = faq_service.replace_synonyms(db, table)
    db.commit()
    job = kb.set_synonyms(table, revision)
    return SynonymsSavedOut(synonyms=[SynonymIn(term=t, canonical=c) for t, c in sorted(table.items())],
                            job=job_out(job))


@router.get("/synonyms/job", response_model=SynonymJobOut, summary="同义词表生效进度（本实例）")
def get_synonym_job(_: EditorDep, kb: KbDep) -> SynonymJobOut:
    return job_out(kb.synonym_job())


@router.get("/hot-questions", response_model=list[HotQuestionOut], summary="热点问题（商家和员工都可读）")
def get_hot(_: PrincipalDep, db: SessionDep) -> list[HotQuestionOut]:
    return [HotQuestionOut(faq_id=f.id, question=f.question, category=f.category)
            for f in faq_service.hot_questions(db)]


@router.put("/hot-questions", response_model=list[HotQuestionOut], summary="设置热点问题（按顺序）")
def put_hot(faq_ids: list[int], _: EditorDep, db: SessionDep) -> list[HotQuestionOut]:
    ids = list(dict.fromkeys(faq_ids))[:20]
    for faq_id in ids:
        if faq_service.get_faq(db, faq_id).status != FaqStatus.published:
            raise HTTPException(status_code=422, detail=f"FAQ {faq_id} 未发布，不能设为热点问题")
    db.execute(delete(HotQuestion))
    db.add_all(HotQuestion(faq_id=faq_id, position=i) for i, faq_id in enumerate(ids))
    db.commit()
    return [HotQuestionOut(faq_id=f.id, question=f.question, category=f.category)
            for f in faq_service.hot_questions(db, limit=20)]


@router.get("/unanswered", response_model=list[UnansweredOut], summary="未能回答的问题")
def get_unanswered(_: EditorDep, db: SessionDep, include_resolved: bool = False) -> list[UnansweredOut]:
    return [UnansweredOut(id=u.id, text=u.text, top_faq_id=u.top_faq_id, top_score=u.top_score,
                          resolved=u.resolved, created_at=presenters.aware(u.created_at))
            for u in faq_service.unanswered(db, include_resolved)]


@router.post("/unanswered/{row_id}/resolve", response_model=UnansweredOut, summary="标记为已处理")
def resolve_unanswered(row_id: int, _: EditorDep, db: SessionDep) -> UnansweredOut:
    row = db.get(UnansweredQuestion, row_id)
    if row is None:
        raise HTTPException(status_code=404, detail="记录不存在")
    row.resolved = True
    db.commit()
    return UnansweredOut(id=row.id, text=row.text, top_faq_id=row.top_faq_id, top_score=row.top_score,
                         resolved=row.resolved, created_at=presenters.aware(row.created_at))
