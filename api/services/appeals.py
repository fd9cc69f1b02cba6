"""Appeals (申诉): filing, evidence, withdrawal and review, with the rules that guard them."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from .. import numbers
from ..models import (
    OPEN_APPEAL_STATUSES,
    Appeal,
    AppealEvent,
    AppealReason,
    AppealStatus,
    AppealTarget,
    Evidence,
    Merchant,
    Penalty,
    utcnow,
)
from ..storage import FileStore
from .errors import Conflict, Invalid, NotFound

REVIEW_SLA = timedelta(days=3)
DESCRIPTION_MIN, DESCRIPTION_MAX = 10, 2000
PENALTY_NOT_FOUND = "查不到这条判罚，请核对判罚单号"
APPEAL_NOT_FOUND = "查不到这个申诉，请核对申诉单号"
_ARBITRATION_REF = re.compile(r"^[A-Z0-9]{6,40}$")

# Evidence types, recognised by their first bytes (the declared type must agree).
_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
}
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
               "application/pdf": "pdf"}


# --------------------------------------------------------------------------- reading


def find_penalty(db: Session, raw_number: str, merchant: Merchant | None) -> Penalty:
    number = numbers.parse(raw_number, numbers.PENALTY)
    if number is None:
        raise Invalid("判罚单号格式不对：应为 CF 开头加数字")
    query = select(Penalty).where(Penalty.number == number)
    if merchant is not None:
        query = query.where(Penalty.merchant_id == merchant.id)
    penalty = db.scalar(query)
    if penalty is None:
        raise NotFound(PENALTY_NOT_FOUND)
    return penalty


def find_appeal(db: Session, raw_number: str, merchant: Merchant | None, lock: bool = False) -> Appeal:
    number = numbers.parse(raw_number, numbers.APPEAL)
    if number is None:
        raise Invalid("申诉单号格式不对：应为 SS 开头加数字")
    query = select(Appeal).where(Appeal.number == number).options(
        selectinload(Appeal.events), selectinload(Appeal.evidence), selectinload(Appeal.penalty)
    )
    if merchant is not None:
        query = query.where(Appeal.merchant_id == merchant.id)
    if lock:
        query = query.with_for_update()
    appeal = db.scalar(query)
    if appeal is None:
        raise NotFound(APPEAL_NOT_FOUND)
    return appeal


def list_penalties(db: Session, merchant: Merchant, appealable_only: bool = False) -> list[Penalty]:
    query = select(Penalty).where(Penalty.merchant_id == merchant.id)
    penalties = list(db.scalars(query.order_by(Penalty.occurred_at.desc()).limit(100)))
    if appealable_only:
        open_ids = open_appeal_penalty_ids(db, merchant)
        penalties = [p for p in penalties if appeal_blocker(p, open_ids) is None]
    return penalties


def list_appeals(db: Session, merchant: Merchant, only_open: bool = False) -> list[Appeal]:
    query = select(Appeal).where(Appeal.merchant_id == merchant.id).options(selectinload(Appeal.penalty))
    if only_open:
        query = query.where(Appeal.status.in_(OPEN_APPEAL_STATUSES))
    return list(db.scalars(query.order_by(Appeal.created_at.desc(), Appeal.id.desc()).limit(100)))


def open_appeal_penalty_ids(db: Session, merchant: Merchant) -> dict[int, str]:
    rows = db.execute(
        select(Appeal.penalty_id, Appeal.number).where(
            Appeal.merchant_id == merchant.id, Appeal.status.in_(OPEN_APPEAL_STATUSES), Appeal.penalty_id.is_not(None)
        )
    )
    return {pid: number for pid, number in rows}


def _aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def appeal_blocker(penalty: Penalty, open_ids: dict[int, str], now: datetime | None = None) -> str | None:
    """Why this penalty cannot be appealed now, or None if it can."""
    now = now or utcnow()
    if not penalty.appealable:
        return "这条判罚不支持申诉"
    deadline = _aware(penalty.appeal_deadline)
    if deadline is not None and deadline < now:
        return f"这条判罚的申诉期限已于 {deadline:%Y-%m-%d %H:%M}（UTC）截止，无法再申诉"
    if penalty.id in open_ids:
        return f"这条判罚已有处理中的申诉（{open_ids[penalty.id]}），请勿重复提交，可直接查询进度"
    return None


# --------------------------------------------------------------------------- writing


def _event(appeal: Appeal, status: AppealStatus, note: str, actor: str) -> AppealEvent:
    event = AppealEvent(status=status, note=note, actor=actor, at=utcnow())
    appeal.events.append(event)
    return event


def file_appeal(
    db: Session, merchant: Merchant, *, reason: AppealReason, description: str,
    penalty_number: str | None = None, arbitration_ref: str | None = None,
) -> Appeal:
    """Create an appeal against one of the merchant's penalties or an arbitration result."""
    description = (description or "").strip()
    if len(description) < DESCRIPTION_MIN:
        raise Invalid(f"申诉说明太短了，请至少写 {DESCRIPTION_MIN} 个字，说清楚情况")
    if len(description) > DESCRIPTION_MAX:
        raise Invalid(f"申诉说明太长了，请控制在 {DESCRIPTION_MAX} 字以内")
    if bool(penalty_number) == bool(arbitration_ref):
        raise Invalid("请选择要申诉的判罚，或填写仲裁单号（二选一）")

    now = utcnow()
    appeal = Appeal(
        number=numbers.new_number(numbers.APPEAL), merchant_id=merchant.id, reason=reason,
        description=description, status=AppealStatus.pending, sla_due_at=now + REVIEW_SLA, created_at=now,
        updated_at=now,
    )
    if penalty_number:
        penalty = find_penalty(db, penalty_number, merchant)
        blocker = appeal_blocker(penalty, open_appeal_penalty_ids(db, merchant), now)
        if blocker:
            raise Conflict(blocker)
        appeal.target, appeal.penalty_id = AppealTarget.penalty, penalty.id
    else:
        ref = numbers.canonical(arbitration_ref or "")
        if not _ARBITRATION_REF.match(ref):
            raise Invalid("仲裁单号格式不对：应为 6–40 位字母或数字")
        appeal.target, appeal.arbitration_ref = AppealTarget.arbitration, ref
    _event(appeal, AppealStatus.pending, "商家提交申诉，等待平台审核", merchant.code)
    for _attempt in range(5):
        try:
            with db.begin_nested():  # a savepoint: a clash undoes only this insert
                db.add(appeal)
                db.flush()
            return appeal
        except IntegrityError:
            if appeal.penalty_id is not None and appeal.penalty_id in open_appeal_penalty_ids(db, merchant):
                raise Conflict("这条判罚已有处理中的申诉，请勿重复提交") from None
            appeal.number = numbers.new_number(numbers.APPEAL)  # the random number was taken: draw again
    raise Conflict("申诉提交繁忙，请稍后再试")


def detect_type(data: bytes) -> str | None:
    for content_type, signatures in _SIGNATURES.items():
        if any(data.startswith(sig) for sig in signatures):
            if content_type == "image/webp" and data[8:12] != b"WEBP":
                continue
            return content_type
    return None


def add_evidence(
    db: Session, store: FileStore, appeal: Appeal, *, filename: str, declared_type: str, data: bytes,
    max_bytes: int, max_files: int, actor: str,
) -> Evidence:
    """Check and store one evidence file; the file and its row are written together or not at all."""
    if appeal.status not in (AppealStatus.pending, AppealStatus.need_more, AppealStatus.reviewing):
        raise Conflict("申诉已结束，不能再上传材料")
    if not data:
        raise Invalid("文件是空的，请重新选择")
    if len(data) > max_bytes:
        raise ServiceTooLarge(f"文件太大了：单个文件不能超过 {max_bytes // (1024 * 1024)} MB")
    detected = detect_type(data)
    if detected is None:
        raise Unsupported("只支持图片（PNG、JPG、GIF、WEBP）或 PDF 文件")
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared and declared not in ("application/octet-stream", detected):
        raise Unsupported("文件内容与类型不符，请上传真实的图片或 PDF")
    if len(appeal.evidence) >= max_files:
        raise Conflict(f"每个申诉最多上传 {max_files} 个文件")

    clean_name = re.sub(r"[\\/\x00-\x1f<>:\"|?*]", "_", (filename or "").strip())[-100:] or "evidence"
    key = f"{appeal.number}/{secrets.token_hex(8)}.{_EXTENSIONS[detected]}"
    store.put(key, data)
    try:
        evidence = Evidence(filename=clean_name, content_type=detected, size=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), storage_key=key)
        appeal.evidence.append(evidence)
        if appeal.status == AppealStatus.need_more:
            appeal.status = AppealStatus.reviewing
            _event(appeal, AppealStatus.reviewing, "商家已补充材料，重新进入审核", actor)
        appeal.updated_at = utcnow()
        db.flush()
    except BaseException:
        store.delete(key)
        raise
    return evidence


def withdraw(db: Session, appeal: Appeal, actor: str) -> Appeal:
    if appeal.status not in OPEN_APPEAL_STATUSES:
        raise Conflict("申诉已结束，无法撤回")
    appeal.status = AppealStatus.withdrawn
    appeal.updated_at = utcnow()
    _event(appeal, AppealStatus.withdrawn, "商家撤回申诉", actor)
    db.flush()
    return appeal


REVIEW_STEPS = {AppealStatus.reviewing, AppealStatus.need_more, AppealStatus.approved, AppealStatus.rejected}


def review(db: Session, appeal: Appeal, status: AppealStatus, note: str, reviewer: str) -> Appeal:
    """A reviewer moves an open appeal on, with a note the merchant will read."""
    if status not in REVIEW_STEPS:
        raise Invalid("审核结果只能是：审核中、需补充材料、通过、驳回")
    if appeal.status not in OPEN_APPEAL_STATUSES:
        raise Conflict("申诉已结束，不能再审核")
    note = (note or "").strip()
    if status in (AppealStatus.need_more, AppealStatus.rejected) and not note:
        raise Invalid("要求补充材料或驳回时，请写明原因")
    appeal.status = status
    appeal.reviewer_note = note or appeal.reviewer_note
    appeal.updated_at = utcnow()
    _event(appeal, status, note or "平台审核中", reviewer)
    db.flush()
    return appeal


class ServiceTooLarge(Invalid):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.status_code = 413


class Unsupported(Invalid):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.status_code = 415
