"""Tenant controls: token-per-minute and concurrency limits, a budget per period; saved cost and cached
prompt tokens on usage records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenant") as batch:
        batch.add_column(sa.Column("tpm_limit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_concurrent", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("budget_usd", sa.Float(), nullable=True))
        batch.add_column(sa.Column("budget_period", sa.String(length=16), nullable=False,
                                   server_default="monthly"))
    with op.batch_alter_table("usage_record") as batch:
        batch.add_column(sa.Column("saved_cost_usd", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cached_prompt_tokens", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("usage_record") as batch:
        batch.drop_column("cached_prompt_tokens")
        batch.drop_column("saved_cost_usd")
    with op.batch_alter_table("tenant") as batch:
        batch.drop_column("budget_period")
        batch.drop_column("budget_usd")
        batch.drop_column("max_concurrent")
        batch.drop_column("tpm_limit")
