"""服务进度提醒: written when staff move a merchant's case or appeal on, read by the widget."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import labels
from ..models import Appeal, Notification, ServiceCase, utcnow

MAX_UNREAD = 50


def case_changed(db: Session, case: ServiceCase, note: str) -> Notification:
    status = labels.CASE_STATUS[case.status]
    return _add(db, case.merchant_id, "case", case.number, case.status.value,
                f"您的{labels.CASE_KIND[case.kind]}工单 {case.number} 状态更新为「{status}」", note)


def appeal_changed(db: Session, appeal: Appeal, note: str) -> Notification:
    status = labels.APPEAL_STATUS[appeal.status]
    return _add(db, appeal.merchant_id, "appeal", appeal.number, appeal.status.value,
                f"您的申诉 {appeal.number} 状态更新为「{status}」", note)


def _add(db: Session, merchant_id: int, kind: str, number: str, status: str, title: str, body: str) -> Notification:
    n = Notification(merchant_id=merchant_id, kind=kind, number=number, status=status, title=title,
                     body=(body or "").strip())
    db.add(n)
    db.flush()
    return n


def unread(db: Session, merchant_id: int) -> list[Notification]:
    return list(db.scalars(select(Notification)
                           .where(Notification.merchant_id == merchant_id, Notification.read_at.is_(None))
                           .order_by(Notification.id).limit(MAX_UNREAD)))


def mark_read(db: Session, merchant_id: int, ids: list[int]) -> int:
    """Mark the merchant's own notifications read; ids of other merchants are ignored."""
    if not ids:
        return 0
    result = db.execute(update(Notification)
                        .where(Notification.merchant_id == merchant_id, Notification.id.in_(ids),
                               Notification.read_at.is_(None))
                        .values(read_at=utcnow()))
    return result.rowcount or 0
