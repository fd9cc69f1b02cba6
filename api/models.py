"""The system of record (SQLAlchemy 2 declarative models)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def _enum(cls: type[enum.Enum]) -> Enum:
    """Enums stored as plain strings (portable between SQLite and PostgreSQL)."""
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    pass


def ts(**kw) -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), **kw)


# --------------------------------------------------------------------------- people


class Role(enum.StrEnum):
    merchant = "merchant"
    agent = "agent"
    kb_editor = "kb_editor"
    admin = "admin"


class Availability(enum.StrEnum):
    """An agent's availability in the console: only ``online`` agents are given new conversations."""

    online = "online"     # 在线
    busy = "busy"         # 忙碌
    offline = "offline"   # 离线


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, index=True)  # e.g. M10001
    name: Mapped[str] = mapped_column(String(100))
    main_category: Mapped[str] = mapped_column(String(50), default="")
    created_at: Mapped[datetime] = ts(default=utcnow)


class User(Base):
    """Staff accounts (agents, knowledge editors, admins) log in with a password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = ts(default=utcnow)
    availability: Mapped[Availability] = mapped_column(_enum(Availability), default=Availability.offline)
    last_seen_at: Mapped[datetime | None] = ts(nullable=True)      # the console's last sign of life
    last_assigned_at: Mapped[datetime | None] = ts(nullable=True)  # for round-robin assignment


# --------------------------------------------------------------------------- service cases


class CaseKind(enum.StrEnum):
    withdrawal = "withdrawal"                   # 提现
    deposit_refund = "deposit_refund"           # 保证金退还
    invoice = "invoice"                         # 发票
    funds_freeze = "funds_freeze"               # 货款冻结/解冻
    logistics_exemption = "logistics_exemption"  # 物流判罚豁免
    other = "other"                             # 其他咨询


class CaseStatus(enum.StrEnum):
    submitted = "submitted"        # 已提交
    processing = "processing"      # 处理中
    need_info = "need_info"        # 待商家补充
    resolved = "resolved"          # 已完成
    rejected = "rejected"          # 未通过
    closed = "closed"              # 已关闭


OPEN_CASE_STATUSES = (CaseStatus.submitted, CaseStatus.processing, CaseStatus.need_info)


class ServiceCase(Base):
    __tablename__ = "service_cases"
    __table_args__ = (Index("ix_service_cases_merchant_status", "merchant_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True, index=True)  # GD + digits
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    kind: Mapped[CaseKind] = mapped_column(_enum(CaseKind))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[CaseStatus] = mapped_column(_enum(CaseStatus), default=CaseStatus.submitted)
    expected_done_at: Mapped[datetime | None] = ts(nullable=True)
    created_at: Mapped[datetime] = ts(default=utcnow)
    updated_at: Mapped[datetime] = ts(default=utcnow, onupdate=utcnow)

    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )


class CaseEvent(Base):
    """One step of a case's progress timeline."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("service_cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = ts(default=utcnow)
    status: Mapped[CaseStatus] = mapped_column(_enum(CaseStatus))
    note: Mapped[str] = mapped_column(Text, default="")
    expected_done_at: Mapped[datetime | None] = ts(nullable=True)

    case: Mapped[ServiceCase] = relationship(back_populates="events")


# --------------------------------------------------------------------------- penalties and appeals


class Penalty(Base):
    __tablename__ = "penalties"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True, index=True)  # CF + digits
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    rule: Mapped[str] = mapped_column(String(200))          # the rule violated
    detail: Mapped[str] = mapped_column(Text, default="")
    measure: Mapped[str] = mapped_column(String(100))       # 扣分 / 冻结货款 / 限流 …
    points: Mapped[int] = mapped_column(Integer, default=0)
    occurred_at: Mapped[datetime] = ts()
    appealable: Mapped[bool] = mapped_column(Boolean, default=True)
    appeal_deadline: Mapped[datetime | None] = ts(nullable=True)
    created_at: Mapped[datetime] = ts(default=utcnow)


class AppealTarget(enum.StrEnum):
    penalty = "penalty"
    arbitration = "arbitration"


class AppealStatus(enum.StrEnum):
    pending = "pending"          # 待审核
    reviewing = "reviewing"      # 审核中
    need_more = "need_more"      # 需补充材料
    approved = "approved"        # 通过
    rejected = "rejected"        # 驳回
    withdrawn = "withdrawn"      # 已撤回


OPEN_APPEAL_STATUSES = (AppealStatus.pending, AppealStatus.reviewing, AppealStatus.need_more)
_OPEN_APPEAL_SQL = "status IN ('pending', 'reviewing', 'need_more') AND penalty_id IS NOT NULL"


class AppealReason(enum.StrEnum):
    misjudged = "misjudged"            # 判罚有误
    evidence = "evidence"              # 有新证据
    third_party = "third_party"        # 第三方原因（物流、平台系统）
    buyer_malice = "buyer_malice"      # 买家恶意
    other = "other"                    # 其他


class Appeal(Base):
    __tablename__ = "appeals"
    __table_args__ = (
        # At most one open appeal per penalty, even under concurrent filing.
        Index(
            "uq_appeals_open_per_penalty", "penalty_id", unique=True,
            sqlite_where=text(_OPEN_APPEAL_SQL), postgresql_where=text(_OPEN_APPEAL_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True, index=True)  # SS + digits
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    target: Mapped[AppealTarget] = mapped_column(_enum(AppealTarget), default=AppealTarget.penalty)
    penalty_id: Mapped[int | None] = mapped_column(ForeignKey("penalties.id"), nullable=True)
    arbitration_ref: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reason: Mapped[AppealReason] = mapped_column(_enum(AppealReason))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[AppealStatus] = mapped_column(_enum(AppealStatus), default=AppealStatus.pending)
    reviewer_note: Mapped[str] = mapped_column(Text, default="")
    sla_due_at: Mapped[datetime] = ts()
    created_at: Mapped[datetime] = ts(default=utcnow)
    updated_at: Mapped[datetime] = ts(default=utcnow, onupdate=utcnow)

    penalty: Mapped[Penalty | None] = relationship()
    evidence: Mapped[list[Evidence]] = relationship(
        back_populates="appeal", order_by="Evidence.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[AppealEvent]] = relationship(
        back_populates="appeal", order_by="AppealEvent.id", cascade="all, delete-orphan"
    )


class AppealEvent(Base):
    __tablename__ = "appeal_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = ts(default=utcnow)
    status: Mapped[AppealStatus] = mapped_column(_enum(AppealStatus))
    note: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(64), default="")

    appeal: Mapped[Appeal] = relationship(back_populates="events")


class Evidence(Base):
    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    uploaded_at: Mapped[datetime] = ts(default=utcnow)

    appeal: Mapped[Appeal] = relationship(back_populates="evidence")


# --------------------------------------------------------------------------- conversations


class ConversationMode(enum.StrEnum):
    bot = "bot"
    waiting_agent = "waiting_agent"
    agent = "agent"
    closed = "closed"


class HandoffReason(enum.StrEnum):
    merchant_asked = "merchant_asked"    # 商家要求转人工
    not_understood = "not_understood"    # 连续两次没听懂
    upset = "upset"                      # 情绪激动
    none_matched = "none_matched"        # 都不是（您是想问里一个都不对）


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    mode: Mapped[ConversationMode] = mapped_column(_enum(ConversationMode), default=ConversationMode.bot,
                                                  index=True)
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1–5 at the end
    rating_comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = ts(default=utcnow)
    updated_at: Mapped[datetime] = ts(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = ts(nullable=True)
    # The rasa-webchat session id when the conversation came in through the Socket.IO channel.
    channel_session: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Escalation to a person: why, since when it waits, when an agent took it and first answered.
    handoff_reason: Mapped[HandoffReason | None] = mapped_column(_enum(HandoffReason), nullable=True)
    waiting_since: Mapped[datetime | None] = ts(nullable=True)
    taken_at: Mapped[datetime | None] = ts(nullable=True)
    first_agent_reply_at: Mapped[datetime | None] = ts(nullable=True)
    overdue_notified_at: Mapped[datetime | None] = ts(nullable=True)  # told it waits too long, offered 留言

    messages: Mapped[list[Message]] = relationship(back_populates="conversation", order_by="Message.id")


class Sender(enum.StrEnum):
    merchant = "merchant"
    bot = "bot"
    agent = "agent"
    system = "system"


class Feedback(enum.StrEnum):
    useful = "useful"      # 有用
    useless = "useless"    # 没用


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    sender: Mapped[Sender] = mapped_column(_enum(Sender))
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict | None] = mapped_column(JSON, default=None)  # buttons, faq id, …
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    feedback: Mapped[Feedback | None] = mapped_column(_enum(Feedback), nullable=True)
    # The widget's own id for a merchant message: a message re-sent after a dropped connection is stored once.
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = ts(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")

    __table_args__ = (Index("uq_messages_client_id", "conversation_id", "client_id", unique=True),)


class Notification(Base):
    """服务进度提醒: a case or appeal of the merchant's changed status."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(20))          # case | appeal
    number: Mapped[str] = mapped_column(String(32))        # GD… / SS…
    status: Mapped[str] = mapped_column(String(20))        # the new status (CaseStatus / AppealStatus value)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = ts(default=utcnow)
    read_at: Mapped[datetime | None] = ts(nullable=True)

    __table_args__ = (Index("ix_notifications_merchant_unread", "merchant_id", "read_at"),)


# --------------------------------------------------------------------------- knowledge base


class FaqStatus(enum.StrEnum):
    draft = "draft"
    published = "published"
    archived = "archived"


class Faq(Base):
    __tablename__ = "faqs"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # stable id from the seed file
    question: Mapped[str] = mapped_column(String(200))
    answer: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(50), index=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    action: Mapped[str | None] = mapped_column(String(40), nullable=True)  # linked self-service action
    status: Mapped[FaqStatus] = mapped_column(_enum(FaqStatus), default=FaqStatus.draft, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(64), default="seed")
    created_at: Mapped[datetime] = ts(default=utcnow)
    updated_at: Mapped[datetime] = ts(default=utcnow, onupdate=utcnow)

    similar_questions: Mapped[list[FaqQuestion]] = relationship(
        back_populates="faq", cascade="all, delete-orphan", order_by="FaqQuestion.id"
    )
    versions: Mapped[list[FaqVersion]] = relationship(
        back_populates="faq", cascade="all, delete-orphan", order_by="FaqVersion.version"
    )

    @property
    def similar(self) -> list[str]:
        return [q.text for q in self.similar_questions]

    @property
    def phrasings(self) -> list[str]:
        """The standard question first, then every similar question."""
        return [self.question, *self.similar]


class FaqQuestion(Base):
    __tablename__ = "faq_questions"
    __table_args__ = (UniqueConstraint("faq_id", "text"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    faq_id: Mapped[int] = mapped_column(ForeignKey("faqs.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(String(200))

    faq: Mapped[Faq] = relationship(back_populates="similar_questions")


class FaqVersion(Base):
    """A snapshot of an FAQ as it was after each change."""

    __tablename__ = "faq_versions"
    __table_args__ = (UniqueConstraint("faq_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    faq_id: Mapped[int] = mapped_column(ForeignKey("faqs.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict] = mapped_column(JSON)
    editor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = ts(default=utcnow)

    faq: Mapped[Faq] = relationship(back_populates="versions")


class Synonym(Base):
    """A colloquial term and the word the knowledge base uses (押金 → 保证金)."""

    __tablename__ = "synonyms"

    id: Mapped[int] = mapped_column(primary_key=True)
    term: Mapped[str] = mapped_column(String(50), unique=True)
    canonical: Mapped[str] = mapped_column(String(50))


class KbState(Base):
    """The knowledge base's revision: one row, bumped in the same transaction as every FAQ or synonym change.

    The bump locks the row until commit, so revisions commit in order and without gaps: an API instance that
    has applied every change up to N has missed nothing below N (api/kb_service.py, catching up)."""

    __tablename__ = "kb_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


class KbChange(Base):
    """What each revision changed: one FAQ (``faq_id``, kept after the FAQ is deleted) or the synonym table."""

    __tablename__ = "kb_changes"

    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(20))  # "faq" | "synonyms"
    faq_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    at: Mapped[datetime] = ts(default=utcnow)


class HotQuestion(Base):
    __tablename__ = "hot_questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    faq_id: Mapped[int] = mapped_column(ForeignKey("faqs.id", ondelete="CASCADE"), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    faq: Mapped[Faq] = relationship()


class UnansweredQuestion(Base):
    __tablename__ = "unanswered_questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), nullable=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), nullable=True)
    top_faq_id: Mapped[int | None] = mapped_column(ForeignKey("faqs.id", ondelete="SET NULL"), nullable=True)
    top_score: Mapped[float | None] = mapped_column(nullable=True)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = ts(default=utcnow, index=True)
    # The knowledge team's inbox (api/services/inbox.py): why it is here (no_answer: the bot could not answer;
    # useless: 没用 on an FAQ answer; none_matched: 都不是 under 您是想问), the message that put it here (one row
    # per message), and what the team did with it (attached | created | ignored), to which FAQ, who and when.
    source: Mapped[str] = mapped_column(String(20), default="no_answer", server_default="no_answer")
    message_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(20), nullable=True)
    resolved_faq_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[datetime | None] = ts(nullable=True)

    __table_args__ = (Index("ix_unanswered_questions_resolved", "resolved", "id"),
                      UniqueConstraint("message_id", name="uq_unanswered_questions_message_id"))


class ConversationNote(Base):
    """An agent's private note on a conversation: never sent to the merchant, never in their history."""

    __tablename__ = "conversation_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = ts(default=utcnow)


class CannedReply(Base):
    """常用语: an agent's own (``owner_id``) or shared by admins (``owner_id`` empty)."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    title: Mapped[str] = mapped_column(String(50))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = ts(default=utcnow)


class AuditEvent(Base):
    """Who did what to a conversation, case or appeal, and when: takes, transfers, closes, notes, reviews."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = ts(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(30))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), nullable=True, index=True)
    subject: Mapped[str] = mapped_column(String(40), default="")  # a case or appeal number
    detail: Mapped[str] = mapped_column(Text, default="")


# --------------------------------------------------------------------------- service analytics rollup


class AnalyticsConversation(Base):
    """One conversation as the service analytics see it (api/services/analytics.py): its own columns the figures
    read, copied, plus what its messages add up to. Derived data, rebuilt from ``conversations`` and ``messages``
    for every conversation listed in ``analytics_dirty`` (filled by database triggers, migration 0006)."""

    __tablename__ = "analytics_conversations"

    conversation_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    merchant_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = ts()
    handoff_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    agent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    waiting_since: Mapped[datetime | None] = ts(nullable=True)
    taken_at: Mapped[datetime | None] = ts(nullable=True)
    first_reply_at: Mapped[datetime | None] = ts(nullable=True)
    closed_at: Mapped[datetime | None] = ts(nullable=True)
    merchant_messages: Mapped[int] = mapped_column(Integer, default=0)
    agent_messages: Mapped[int] = mapped_column(Integer, default=0)
    useless: Mapped[int] = mapped_column(Integer, default=0)        # answers marked 没用
    unanswered_last: Mapped[bool] = mapped_column(Boolean, default=False)  # the last bot reply was 未能回答
    answers: Mapped[int] = mapped_column(Integer, default=0)        # knowledge-base decisions
    clarifies: Mapped[int] = mapped_column(Integer, default=0)
    no_answers: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_analytics_conversations_created_at", "created_at"),
                      Index("ix_analytics_conversations_merchant_created", "merchant_id", "created_at"))


class AnalyticsConversationFaq(Base):
    """The FAQs a conversation was answered with: times, and the 有用/没用 they got."""

    __tablename__ = "analytics_conversation_faqs"

    conversation_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    faq_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    merchant_id: Mapped[int] = mapped_column(Integer)    # the conversation's, so a range is read by index
    created_at: Mapped[datetime] = ts()
    answered: Mapped[int] = mapped_column(Integer, default=0)
    useful: Mapped[int] = mapped_column(Integer, default=0)
    useless: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_analytics_conversation_faqs_created_at", "created_at"),)


class AnalyticsConversationNumber(Base):
    """A case (GD…) or appeal (SS…) number the merchant named in a conversation."""

    __tablename__ = "analytics_conversation_numbers"

    conversation_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    number: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(Integer)    # the conversation's, so a range is read by index
    created_at: Mapped[datetime] = ts()

    __table_args__ = (Index("ix_analytics_conversation_numbers_created_at", "created_at"),)


class AnalyticsDirty(Base):
    """Conversations whose rollup rows are out of date: written by triggers on ``conversations`` and ``messages``
    (any insert, update or delete), consumed by ``analytics.refresh``."""

    __tablename__ = "analytics_dirty"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(Integer)


class AnalyticsState(Base):
    """One row: locked while a refresh runs, so two refreshes never rebuild the same rows at once."""

    __tablename__ = "analytics_state"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    refreshed_at: Mapped[datetime | None] = ts(nullable=True)
    refreshed_conversations: Mapped[int] = mapped_column(Integer, default=0)
