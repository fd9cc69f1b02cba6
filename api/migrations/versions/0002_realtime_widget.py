"""realtime widget: message client ids, webchat sessions, progress notifications

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("client_id", sa.String(length=64), nullable=True))
        batch_op.create_index("uq_messages_client_id", ["conversation_id", "client_id"], unique=True)
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.add_column(sa.Column("channel_session", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_conversations_channel_session"), ["channel_session"], unique=False)
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notifications_merchant_unread", "notifications", ["merchant_id", "read_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_merchant_unread", table_name="notifications")
    op.drop_table("notifications")
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversations_channel_session"))
        batch_op.drop_column("channel_session")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_index("uq_messages_client_id")
        batch_op.drop_column("client_id")
