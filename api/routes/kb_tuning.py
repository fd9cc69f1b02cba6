"""优化模型: start the tuning job in the background, follow it, read its report, go back to the previous model
(api/services/tuning_jobs.py; the job itself is kb_training.tune, the same as the command)."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from ..deps import EditorDep
from ..services.tuning_jobs import TuningJobs

router = APIRouter(prefix="/api/kb/tuning", tags=["knowledge base tuning"])
_made = threading.Lock()


async def get_jobs(request: Request) -> TuningJobs:
    """The process's job keeper (``app.state.tuning``; made on first use, tests put a fake-runner one there)."""
    state = request.app.state
    with _made:
        if getattr(state, "tuning", None) is None:
            state.tuning = TuningJobs(state.settings)
    return state.tuning


JobsDep = Annotated[TuningJobs, Depends(get_jobs)]


class ModelOut(BaseModel):
    model: str
    label: str
    promoted_at: str = ""
    run: str = ""


class MetricsOut(BaseModel):
    model: str
    utility: float | None
    top1: float | None = Field(description="留出的相似问法：第一条就对的比例")
    top3: float | None = Field(description="留出的相似问法：前三条里有对的比例")
    real_style_top1: float | None
    real_style_top3: float | None
    right_answer: float | None = Field(description="直接答对的比例")
    wrong_answer: float | None = Field(description="答错的比例")
    oos_answer: float | None = Field(description="范围外问题被回答的比例")


class ReportOut(BaseModel):
    run: str | None
    finished_at: str | None
    promoted: bool | None
    reason: str
    faqs: int | None
    held_back: int | None
    real_style: int | None
    out_of_scope: int | None
    train_seconds: float | None
    before: MetricsOut | None
    after: MetricsOut | None


class TuningOut(BaseModel):
    state: str = Field(description="idle / queued / preparing / training / evaluating / indexing / promoted / kept / "
                                   "failed / rolled_back")
    stage: str = Field(description="状态的中文说明")
    running: bool
    progress: float = Field(description="0–1，进度条用")
    step: int | None
    total: int | None
    eta_seconds: int | None
    run: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str | None
    reason: str
    detail: str
    serving: ModelOut
    previous: ModelOut | None
    fixed: bool = Field(description="模型由 SJZS_EMBEDDING_MODEL 固定时不能优化或回滚")
    can_rollback: bool
    report: ReportOut | None


@router.get("", response_model=TuningOut, summary="优化模型：进度、正在使用的模型和最近一次的报告")
def status(_: EditorDep, jobs: JobsDep) -> TuningOut:
    return TuningOut(**jobs.status())


@router.post("/start", response_model=TuningOut, status_code=202,
             summary="开始优化模型（后台运行；已有任务在运行时 409）")
def start(editor: EditorDep, jobs: JobsDep) -> TuningOut:
    return TuningOut(**jobs.start(editor.actor))


@router.post("/rollback", response_model=TuningOut, summary="一键回滚到上一个模型（无需重启）")
def rollback(editor: EditorDep, jobs: JobsDep) -> TuningOut:
    return TuningOut(**jobs.rollback(editor.actor))


