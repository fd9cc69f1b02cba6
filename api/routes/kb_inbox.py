"""未解决问题: the knowledge team's inbox of questions the bot could not answer, grouped into needs, and the three
things to do with them (api/services/inbox.py)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from .. import presenters
from ..deps import EditorDep, KbDep, SessionDep
from ..services import inbox

router = APIRouter(prefix="/api/kb/inbox", tags=["knowledge base inbox"])

IDS = Field(min_length=1, max_length=5000, description="要处理的问题编号（一个簇的 question_ids，或其中几条）")


class ExampleOut(BaseModel):
    text: str
    count: int
    question_ids: list[int] = Field(description="这句问法的问题编号（单独处理这一句时用）")


class SuggestionOut(BaseModel):
    faq_id: int
    question: str
    category: str
    status: str
    score: float


class ClusterOut(BaseModel):
    key: int = Field(description="簇的编号：其中最早的问题编号")
    name: str = Field(description="最有代表性的问题（与簇内其他问题最接近的一条）")
    count: int = Field(description="问题条数（同一句问了几次算几条）")
    distinct: int = Field(description="不同问法数")
    sources: dict[str, int] = Field(description="来源：no_answer 答不了 / useless 没用 / none_matched 都不是")
    examples: list[ExampleOut]
    question_ids: list[int]
    conversations: list[int] = Field(description="会话编号（最近的在前，最多 20 个）；客服工作台 /console?conversation=编号")
    first_at: datetime
    last_at: datetime
    suggestions: list[SuggestionOut] = Field(description="检索器对这个问题的前几条 FAQ：第一条即推荐加入的 FAQ")


class InboxOut(BaseModel):
    clusters: list[ClusterOut]
    questions: int = Field(description="待处理的问题总数")
    total_clusters: int
    model: str
    threshold: float
    sources: dict[str, str] = Field(default=inbox.SOURCES, description="来源的中文说明")


class AttachIn(BaseModel):
    question_ids: list[int] = IDS
    faq_id: int = Field(ge=1, le=2**31 - 1)
    texts: list[str] | None = Field(default=None, max_length=500,
                                    description="加入的问法（默认：这些问题的原文，去重）")
    publish: bool = Field(default=False, description="同时发布这条 FAQ")


class AttachOut(BaseModel):
    faq_id: int
    faq_question: str
    status: str
    version: int
    added: list[str]
    resolved: int


class CreateIn(BaseModel):
    question_ids: list[int] = IDS
    question: str | None = Field(default=None, max_length=200, description="标准问题（默认：第一条）")
    category: str | None = Field(default=None, max_length=50)


class CreateOut(BaseModel):
    faq_id: int
    question: str
    similar: list[str]
    category: str
    status: str
    resolved: int


class IgnoreIn(BaseModel):
    question_ids: list[int] = IDS


class IgnoreOut(BaseModel):
    resolved: int


class MessageOut(BaseModel):
    id: int
    sender: str
    text: str
    created_at: datetime


def _ids(ids: list[int]) -> list[int]:
    if any(i < 1 or i > 2**31 - 1 for i in ids):
        raise HTTPException(status_code=422, detail="问题编号不正确")
    return ids


@router.get("", response_model=InboxOut, summary="未解决问题：按需求聚类，最大的在前")
def get_inbox(_: EditorDep, db: SessionDep, kb: KbDep,
              threshold: float = Query(default=inbox.THRESHOLD, ge=0.5, le=0.99,
                                       description="两个问题算同一需求的余弦相似度"),
              limit: int = Query(default=50, ge=1, le=500, description="最多返回的簇数")) -> InboxOut:
    retriever = kb.retriever
    if retriever is None:
        raise HTTPException(status_code=503, detail="知识库正在加载，请稍后再试")
    if inbox.ingest(db):
        db.commit()
    result = inbox.build(db, retriever, threshold=threshold, limit=limit)
    clusters = [ClusterOut(key=c.key, name=c.name, count=c.count, distinct=c.distinct, sources=c.sources,
                           examples=[ExampleOut(text=e.text, count=e.count, question_ids=e.question_ids)
                                     for e in c.examples],
                           question_ids=c.question_ids, conversations=c.conversations,
                           first_at=presenters.aware(c.first_at), last_at=presenters.aware(c.last_at),
                           suggestions=[SuggestionOut(**s) for s in c.suggestions])
                for c in result.clusters]
    return InboxOut(clusters=clusters, questions=result.questions, total_clusters=result.total_clusters,
                    model=result.model, threshold=result.threshold)


@router.post("/attach", response_model=AttachOut, summary="加为已有 FAQ 的相似问法")
def attach(body: AttachIn, editor: EditorDep, db: SessionDep, kb: KbDep) -> AttachOut:
    faq, added = inbox.attach(db, _ids(body.question_ids), body.faq_id, editor.actor, body.texts, body.publish)
    db.commit()
    kb.refresh_faq(faq.id)  # a published FAQ answers the new phrasings at once
    return AttachOut(faq_id=faq.id, faq_question=faq.question, status=faq.status.value, version=faq.version,
                     added=added, resolved=len(set(body.question_ids)))


@router.post("/create-faq", response_model=CreateOut, status_code=201, summary="新建 FAQ（草稿，问法已填好）")
def create_faq(body: CreateIn, editor: EditorDep, db: SessionDep, kb: KbDep) -> CreateOut:
    faq = inbox.create_faq(db, _ids(body.question_ids), editor.actor, body.question, body.category)
    db.commit()
    kb.refresh_faq(faq.id)
    return CreateOut(faq_id=faq.id, question=faq.question, similar=faq.similar, category=faq.category,
                     status=faq.status.value, resolved=len(set(body.question_ids)))


@router.post("/ignore", response_model=IgnoreOut, summary="忽略")
def ignore(body: IgnoreIn, editor: EditorDep, db: SessionDep) -> IgnoreOut:
    count = inbox.ignore(db, _ids(body.question_ids), editor.actor)
    db.commit()
    return IgnoreOut(resolved=count)


@router.get("/conversation", response_model=list[MessageOut], summary="问题所在会话的消息（只读）")
def conversation(_: EditorDep, db: SessionDep,
                 conversation_id: int = Query(ge=1, le=2**31 - 1, description="会话编号")) -> list[MessageOut]:
    return [MessageOut(id=m.id, sender=m.sender.value, text=m.text, created_at=presenters.aware(m.created_at))
            for m in inbox.conversation_messages(db, conversation_id)]
