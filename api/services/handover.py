"""Conversations between the bot and the agents: escalation, assignment, take, transfer, close, notes, audit.

Plain functions on a session (the routes run them in the threadpool). Each change that two agents could race
for is one conditional UPDATE, so exactly one of them wins. Callers commit, then push what changed to the hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from core.settings import Settings

from .. import crud, numbers
from ..models import (
    AuditEvent,
    Availability,
    CaseEvent,
    CaseKind,
    CaseStatus,
    Conversation,
    ConversationMode,
    ConversationNote,
    HandoffReason,
    Message,
    Role,
    Sender,
    ServiceCase,
    User,
    utcnow,
)
from ..presenters import aware


class HandoverError(Exception):
    """A step that cannot be done: ``status`` for the client, ``detail`` in Chinese."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class Change:
    """What a step changed, for the caller to push once it has committed."""

    conversation: Conversation
    messages: list[Message]


def audit(db: Session, actor: str, action: str, conversation_id: int | None = None, subject: str = "",
          detail: str = "") -> None:
    db.add(AuditEvent(actor=actor, action=action, conversation_id=conversation_id, subject=subject, detail=detail))


def system_message(db: Session, conv: Conversation, text: str) -> Message:
    return crud.add_message(db, conv, Sender.system, text)


def agent_label(agent: User) -> str:
    """How merchants see an agent's name: 客服小林, never 客服 客服小林."""
    return agent.display_name if agent.display_name.startswith("客服") else f"客服 {agent.display_name}"


def joined_text(agent: User) -> str:
    return f"{agent_label(agent)} 已接入，正在为您服务"


# --------------------------------------------------------------------------- agents


def is_agent(user: User) -> bool:
    return user.is_active and user.role in (Role.agent, Role.admin)


def online_cutoff(settings: Settings):
    return utcnow() - timedelta(minutes=settings.agent_idle_offline_minutes)


def effective_availability(user: User, settings: Settings) -> Availability:
    """Online or busy only while the console keeps showing signs of life; offline otherwise."""
    seen = aware(user.last_seen_at)
    if user.availability == Availability.offline or seen is None or seen < online_cutoff(settings):
        return Availability.offline
    return user.availability


def active_counts(db: Session) -> dict[int, int]:
    rows = db.execute(select(Conversation.assigned_agent_id, func.count())
                      .where(Conversation.mode == ConversationMode.agent, Conversation.assigned_agent_id.is_not(None))
                      .group_by(Conversation.assigned_agent_id))
    return {agent_id: n for agent_id, n in rows}


def set_availability(db: Session, user: User, availability: Availability) -> None:
    user.availability = availability
    user.last_seen_at = utcnow()


def next_agent(db: Session, settings: Settings) -> User | None:
    """Round robin among online agents under the cap: the one assigned longest ago (never first)."""
    counts = active_counts(db)
    agents = db.scalars(select(User).where(User.is_active.is_(True), User.role.in_([Role.agent, Role.admin]),
                                           User.availability == Availability.online,
                                           User.last_seen_at >= online_cutoff(settings))
                        .order_by(User.last_assigned_at.is_not(None), User.last_assigned_at, User.id))
    for agent in agents:
        if counts.get(agent.id, 0) < settings.agent_max_conversations:
            return agent
    return None


def assign_waiting(db: Session, settings: Settings) -> list[Change]:
    """Give queued conversations, oldest first, to online agents under their cap; the rest keep waiting."""
    changes = []
    waiting = db.scalars(select(Conversation).where(Conversation.mode == ConversationMode.waiting_agent)
                         .order_by(Conversation.waiting_since, Conversation.id).limit(50)).all()
    for conv in waiting:
        agent = next_agent(db, settings)
        if agent is None:
            break
        won = db.execute(update(Conversation).where(Conversation.id == conv.id,
                                                    Conversation.mode == ConversationMode.waiting_agent)
                         .values(mode=ConversationMode.agent, assigned_agent_id=agent.id, taken_at=utcnow()))
        if won.rowcount != 1:
            continue
        db.refresh(conv)
        agent.last_assigned_at = utcnow()
        audit(db, "system", "assign", conv.id, detail=f"分配给 {agent.username}")
        changes.append(Change(conv, [system_message(db, conv, joined_text(agent))]))
        db.flush()
    return changes


# --------------------------------------------------------------------------- the conversation's life


def escalate(db: Session, conv: Conversation, reason: HandoffReason, text: str) -> Change | None:
    """The bot hands the conversation to a person: it joins the queue (or stays where it is if it already left
    the bot)."""
    if conv.mode not in (ConversationMode.bot, ConversationMode.closed):
        return None
    conv.mode, conv.handoff_reason, conv.waiting_since = ConversationMode.waiting_agent, reason, utcnow()
    conv.assigned_agent_id, conv.taken_at, conv.first_agent_reply_at = None, None, None
    audit(db, "bot", "escalate", conv.id, detail=reason.value)
    return Change(conv, [system_message(db, conv, text)])


def get(db: Session, conversation_id: int) -> Conversation:
    conv = db.get(Conversation, conversation_id)
    if conv is None:
        raise HandoverError(404, "会话不存在")
    return conv


def take(db: Session, conversation_id: int, agent: User) -> Change:
    """One agent takes the conversation; of two clicking at once exactly one wins, the other learns who did."""
    conv = get(db, conversation_id)
    if conv.mode == ConversationMode.agent and conv.assigned_agent_id == agent.id:
        return Change(conv, [])
    won = db.execute(update(Conversation).where(Conversation.id == conversation_id,
                                                Conversation.mode.in_([ConversationMode.waiting_agent,
                                                                       ConversationMode.bot]))
                     .values(mode=ConversationMode.agent, assigned_agent_id=agent.id, taken_at=utcnow()))
    db.refresh(conv)
    if won.rowcount != 1:
        if conv.mode == ConversationMode.closed:
            raise HandoverError(409, "会话已结束")
        other = db.get(User, conv.assigned_agent_id) if conv.assigned_agent_id else None
        raise HandoverError(409, f"该会话已由客服 {other.display_name if other else '其他人'} 接入")
    agent.last_assigned_at = utcnow()
    audit(db, agent.username, "take", conv.id)
    return Change(conv, [system_message(db, conv, joined_text(agent))])


def owned(db: Session, conversation_id: int, agent: User) -> Conversation:
    conv = get(db, conversation_id)
    if conv.mode != ConversationMode.agent or conv.assigned_agent_id != agent.id:
        raise HandoverError(409, "请先接入该会话")
    return conv


def reply(db: Session, conversation_id: int, agent: User, text: str) -> Change:
    conv = owned(db, conversation_id, agent)
    text = text.strip()
    if not text:
        raise HandoverError(422, "回复内容不能为空")
    msg = Message(conversation_id=conv.id, sender=Sender.agent, text=text, agent_id=agent.id,
                  payload={"agent_name": agent.display_name})
    db.add(msg)
    if conv.first_agent_reply_at is None:
        conv.first_agent_reply_at = utcnow()
    conv.updated_at = utcnow()
    db.flush()
    return Change(conv, [msg])


def transfer(db: Session, conversation_id: int, agent: User, to_id: int, note: str) -> Change:
    conv = owned(db, conversation_id, agent)
    target = db.get(User, to_id)
    if target is None or not is_agent(target):
        raise HandoverError(404, "要转给的客服不存在或已停用")
    if target.id == agent.id:
        raise HandoverError(422, "不能转给自己")
    conv.assigned_agent_id = target.id
    target.last_assigned_at = utcnow()
    if note.strip():
        db.add(ConversationNote(conversation_id=conv.id, author_id=agent.id, text=f"【转交给 {target.display_name}】{note.strip()}"))
    audit(db, agent.username, "transfer", conv.id, detail=f"转给 {target.username}：{note.strip()}")
    return Change(conv, [system_message(db, conv, f"已为您转接{agent_label(target)}，请稍候")])


def close(db: Session, conversation_id: int, agent: User) -> Change:
    conv = owned(db, conversation_id, agent)
    conv.mode, conv.closed_at = ConversationMode.closed, utcnow()
    audit(db, agent.username, "close", conv.id)
    return Change(conv, [system_message(db, conv, "客服已结束本次会话，感谢您的耐心。请为这次服务打个分吧。")])


def release(db: Session, conversation_id: int, agent: User) -> Change:
    """Back to the bot (the caller resumes Rasa first)."""
    conv = get(db, conversation_id)
    if conv.mode not in (ConversationMode.agent, ConversationMode.waiting_agent):
        raise HandoverError(409, "会话不在人工服务中")
    if conv.mode == ConversationMode.agent and conv.assigned_agent_id not in (None, agent.id) \
            and agent.role != Role.admin:
        raise HandoverError(409, "该会话由其他客服负责")
    conv.mode, conv.assigned_agent_id = ConversationMode.bot, None
    audit(db, agent.username, "release", conv.id)
    return Change(conv, [system_message(db, conv, "客服已结束人工服务，智能助手继续为您服务")])


def add_note(db: Session, conversation_id: int, agent: User, text: str) -> ConversationNote:
    get(db, conversation_id)
    text = text.strip()
    if not text:
        raise HandoverError(422, "备注内容不能为空")
    note = ConversationNote(conversation_id=conversation_id, author_id=agent.id, text=text)
    db.add(note)
    audit(db, agent.username, "note", conversation_id)
    db.flush()
    return note


def notes(db: Session, conversation_id: int) -> list[tuple[ConversationNote, str]]:
    rows = db.execute(select(ConversationNote, User.display_name).join(User, User.id == ConversationNote.author_id)
                      .where(ConversationNote.conversation_id == conversation_id).order_by(ConversationNote.id))
    return [(n, name) for n, name in rows]


OVERDUE_TEXT = ("当前排队的商家较多，客服暂时无法接入。您可以继续等待，也可以点「留言」留下您的问题，"
                "我们会为您创建工单并尽快处理。")


def notify_overdue(db: Session, settings: Settings) -> list[Change]:
    """Conversations queued longer than ``queue_overdue_seconds``: tell the merchant once and offer 留言."""
    cutoff = utcnow() - timedelta(seconds=settings.queue_overdue_seconds)
    rows = db.scalars(select(Conversation).where(Conversation.mode == ConversationMode.waiting_agent,
                                                 Conversation.waiting_since < cutoff,
                                                 Conversation.overdue_notified_at.is_(None)).limit(100)).all()
    changes = []
    for conv in rows:
        won = db.execute(update(Conversation).where(Conversation.id == conv.id,
                                                    Conversation.mode == ConversationMode.waiting_agent,
                                                    Conversation.overdue_notified_at.is_(None))
                         .values(overdue_notified_at=utcnow()))
        if won.rowcount != 1:  # another API instance told them, or an agent took it meanwhile
            continue
        db.refresh(conv)
        msg = crud.add_message(db, conv, Sender.system, OVERDUE_TEXT, {"custom": {"type": "queue_overdue"}})
        changes.append(Change(conv, [msg]))
    return changes


def leave_message(db: Session, conv: Conversation, text: str, actor: str) -> tuple[Change, ServiceCase]:
    """The merchant stops waiting and leaves the question: it becomes a service case they can track."""
    text = text.strip()
    if not text:
        raise HandoverError(422, "留言内容不能为空")
    if conv.mode != ConversationMode.waiting_agent:
        raise HandoverError(409, "会话已不在排队中，客服可以直接在这里回复您")
    number = numbers.new_number(numbers.CASE)
    while db.scalar(select(ServiceCase.id).where(ServiceCase.number == number)) is not None:
        number = numbers.new_number(numbers.CASE)
    case = ServiceCase(number=number, merchant_id=conv.merchant_id, kind=CaseKind.other,
                       title=f"留言：{text[:40]}", status=CaseStatus.submitted)
    db.add(case)
    db.flush()
    db.add(CaseEvent(case_id=case.id, at=utcnow(), status=CaseStatus.submitted, note=text))
    conv.mode, conv.closed_at = ConversationMode.closed, utcnow()
    audit(db, actor, "leave_message", conv.id, case.number)
    msg = system_message(db, conv, f"已收到您的留言，工单号 {case.number}。客服会尽快处理，"
                                   "您可以随时说「查一下工单进度」查看。")
    return Change(conv, [msg]), case


def merchant_filter(q: str):
    """Conversations of merchants whose code or name contains ``q``."""
    from ..models import Merchant

    like = f"%{q.strip()}%"
    return Conversation.merchant_id.in_(select(Merchant.id).where(or_(Merchant.code.ilike(like),
                                                                       Merchant.name.ilike(like))))
