"""Service cases (工单): reading them as a merchant, advancing them as an agent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .. import numbers
from ..models import OPEN_CASE_STATUSES, CaseEvent, CaseStatus, Merchant, ServiceCase, utcnow
from .errors import Invalid, NotFound

NOT_FOUND = "查不到这个工单，请核对工单号"


def find_case(db: Session, raw_number: str, merchant: Merchant | None) -> ServiceCase:
    """The case with that number, if it is the merchant's (None: any merchant, for staff)."""
    number = numbers.parse(raw_number, numbers.CASE)
    if number is None:
        raise Invalid("工单号格式不对：应为 GD 开头加数字，例如 GD261125004217")
    query = select(ServiceCase).where(ServiceCase.number == number).options(selectinload(ServiceCase.events))
    if merchant is not None:
        query = query.where(ServiceCase.merchant_id == merchant.id)
    case = db.scalar(query)
    if case is None:
        raise NotFound(NOT_FOUND)
    return case


def list_cases(db: Session, merchant: Merchant, only_open: bool = False, limit: int = 50) -> list[ServiceCase]:
    query = select(ServiceCase).where(ServiceCase.merchant_id == merchant.id)
    if only_open:
        query = query.where(ServiceCase.status.in_(OPEN_CASE_STATUSES))
    return list(db.scalars(query.order_by(ServiceCase.updated_at.desc(), ServiceCase.id.desc()).limit(limit)))


def advance(db: Session, case: ServiceCase, status: CaseStatus, note: str,
            expected_done_at: datetime | None = None) -> CaseEvent:
    """Add a step to the case's timeline and move it to ``status``."""
    if case.status in (CaseStatus.resolved, CaseStatus.rejected, CaseStatus.closed) and status == case.status:
        raise Invalid("工单已结束，不能重复更新为同一状态")
    event = CaseEvent(case_id=case.id, at=utcnow(), status=status, note=note.strip(),
                      expected_done_at=expected_done_at or case.expected_done_at)
    case.status = status
    if expected_done_at is not None:
        case.expected_done_at = expected_done_at
    case.updated_at = event.at
    db.add(event)
    db.flush()
    return event
