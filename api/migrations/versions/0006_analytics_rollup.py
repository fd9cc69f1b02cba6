"""service analytics rollup: one row of facts per conversation, kept current by triggers

The dashboard (api/services/analytics.py) aggregates ``analytics_conversations`` (a conversation's own columns plus
what its messages add up to), ``analytics_conversation_faqs`` and ``analytics_conversation_numbers`` in SQL instead
of reading every message of a range. Triggers on ``conversations`` and ``messages`` list each changed conversation
in ``analytics_dirty`` (a new message, 有用/没用, a rating, a hand-over…); ``analytics.refresh`` rebuilds those rows
before the figures are read. Every existing conversation starts dirty, so the first refresh builds the rollup.

Revision ID: 0006_analytics_rollup
Revises: 0005_analytics
Create Date: 2026-12-21 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_analytics_rollup"
down_revision: str | None = "0005_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column naming the conversation)
WATCHED = (("conversations", "id"), ("messages", "conversation_id"))
EVENTS = ("insert", "update", "delete")


def _pg_triggers() -> None:
    for table, column in WATCHED:
        op.execute(f"""
            CREATE FUNCTION analytics_mark_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO analytics_dirty (conversation_id) SELECT DISTINCT {column} FROM changed;
                RETURN NULL;
            END $$""")
        for event in EVENTS:
            rows = "OLD" if event == "delete" else "NEW"
            op.execute(f"CREATE TRIGGER analytics_{table}_{event} AFTER {event.upper()} ON {table} "
                       f"REFERENCING {rows} TABLE AS changed FOR EACH STATEMENT "
                       f"EXECUTE FUNCTION analytics_mark_{table}()")


def _sqlite_triggers() -> None:
    for table, column in WATCHED:
        for event in EVENTS:
            row = "OLD" if event == "delete" else "NEW"
            op.execute(f"CREATE TRIGGER analytics_{table}_{event} AFTER {event.upper()} ON {table} BEGIN "
                       f"INSERT INTO analytics_dirty (conversation_id) VALUES ({row}.{column}); END")


def upgrade() -> None:
    op.create_table(
        "analytics_conversations",
        sa.Column("conversation_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handoff_reason", sa.String(length=20), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_reply_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("merchant_messages", sa.Integer(), nullable=False),
        sa.Column("agent_messages", sa.Integer(), nullable=False),
        sa.Column("useless", sa.Integer(), nullable=False),
        sa.Column("unanswered_last", sa.Boolean(), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("clarifies", sa.Integer(), nullable=False),
        sa.Column("no_answers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id"),
    )
    op.create_index("ix_analytics_conversations_created_at", "analytics_conversations", ["created_at"])
    op.create_index("ix_analytics_conversations_merchant_created", "analytics_conversations",
                    ["merchant_id", "created_at"])
    op.create_table(
        "analytics_conversation_faqs",
        sa.Column("conversation_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("faq_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("useful", sa.Integer(), nullable=False),
        sa.Column("useless", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "faq_id"),
    )
    op.create_index("ix_analytics_conversation_faqs_created_at", "analytics_conversation_faqs", ["created_at"])
    op.create_table(
        "analytics_conversation_numbers",
        sa.Column("conversation_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "number"),
    )
    op.create_index("ix_analytics_conversation_numbers_created_at", "analytics_conversation_numbers", ["created_at"])
    op.create_table(
        "analytics_dirty",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "analytics_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_conversations", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO analytics_state (id, refreshed_conversations) VALUES (1, 0)")
    op.execute("INSERT INTO analytics_dirty (conversation_id) SELECT id FROM conversations")
    if op.get_bind().dialect.name == "postgresql":
        _pg_triggers()
    else:
        _sqlite_triggers()


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, _ in WATCHED:
        for event in EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS analytics_{table}_{event}" + (f" ON {table}" if postgres else ""))
        if postgres:
            op.execute(f"DROP FUNCTION IF EXISTS analytics_mark_{table}()")
    op.drop_table("analytics_state")
    op.drop_table("analytics_dirty")
    op.drop_index("ix_analytics_conversation_numbers_created_at", table_name="analytics_conversation_numbers")
    op.drop_table("analytics_conversation_numbers")
    op.drop_index("ix_analytics_conversation_faqs_created_at", table_name="analytics_conversation_faqs")
    op.drop_table("analytics_conversation_faqs")
    op.drop_index("ix_analytics_conversations_merchant_created", table_name="analytics_conversations")
    op.drop_index("ix_analytics_conversations_created_at", table_name="analytics_conversations")
    op.drop_table("analytics_conversations")
