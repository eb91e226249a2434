"""sync configurations and the source keys they took

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 10:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import assay.kit.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "syncs",
        sa.Column("sync_id", sa.String(length=32), nullable=False),
        sa.Column("namespace_id", sa.String(length=32), nullable=False),
        sa.Column("bucket_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("source_bucket", sa.String(length=255), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("endpoint_url", sa.Text(), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("access_key_id", sa.Text(), nullable=True),
        sa.Column("secret_access_key", sa.Text(), nullable=True),
        sa.Column("session_token", sa.Text(), nullable=True),
        sa.Column("sync_mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("polling_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("file_filters", sa.JSON(), nullable=False),
        sa.Column("property_mapping", sa.JSON(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("auto_submit", sa.Boolean(), nullable=False),
        sa.Column("last_run_at", assay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", assay.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("objects_created", sa.Integer(), nullable=False),
        sa.Column("objects_skipped", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("last_errors", sa.JSON(), nullable=False),
        sa.Column("last_run", sa.JSON(), nullable=False),
        sa.Column("created_at", assay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", assay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bucket_id"],
            ["buckets.bucket_id"],
            name=op.f("fk_syncs_bucket_id_buckets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.namespace_id"],
            name=op.f("fk_syncs_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sync_id", name=op.f("pk_syncs")),
    )
    with op.batch_alter_table("syncs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_syncs_namespace_id"), ["namespace_id"], unique=False)
        batch_op.create_index("ix_syncs_bucket_id_sync_id", ["bucket_id", "sync_id"], unique=False)
        batch_op.create_index(
            "ix_syncs_status_next_run_at", ["status", "next_run_at"], unique=False
        )

    op.create_table(
        "sync_keys",
        sa.Column("sync_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=200), nullable=False),
        sa.Column("object_id", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("batch_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", assay.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sync_id"],
            ["syncs.sync_id"],
            name=op.f("fk_sync_keys_sync_id_syncs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sync_id", "key", "etag", name=op.f("pk_sync_keys")),
    )
    with op.batch_alter_table("sync_keys", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sync_keys_sync_id_batch_id", ["sync_id", "batch_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_keys_sync_id_batch_id")
    op.drop_table("sync_keys")

    with op.batch_alter_table("syncs", schema=None) as batch_op:
        batch_op.drop_index("ix_syncs_status_next_run_at")
        batch_op.drop_index("ix_syncs_bucket_id_sync_id")
        batch_op.drop_index(batch_op.f("ix_syncs_namespace_id"))
    op.drop_table("syncs")
