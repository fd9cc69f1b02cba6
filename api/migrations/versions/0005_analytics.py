"""service analytics: indexes for reading a date range of conversations and appeals

The dashboard (api/services/analytics.py) reads the conversations started in a range, with their messages through
the existing index on messages.conversation_id, and the appeals filed in it.

Revision ID: 0005_analytics
Revises: 0005_kb_inbox
Create Date: 2026-12-20 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_analytics"
down_revision: str | None = "0005_kb_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_conversations_created_at", "conversations", ["created_at"])
    op.create_index("ix_conversations_merchant_created", "conversations", ["merchant_id", "created_at"])
    op.create_index("ix_appeals_created_at", "appeals", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_appeals_created_at", table_name="appeals")
    op.drop_index("ix_conversations_merchant_created", table_name="conversations")
    op.drop_index("ix_conversations_created_at", table_name="conversations")
