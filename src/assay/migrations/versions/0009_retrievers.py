"""retrievers

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 23:37:38.899903
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import assay.kit.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retrievers",
        sa.Column("retriever_id", sa.String(length=32), nullable=False),
        sa.Column("namespace_id", sa.String(length=32), nullable=False),
        sa.Column("retriever_name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("collection_ids", sa.JSON(), nullable=False),
        sa.Column("input_schema", sa.JSON(), nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("created_at", assay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", assay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.namespace_id"],
            name=op.f("fk_retrievers_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("retriever_id", name=op.f("pk_retrievers")),
        sa.UniqueConstraint(
            "namespace_id", "retriever_name", name=op.f("uq_retrievers_namespace_id")
        ),
    )
    op.create_index("ix_retrievers_namespace_id", "retrievers", ["namespace_id"])


def downgrade() -> None:
    op.drop_index("ix_retrievers_namespace_id", table_name="retrievers")
    op.drop_table("retrievers")
