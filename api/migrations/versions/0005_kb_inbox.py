"""the knowledge team's inbox: where each unanswered question came from and what was done with it

Revision ID: 0005_kb_inbox
Revises: 0004
Create Date: 2026-12-20 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_kb_inbox"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("unanswered_questions") as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=20), nullable=False, server_default="no_answer"))
        batch_op.add_column(sa.Column("message_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("resolution", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("resolved_faq_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("resolved_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint("uq_unanswered_questions_message_id", ["message_id"])
        batch_op.create_index("ix_unanswered_questions_resolved", ["resolved", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("unanswered_questions") as batch_op:
        batch_op.drop_index("ix_unanswered_questions_resolved")
        batch_op.drop_constraint("uq_unanswered_questions_message_id", type_="unique")
        for column in ("resolved_at", "resolved_by", "resolved_faq_id", "resolution", "message_id", "source"):
            batch_op.drop_column(column)
