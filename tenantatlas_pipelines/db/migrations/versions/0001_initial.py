"""Initial schema: tenants, inventory_items, inventory_sync_runs, inventory_missing_items.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

A frozen snapshot: the types are spelled out here (not imported from the
package) so later changes to ``db/schema.py`` need a new revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
RUNNING = sa.text("status = 'running'")


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False, comment="Entra tenant GUID"),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("cloud", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("key", name=op.f("uq_tenants_key")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_tenants_tenant_id")),
        comment="Mirror of the registry's tenants; never deleted, disabled when gone from the registry",
    )

    op.create_table(
        "inventory_sync_runs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("selection_key", sa.String(length=128), nullable=False),
        sa.Column("selection_hash", sa.String(length=64), nullable=False),
        sa.Column("selection_payload", sa.Text(), nullable=False, comment="canonical JSON of the selection"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("had_errors", sa.Boolean(), nullable=False),
        sa.Column("error_codes", JSON_DOC, nullable=False, comment="distinct error codes, sorted"),
        sa.Column("error_context", JSON_DOC, nullable=False, comment="redacted errors per policy type"),
        sa.Column("type_results", JSON_DOC, nullable=False, comment="per policy type: outcome, items, pages"),
        sa.Column("items_observed_count", sa.Integer(), nullable=False),
        sa.Column("items_upserted_count", sa.Integer(), nullable=False),
        sa.Column("errors_count", sa.Integer(), nullable=False),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        _ts("heartbeat_at", nullable=True),
        sa.Column("correlation_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'success', 'partial', 'failed', 'skipped')",
            name=op.f("ck_inventory_sync_runs_status"),
        ),
        sa.CheckConstraint(
            "length(selection_hash) = 64", name=op.f("ck_inventory_sync_runs_selection_hash_length")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_inventory_sync_runs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_sync_runs")),
        comment="One row per sync run (including skipped ones)",
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_inventory_sync_runs_tenant_id_selection_hash_started_at"),
        "inventory_sync_runs",
        ["tenant_id", "selection_hash", "started_at"],
    )
    op.create_index(
        op.f("ix_inventory_sync_runs_tenant_id_selection_hash_finished_at"),
        "inventory_sync_runs",
        ["tenant_id", "selection_hash", "finished_at"],
    )
    op.create_index(op.f("ix_inventory_sync_runs_dagster_run_id"), "inventory_sync_runs", ["dagster_run_id"])
    # the lock: one running run per (tenant, selection hash)
    op.create_index(
        "uq_inventory_sync_runs_running_lock",
        "inventory_sync_runs",
        ["tenant_id", "selection_hash"],
        unique=True,
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )

    op.create_table(
        "inventory_items",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("policy_type", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=1024), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=True),
        sa.Column("meta_jsonb", JSON_DOC, nullable=False, comment="whitelisted metadata only"),
        _ts("last_seen_at"),
        sa.Column("last_seen_run_id", sa.BigInteger(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(
            ["last_seen_run_id"],
            ["inventory_sync_runs.id"],
            name=op.f("fk_inventory_items_last_seen_run_id_inventory_sync_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_inventory_items_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_items")),
        sa.UniqueConstraint(
            "tenant_id",
            "policy_type",
            "external_id",
            name=op.f("uq_inventory_items_tenant_id_policy_type_external_id"),
        ),
        comment="The catalog: one row per (tenant, policy type, Graph object id)",
    )
    op.create_index(
        op.f("ix_inventory_items_tenant_id_policy_type_last_seen_at"),
        "inventory_items",
        ["tenant_id", "policy_type", "last_seen_at"],
    )

    op.create_table(
        "inventory_missing_items",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("selection_key", sa.String(length=128), nullable=False),
        sa.Column("selection_hash", sa.String(length=64), nullable=False),
        sa.Column("sync_run_id", sa.BigInteger(), nullable=False, comment="the reference run"),
        sa.Column("inventory_item_id", sa.BigInteger(), nullable=False),
        sa.Column("policy_type", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=1024), nullable=True),
        _ts("last_seen_at"),
        sa.Column("confidence", sa.String(length=8), nullable=False),
        sa.Column("confidence_reason", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.CheckConstraint(
            "confidence IN ('high', 'low')", name=op.f("ck_inventory_missing_items_confidence")
        ),
        sa.ForeignKeyConstraint(
            ["inventory_item_id"],
            ["inventory_items.id"],
            name=op.f("fk_inventory_missing_items_inventory_item_id_inventory_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sync_run_id"],
            ["inventory_sync_runs.id"],
            name=op.f("fk_inventory_missing_items_sync_run_id_inventory_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_inventory_missing_items_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_missing_items")),
        sa.UniqueConstraint(
            "tenant_id",
            "selection_key",
            "inventory_item_id",
            name="uq_inventory_missing_items_partition_item",
        ),
        comment="Materialised missing set, replaced atomically per partition (tenant, selection key)",
    )


def downgrade() -> None:
    op.drop_table("inventory_missing_items")
    op.drop_index(op.f("ix_inventory_items_tenant_id_policy_type_last_seen_at"), table_name="inventory_items")
    op.drop_table("inventory_items")
    op.drop_index("uq_inventory_sync_runs_running_lock", table_name="inventory_sync_runs")
    op.drop_index(op.f("ix_inventory_sync_runs_dagster_run_id"), table_name="inventory_sync_runs")
    op.drop_index(
        op.f("ix_inventory_sync_runs_tenant_id_selection_hash_finished_at"), table_name="inventory_sync_runs"
    )
    op.drop_index(
        op.f("ix_inventory_sync_runs_tenant_id_selection_hash_started_at"), table_name="inventory_sync_runs"
    )
    op.drop_table("inventory_sync_runs")
    op.drop_table("tenants")
