"""Dropped parameters on usage records: the request parameters the serving target left out because the
route or the client allowed dropping them (issue 13, never a silent drop), comma-separated; '' for none, so
every existing row reads as "nothing dropped".

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_record") as batch:
        batch.add_column(sa.Column("dropped_params", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("usage_record") as batch:
        batch.drop_column("dropped_params")
