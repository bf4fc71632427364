"""Attribution on usage records (issue 15): the API key, the end user and the tags of each request, so reports
group and filter by them and the usage table serves as the request log. Existing rows get no key, no user
and no tags. On PostgreSQL the tags are JSONB with a GIN index (containment filters); SQLite keeps JSON text.
Also the opt-in request content: a tenant's `log_content_days` and the `request_content` table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    tags_type = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table("usage_record") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("end_user", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("tags", tags_type, nullable=False, server_default="{}"))
        batch.create_index("ix_usage_record_tenant_key", ["tenant_id", "key_id"])
        batch.create_index("ix_usage_record_tenant_user", ["tenant_id", "end_user"])
    op.create_index("ix_usage_record_tags", "usage_record", ["tags"], postgresql_using="gin")
    with op.batch_alter_table("tenant") as batch:
        batch.add_column(sa.Column("log_content_days", sa.Integer(), nullable=True))
    op.create_table(
        "request_content",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request", tags_type, nullable=False),
        sa.Column("answer", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_request_content")),
    )
    op.create_index(op.f("ix_request_content_tenant_id"), "request_content", ["tenant_id"])
    op.create_index(op.f("ix_request_content_expires_at"), "request_content", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_request_content_expires_at"), table_name="request_content")
    op.drop_index(op.f("ix_request_content_tenant_id"), table_name="request_content")
    op.drop_table("request_content")
    with op.batch_alter_table("tenant") as batch:
        batch.drop_column("log_content_days")
    op.drop_index("ix_usage_record_tags", table_name="usage_record")
    with op.batch_alter_table("usage_record") as batch:
        batch.drop_index("ix_usage_record_tenant_user")
        batch.drop_index("ix_usage_record_tenant_key")
        batch.drop_column("tags")
        batch.drop_column("end_user")
        batch.drop_column("key_id")
