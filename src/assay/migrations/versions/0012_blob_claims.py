"""blob claims: the bytes-in-use promise across processes

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import assay.kit.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_claims",
        sa.Column("claim_id", sa.String(length=32), nullable=False),
        sa.Column("storage_key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("expires_at", assay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("claim_id", name=op.f("pk_blob_claims")),
    )
    op.create_index("ix_blob_claims_key", "blob_claims", ["storage_key", "kind"])


def downgrade() -> None:
    op.drop_index("ix_blob_claims_key", table_name="blob_claims")
    op.drop_table("blob_claims")
