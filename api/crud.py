"""Database reads and writes, kept apart from the routes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .models import Conversation, ConversationMode, Faq, FaqStatus, Merchant, Message, Sender


def get_merchant_by_code(db: Session, code: str) -> Merchant | None:
    return db.scalar(select(Merchant).where(Merchant.code == code))


def get_conversation(db: Session, merchant: Merchant, conversation_id: int) -> Conversation | None:
    """The merchant's own conversation, or None (another merchant's looks the same as a missing one)."""
    return db.scalar(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.merchant_id == merchant.id)
    )


def open_conversation(db: Session, merchant: Merchant) -> Conversation:
    """The merchant's latest conversation that is not closed, or a new one."""
    conv = db.scalar(
        select(Conversation)
        .where(Conversation.merchant_id == merchant.id, Conversation.mode != ConversationMode.closed)
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    if conv is None:
        conv = Conversation(merchant_id=merchant.id, mode=ConversationMode.bot)
        db.add(conv)
        db.flush()
    return conv


def add_message(db: Session, conv: Conversation, sender: Sender, text: str, payload: dict | None = None) -> Message:
    msg = Message(conversation_id=conv.id, sender=sender, text=text, payload=payload)
    db.add(msg)
    db.flush()
    return msg


def published_faqs(db: Session) -> list[Faq]:
    return list(
        db.scalars(
            select(Faq).where(Faq.status == FaqStatus.published).options(selectinload(Faq.similar_questions))
        )
    )


def get_faqs(db: Session, ids: list[int]) -> dict[int, Faq]:
    if not ids:
        return {}
    return {f.id: f for f in db.scalars(select(Faq).where(Faq.id.in_(ids)))}
