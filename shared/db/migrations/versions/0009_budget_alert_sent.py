"""Budget alerts (issue 15): the thresholds already sent, per alert, budget period and budget amount, so a
threshold is not sent a second time in its period when Redis loses the set that guards it. A new table only.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budget_alert_sent",
        sa.Column("alert_id", sa.String(length=32), nullable=False),
        sa.Column("period_id", sa.String(length=16), nullable=False),
        sa.Column("threshold_pct", sa.Integer(), nullable=False),
        sa.Column("budget_micros", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["budget_alert.id"],
                                name=op.f("fk_budget_alert_sent_alert_id_budget_alert"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("alert_id", "period_id", "threshold_pct", "budget_micros",
                                name=op.f("pk_budget_alert_sent")),
    )


def downgrade() -> None:
    op.drop_table("budget_alert_sent")
