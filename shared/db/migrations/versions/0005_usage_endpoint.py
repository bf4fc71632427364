"""The endpoint on usage records: which kind of provider call a job made (`shared.endpoint.Endpoint`: chat,
embeddings, completions, count_tokens; issue 14), so usage reports split by it. Every existing row was a chat
job, so the column defaults to 'chat'.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_record") as batch:
        batch.add_column(sa.Column("endpoint", sa.String(), nullable=False, server_default="chat"))


def downgrade() -> None:
    with op.batch_alter_table("usage_record") as batch:
        batch.drop_column("endpoint")
