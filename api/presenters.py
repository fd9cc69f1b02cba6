"""Models → response bodies, with the Chinese labels merchants read."""

from __future__ import annotations

from datetime import UTC, datetime

from . import labels, schemas
from .models import Appeal, Conversation, Message, Notification, Penalty, ServiceCase


def aware(dt: datetime | None) -> datetime | None:
    """Every stored time is UTC; SQLite returns them without a zone."""
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def case_summary(case: ServiceCase) -> schemas.CaseSummary:
    return schemas.CaseSummary(
        number=case.number, kind=case.kind.value, kind_label=labels.CASE_KIND[case.kind], title=case.title,
        status=case.status.value, status_label=labels.CASE_STATUS[case.status],
        expected_done_at=aware(case.expected_done_at), created_at=aware(case.created_at),
        updated_at=aware(case.updated_at),
    )


def case_detail(case: ServiceCase, merchant_code: str | None = None) -> schemas.CaseDetail:
    timeline = [
        schemas.TimelineStep(at=aware(e.at), status=e.status.value, status_label=labels.CASE_STATUS[e.status],
                             note=e.note, expected_done_at=aware(e.expected_done_at))
        for e in case.events
    ]
    return schemas.CaseDetail(**case_summary(case).model_dump(), merchant_code=merchant_code, timeline=timeline)


def penalty(p: Penalty, blocker: str | None) -> schemas.PenaltyOut:
    return schemas.PenaltyOut(
        number=p.number, rule=p.rule, detail=p.detail, measure=p.measure, points=p.points,
        occurred_at=aware(p.occurred_at), appealable=p.appealable, appeal_deadline=aware(p.appeal_deadline),
        can_appeal_now=blocker is None, cannot_appeal_reason=blocker,
    )


def appeal_summary(a: Appeal) -> schemas.AppealSummary:
    return schemas.AppealSummary(
        number=a.number, target=a.target.value, penalty_number=a.penalty.number if a.penalty else None,
        penalty_rule=a.penalty.rule if a.penalty else None, arbitration_ref=a.arbitration_ref,
        reason=a.reason.value, reason_label=labels.APPEAL_REASON[a.reason], status=a.status.value,
        status_label=labels.APPEAL_STATUS[a.status], sla_due_at=aware(a.sla_due_at),
        created_at=aware(a.created_at), updated_at=aware(a.updated_at),
    )


def appeal_detail(a: Appeal, merchant_code: str | None = None) -> schemas.AppealDetail:
    return schemas.AppealDetail(
        **appeal_summary(a).model_dump(), merchant_code=merchant_code, description=a.description,
        reviewer_note=a.reviewer_note,
        evidence=[schemas.EvidenceOut(id=e.id, filename=e.filename, content_type=e.content_type, size=e.size,
                                      uploaded_at=aware(e.uploaded_at)) for e in a.evidence],
        timeline=[schemas.TimelineStep(at=aware(e.at), status=e.status.value,
                                       status_label=labels.APPEAL_STATUS[e.status], note=e.note, actor=e.actor)
                  for e in a.events],
    )


def message(m: Message) -> schemas.MessageOut:
    return schemas.MessageOut(id=m.id, sender=m.sender.value, text=m.text, payload=m.payload,
                              feedback=m.feedback.value if m.feedback else None, created_at=aware(m.created_at),
                              client_id=m.client_id)


def conversation(c: Conversation) -> schemas.ConversationOut:
    return schemas.ConversationOut(id=c.id, mode=c.mode.value, mode_label=labels.CONVERSATION_MODE[c.mode],
                                   rating=c.rating, created_at=aware(c.created_at), updated_at=aware(c.updated_at),
                                   closed_at=aware(c.closed_at))


def notification(n: Notification) -> schemas.NotificationOut:
    return schemas.NotificationOut(id=n.id, kind=n.kind, number=n.number, status=n.status, title=n.title, body=n.body,
                                   created_at=aware(n.created_at), read=n.read_at is not None)
