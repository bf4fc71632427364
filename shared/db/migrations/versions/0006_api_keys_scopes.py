"""Several named, scoped keys per tenant (issue 15): each API key gets a name, an optional expiry, the time it
was last used, the models and endpoints it may call, and limits and a budget of its own; a tenant gets its
model allow-list. Every existing key becomes the tenant's key named `default`, with no scopes, so it keeps
authenticating exactly as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_COLUMNS = ("expires_at", "last_used_at", "allowed_models", "allowed_endpoints", "rate_limit", "tpm_limit",
               "max_concurrent", "budget_usd", "budget_period")


def upgrade() -> None:
    with op.batch_alter_table("api_key") as batch:
        # The server default names every existing key `default`: the tenant's one key until now.
        batch.add_column(sa.Column("name", sa.String(100), nullable=False, server_default="default"))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("allowed_models", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("allowed_endpoints", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("rate_limit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tpm_limit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_concurrent", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("budget_usd", sa.Float(), nullable=True))
        batch.add_column(sa.Column("budget_period", sa.String(16), nullable=False, server_default="monthly"))
    with op.batch_alter_table("tenant") as batch:
        batch.add_column(sa.Column("allowed_models", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenant") as batch:
        batch.drop_column("allowed_models")
    with op.batch_alter_table("api_key") as batch:
        for name in ("name", *KEY_COLUMNS):
            batch.drop_column(name)
