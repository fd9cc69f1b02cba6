"""The FAQ workbench's API (/workbench): the list with its figures, 试一试, the conflict check, versions,
import and export. Editing, publishing and archiving are kb_admin's routes; every write reaches the bot at once
(``kb.refresh_faq`` after the commit; an import's FAQs through one background job, ``kb.index_import``, whose
progress ``GET /workbench/import/job`` reports)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from .. import crud, presenters
from ..deps import EditorDep, KbDep, SessionDep
from ..kb_service import KbUnavailableError
from ..models import FaqStatus
from ..rendering import answer_html
from ..services import faq_io
from ..services import faqs as faq_service
from .kb_admin import FaqOut, faq_out

router = APIRouter(prefix="/api/kb", tags=["knowledge base"])
Format = Literal["xlsx", "csv"]
DECISION_LABEL = {"answer": "直接回答", "clarify": "您是想问", "no_answer": "不回答"}


# --------------------------------------------------------------------------- the list


class FaqRowOut(BaseModel):
    id: int
    key: str
    question: str
    category: str
    tags: list[str]
    status: str
    version: int
    similar_count: int
    updated_by: str
    updated_at: datetime
    hits: int = Field(description="期间用这条 FAQ 回答的次数")
    useful: int = Field(description="其中被点「有用」的次数")
    useless: int = Field(description="其中被点「没用」的次数")
    offered: int = Field(description="在「您是想问」里列出的次数")
    not_picked: int = Field(description="列出了但商家没有选它的次数")


class FaqPageOut(BaseModel):
    total: int
    items: list[FaqRowOut]
    categories: list[str]
    tags: list[str]
    start: date
    end: date


def _range(start: date | None, end: date | None) -> tuple[date, date]:
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=29)
    if start > end:
        raise HTTPException(status_code=422, detail="开始日期不能晚于结束日期")
    if (end - start).days > 366:
        raise HTTPException(status_code=422, detail="日期范围最长一年")
    return start, end


@router.get("/workbench/faqs", response_model=FaqPageOut, summary="工作台 FAQ 列表（含命中与反馈统计）")
def faq_page(_: EditorDep, db: SessionDep, q: Annotated[str | None, Query(max_length=100)] = None,
             status: Annotated[str | None, Query(max_length=20)] = None,
             category: Annotated[str | None, Query(max_length=50)] = None,
             tag: Annotated[str | None, Query(max_length=30)] = None,
             start: date | None = None, end: date | None = None,
             sort: Literal["category", "hits", "useless", "not_picked", "updated"] = "category",
             offset: Annotated[int, Query(ge=0)] = 0,
             limit: Annotated[int, Query(ge=1, le=500)] = 100) -> FaqPageOut:
    """Hits, 有用/没用 and 您是想问 figures between ``start`` and ``end`` (dates, UTC, both included; default: the
    last 30 days), read from the bot's stored replies in two grouped queries."""
    try:
        wanted = FaqStatus(status) if status else None
    except ValueError:
        raise HTTPException(status_code=422, detail="状态只能是 draft、published 或 archived") from None
    start, end = _range(start, end)
    faqs = faq_service.search_faqs(db, q=q, status=wanted, category=category, tag=tag)
    stats = faq_service.faq_stats(db, datetime.combine(start, time.min), datetime.combine(end + timedelta(days=1),
                                                                                          time.min))
    empty = faq_service.FaqStats()
    if sort == "updated":
        faqs.sort(key=lambda f: f.updated_at, reverse=True)
    elif sort != "category":
        faqs.sort(key=lambda f: getattr(stats.get(f.id, empty), sort), reverse=True)
    counts = faq_service.similar_counts(db)
    categories, tags = faq_service.facets(db)
    items = []
    for f in faqs[offset:offset + limit]:
        s = stats.get(f.id, empty)
        items.append(FaqRowOut(id=f.id, key=f.key, question=f.question, category=f.category, tags=list(f.tags or []),
                               status=f.status.value, version=f.version, similar_count=counts.get(f.id, 0),
                               updated_by=f.updated_by, updated_at=presenters.aware(f.updated_at), hits=s.hits,
                               useful=s.useful, useless=s.useless, offered=s.offered, not_picked=s.not_picked))
    return FaqPageOut(total=len(faqs), items=items, categories=categories, tags=tags, start=start, end=end)


# --------------------------------------------------------------------------- preview, 试一试, conflicts


class MarkdownIn(BaseModel):
    markdown: str = Field(max_length=5000)


class HtmlOut(BaseModel):
    html: str


@router.post("/workbench/render", response_model=HtmlOut, summary="答案预览（与商家看到的相同）")
def render(body: MarkdownIn, _: EditorDep) -> HtmlOut:
    return HtmlOut(html=answer_html(body.markdown))


class DraftIn(BaseModel):
    question: str = Field(default="", max_length=200)
    similar: list[str] = Field(default_factory=list, max_length=100)


class TryIn(BaseModel):
    text: str = Field(min_length=1, max_length=500)
    faq_id: int | None = Field(default=None, description="草稿所属的 FAQ（新建的 FAQ 不填）")
    draft: DraftIn | None = Field(default=None, description="草稿的问法；不填：只看已发布的知识库")


class TryHitOut(BaseModel):
    faq_id: int | None = Field(description="None：尚未保存的新 FAQ（草稿）")
    question: str
    category: str
    score: float
    phrasing: str
    draft: bool = Field(description="这一条是正在编辑的草稿")


class TrySideOut(BaseModel):
    decision: str
    decision_label: str
    answer_faq_id: int | None
    hits: list[TryHitOut]


class TryOut(BaseModel):
    normalized: str
    thresholds: dict
    published: TrySideOut
    with_draft: TrySideOut | None


NEW_FAQ = -1  # the id a not-yet-saved FAQ is scored under


def _kb_ready(kb) -> None:
    if not kb.wait_ready(timeout=20):
        raise HTTPException(status_code=503, detail="知识库正在加载，请稍后再试")


def _side(db, result, draft_id: int | None, draft_question: str) -> TrySideOut:
    faqs = crud.get_faqs(db, [h.faq_id for h in result.hits if h.faq_id != NEW_FAQ])
    hits = []
    for h in result.hits:
        mine = draft_id is not None and h.faq_id == draft_id
        f = faqs.get(h.faq_id)
        hits.append(TryHitOut(faq_id=None if h.faq_id == NEW_FAQ else h.faq_id,
                              question=draft_question if mine and draft_question else (f.question if f else ""),
                              category=f.category if f else "", score=round(h.score, 4), phrasing=h.phrasing,
                              draft=mine))
    decision = result.decision.value
    top = hits[0].faq_id if hits and decision == "answer" else None
    return TrySideOut(decision=decision, decision_label=DECISION_LABEL[decision], answer_faq_id=top, hits=hits)


@router.post("/workbench/try", response_model=TryOut, summary="试一试：已发布的知识库 / 应用草稿后，并排比较")
def try_it(body: TryIn, _: EditorDep, db: SessionDep, kb: KbDep) -> TryOut:
    """The search against the live index, and as if the draft's phrasings replaced the FAQ's published ones;
    the live index is not changed."""
    _kb_ready(kb)
    draft_id = body.faq_id if body.faq_id is not None else NEW_FAQ
    phrasings = None
    if body.draft is not None:
        phrasings = [t for t in [body.draft.question, *body.draft.similar] if t.strip()]
    try:
        live, drafted = kb.try_draft(body.text, draft_id, phrasings)
    except KbUnavailableError:
        raise HTTPException(status_code=503, detail="知识库正在加载，请稍后再试") from None
    t = kb.retriever.thresholds
    question = body.draft.question.strip() if body.draft else ""
    return TryOut(normalized=live.normalized,
                  thresholds={"answer": t.answer, "margin": t.margin, "clarify": t.clarify},
                  published=_side(db, live, None, ""),
                  with_draft=_side(db, drafted, draft_id, question) if body.draft is not None else None)


class ConflictIn(BaseModel):
    faq_id: int | None = None
    question: str = Field(min_length=1, max_length=200)
    similar: list[str] = Field(default_factory=list, max_length=100)


class ConflictOut(BaseModel):
    text: str
    own_score: float = Field(description="与本条 FAQ 其余问法的得分")
    other_faq_id: int
    other_question: str
    other_score: float = Field(description="与另一条 FAQ 的得分")
    other_phrasing: str


@router.post("/workbench/conflicts", response_model=list[ConflictOut],
             summary="冲突检查：离另一条 FAQ 比离本条更近的相似问法")
def conflicts(body: ConflictIn, _: EditorDep, db: SessionDep, kb: KbDep) -> list[ConflictOut]:
    _kb_ready(kb)
    try:
        found = kb.conflicts(body.faq_id if body.faq_id is not None else NEW_FAQ, body.question, body.similar)
    except KbUnavailableError:
        raise HTTPException(status_code=503, detail="知识库正在加载，请稍后再试") from None
    others = crud.get_faqs(db, [c.other_faq_id for c in found])
    return [ConflictOut(text=c.text, own_score=round(c.own_score, 4), other_faq_id=c.other_faq_id,
                        other_question=others[c.other_faq_id].question if c.other_faq_id in others else "",
                        other_score=round(c.other_score, 4), other_phrasing=c.other_phrasing)
            for c in found]


class MoveIn(BaseModel):
    text: str = Field(min_length=1, max_length=200)
    from_faq_id: int | None = Field(default=None, description="问法原来所在的 FAQ（新建中的 FAQ 不填）")
    to_faq_id: int


class MovedOut(BaseModel):
    source: FaqOut | None
    target: FaqOut


@router.post("/workbench/move-similar", response_model=MovedOut, summary="把一个相似问法移到另一条 FAQ")
def move_similar(body: MoveIn, editor: EditorDep, db: SessionDep, kb: KbDep) -> MovedOut:
    source = faq_service.get_faq(db, body.from_faq_id) if body.from_faq_id is not None else None
    source, target = faq_service.move_similar(db, source, faq_service.get_faq(db, body.to_faq_id), body.text,
                                              editor.actor)
    db.commit()
    for faq in (source, target):
        if faq is not None:
            kb.refresh_faq(faq.id)
    return MovedOut(source=faq_out(source) if source is not None else None, target=faq_out(target))


# --------------------------------------------------------------------------- versions


class DiffOut(BaseModel):
    faq_id: int
    old: int
    new: int
    fields: list[dict]
    similar_added: list[str]
    similar_removed: list[str]
    similar_kept: int
    answer: list[dict] = Field(description="答案逐行比较：op 为 ' '（未变）、'-'（删除）、'+'（新增）")
    answer_changed: bool


@router.get("/faqs/{faq_id}/versions/{old}/diff/{new}", response_model=DiffOut, summary="比较两个版本")
def diff(faq_id: int, old: int, new: int, _: EditorDep, db: SessionDep) -> DiffOut:
    a = faq_service.get_version(db, faq_id, old).snapshot
    b = faq_service.get_version(db, faq_id, new).snapshot
    return DiffOut(faq_id=faq_id, old=old, new=new, **faq_service.diff_versions(a, b))


@router.post("/faqs/{faq_id}/versions/{version}/restore", response_model=FaqOut,
             summary="恢复到某个版本（生成一个新版本；状态不变）")
def restore(faq_id: int, version: int, editor: EditorDep, db: SessionDep, kb: KbDep) -> FaqOut:
    faq = faq_service.restore_version(db, faq_service.get_faq(db, faq_id), version, editor.actor)
    db.commit()
    kb.refresh_faq(faq.id)
    return faq_out(faq)


# --------------------------------------------------------------------------- import and export


def _download(data: bytes, fmt: str, name: str) -> Response:
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(data, media_type=faq_io.FORMATS[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.{fmt}"'})


@router.get("/workbench/export", summary="导出全部 FAQ（XLSX 或 CSV）",
            responses={200: {"content": {faq_io.FORMATS["xlsx"]: {}, "text/csv": {}}}})
def export(_: EditorDep, db: SessionDep, format: Format = "xlsx") -> Response:  # noqa: A002 - the query's name
    return _download(faq_io.export_faqs(db, format), format, "faqs")


@router.get("/workbench/template", summary="导入模板（XLSX 或 CSV）",
            responses={200: {"content": {faq_io.FORMATS["xlsx"]: {}, "text/csv": {}}}})
def import_template(_: EditorDep, format: Format = "xlsx") -> Response:  # noqa: A002
    return _download(faq_io.template(format), format, "faq-template")


class ImportRowOut(BaseModel):
    line: int = Field(description="文件中的行号（第 1 行是列名）")
    kind: str = Field(description="new 新增 | changed 修改 | bad 有问题")
    key: str
    question: str
    reason: str = ""
    changes: list[str] = Field(default_factory=list)
    faq_id: int | None = None


class ImportJobOut(BaseModel):
    state: str = Field(description="idle 自启动以来没有导入 | queued 排队 | running 更新中 | done 已完成 | failed 失败")
    message: str
    id: int = Field(description="导入的编号（本实例）：状态属于最近一次导入")
    faqs: int = Field(description="这次导入写入的 FAQ 数")
    done: int = Field(description="已计算的问法数")
    total: int = Field(description="需要计算的问法数")
    reused: int = Field(description="沿用原向量的问法数")
    started_at: datetime | None = None
    finished_at: datetime | None = None


def import_job_out(job) -> ImportJobOut:
    return ImportJobOut(**dataclasses.asdict(job))


class ImportOut(BaseModel):
    applied: bool
    total: int
    new: int
    changed: int
    unchanged: int
    bad: int
    ignored_columns: list[str]
    rows: list[ImportRowOut] = Field(description="新增、修改和有问题的行（未变的行只计数）")
    message: str = ""
    index_job: ImportJobOut | None = Field(
        default=None, description="写入后检索索引的更新（后台进行）；进度见 GET /api/kb/workbench/import/job")


def _report_out(report: faq_io.Report, applied: bool, job=None) -> ImportOut:
    message = ""
    if job is not None:
        message = "FAQ 已保存；检索索引正在后台更新，完成后已发布的 FAQ 即可被检索到"
    elif applied:
        message = "没有需要写入的内容"
    return ImportOut(applied=applied, message=message, index_job=import_job_out(job) if job is not None else None, total=len(report.rows), new=report.count("new"),
                     changed=report.count("changed"), unchanged=report.count("unchanged"), bad=report.count("bad"),
                     ignored_columns=report.ignored_columns,
                     rows=[ImportRowOut(line=r.line, kind=r.kind, key=r.key, question=r.question, reason=r.reason,
                                        changes=r.changes, faq_id=r.faq_id)
                           for r in report.rows if r.kind != "unchanged"])


@router.post("/workbench/import", response_model=ImportOut, summary="导入 FAQ：先检查（dry_run），再全部写入或全不写入")
def import_faqs(file: Annotated[UploadFile, File(description=".xlsx 或 .csv")], editor: EditorDep, db: SessionDep,
                kb: KbDep, dry_run: bool = True) -> ImportOut:
    data = file.file.read(faq_io.MAX_BYTES + 1)
    report = faq_io.read_import(db, data, file.filename or "")
    if dry_run:
        return _report_out(report, applied=False)
    if not report.ok:
        raise HTTPException(status_code=422,
                            detail=f"有 {report.count('bad')} 行有问题，没有导入任何内容；请改正后重新导入")
    written = faq_io.apply_import(db, report, editor.actor)
    db.commit()
    job = kb.index_import(written) if written else None  # embedded in the background, in large batches
    return _report_out(report, applied=True, job=job)


@router.get("/workbench/import/job", response_model=ImportJobOut, summary="导入后检索索引的更新进度（本实例）")
def import_job(_: EditorDep, kb: KbDep) -> ImportJobOut:
    return import_job_out(kb.import_job())
