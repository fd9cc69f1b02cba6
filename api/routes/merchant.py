"""What a merchant reads and does about their own shop: cases, penalties, appeals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Request, Response, UploadFile

from .. import presenters, schemas
from ..deps import MerchantDep, PrincipalDep, SessionDep, SettingsDep
from ..models import AppealReason, Role
from ..services import appeals as appeal_service
from ..services import cases as case_service

router = APIRouter(prefix="/api", tags=["merchant"])


@router.get("/me", response_model=schemas.MeResponse, summary="当前身份")
def me(principal: PrincipalDep) -> schemas.MeResponse:
    if principal.merchant is not None:
        return schemas.MeResponse(role="merchant", merchant_code=principal.merchant.code,
                                  merchant_name=principal.merchant.name)
    user = principal.user
    return schemas.MeResponse(role=principal.role.value, username=user.username, display_name=user.display_name)


@router.get("/cases", response_model=list[schemas.CaseSummary], summary="我的工单")
def my_cases(merchant: MerchantDep, db: SessionDep, open: bool = False) -> list[schemas.CaseSummary]:
    return [presenters.case_summary(c) for c in case_service.list_cases(db, merchant, only_open=open)]


@router.get("/cases/{number}", response_model=schemas.CaseDetail, summary="工单进度")
def my_case(number: str, merchant: MerchantDep, db: SessionDep) -> schemas.CaseDetail:
    return presenters.case_detail(case_service.find_case(db, number, merchant))


@router.get("/penalties", response_model=list[schemas.PenaltyOut], summary="我的违规判罚")
def my_penalties(merchant: MerchantDep, db: SessionDep, appealable: bool = False) -> list[schemas.PenaltyOut]:
    open_ids = appeal_service.open_appeal_penalty_ids(db, merchant)
    return [presenters.penalty(p, appeal_service.appeal_blocker(p, open_ids))
            for p in appeal_service.list_penalties(db, merchant, appealable_only=appealable)]


@router.get("/penalties/{number}", response_model=schemas.PenaltyOut, summary="一条判罚")
def my_penalty(number: str, merchant: MerchantDep, db: SessionDep) -> schemas.PenaltyOut:
    p = appeal_service.find_penalty(db, number, merchant)
    return presenters.penalty(p, appeal_service.appeal_blocker(p, appeal_service.open_appeal_penalty_ids(db, merchant)))


@router.get("/appeals", response_model=list[schemas.AppealSummary], summary="我的申诉")
def my_appeals(merchant: MerchantDep, db: SessionDep, open: bool = False) -> list[schemas.AppealSummary]:
    return [presenters.appeal_summary(a) for a in appeal_service.list_appeals(db, merchant, only_open=open)]


@router.get("/appeals/{number}", response_model=schemas.AppealDetail, summary="申诉进度")
def my_appeal(number: str, merchant: MerchantDep, db: SessionDep) -> schemas.AppealDetail:
    return presenters.appeal_detail(appeal_service.find_appeal(db, number, merchant))


@router.post("/appeals", response_model=schemas.AppealDetail, status_code=201, summary="提交申诉")
def file_appeal(body: schemas.AppealCreate, merchant: MerchantDep, db: SessionDep) -> schemas.AppealDetail:
    try:
        reason = AppealReason(body.reason)
    except ValueError:
        raise HTTPException(status_code=422, detail="申诉理由不在可选范围内") from None
    appeal = appeal_service.file_appeal(db, merchant, reason=reason, description=body.description,
                                        penalty_number=body.penalty_number, arbitration_ref=body.arbitration_ref)
    db.commit()
    return presenters.appeal_detail(appeal_service.find_appeal(db, appeal.number, merchant))


@router.post("/appeals/{number}/evidence", response_model=schemas.EvidenceOut, status_code=201,
             summary="上传申诉材料（图片或 PDF）")
def upload_evidence(number: str, request: Request, merchant: MerchantDep, db: SessionDep,
                    settings: SettingsDep, file: Annotated[UploadFile, File()]) -> schemas.EvidenceOut:
    if wait := request.app.state.limiter.hit(f"upload:{merchant.id}", settings.uploads_per_minute, 60):
        raise HTTPException(status_code=429, detail=f"上传太频繁了，请 {wait} 秒后再试",
                            headers={"Retry-After": str(wait)})
    data = file.file.read(settings.evidence_max_bytes + 1)  # a sync route: the threadpool reads and writes
    appeal = appeal_service.find_appeal(db, number, merchant, lock=True)
    evidence = appeal_service.add_evidence(
        db, request.app.state.files, appeal, filename=file.filename or "", declared_type=file.content_type or "",
        data=data, max_bytes=settings.evidence_max_bytes, max_files=settings.evidence_max_files, actor=merchant.code,
    )
    db.commit()
    return schemas.EvidenceOut(id=evidence.id, filename=evidence.filename, content_type=evidence.content_type,
                               size=evidence.size, uploaded_at=presenters.aware(evidence.uploaded_at))


@router.get("/appeals/{number}/evidence/{evidence_id}", summary="下载申诉材料")
def download_evidence(number: str, evidence_id: int, request: Request, principal: PrincipalDep,
                      db: SessionDep) -> Response:
    if principal.merchant is None and principal.role not in (Role.agent, Role.admin):
        raise HTTPException(status_code=403, detail="没有权限执行此操作")
    appeal = appeal_service.find_appeal(db, number, principal.merchant)  # staff: any merchant
    evidence = next((e for e in appeal.evidence if e.id == evidence_id), None)
    if evidence is None:
        raise HTTPException(status_code=404, detail="材料不存在")
    return Response(request.app.state.files.get(evidence.storage_key), media_type=evidence.content_type,
                    headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"})


@router.post("/appeals/{number}/withdraw", response_model=schemas.AppealDetail, summary="撤回申诉")
def withdraw_appeal(number: str, merchant: MerchantDep, db: SessionDep) -> schemas.AppealDetail:
    appeal = appeal_service.find_appeal(db, number, merchant, lock=True)
    appeal_service.withdraw(db, appeal, merchant.code)
    db.commit()
    return presenters.appeal_detail(appeal)
