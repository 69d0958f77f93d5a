"""Content fingerprints and the change history (contract section 5b).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

- ``inventory_items``: ``content_hash`` (sha256 hex of the item's canonical JSON, never the
  payload), ``content_changed_at``, and two plain run references, ``created_run_id`` and
  ``content_changed_run_id``, from which a run's new / changed / unchanged counts and the
  change history are read. Existing rows keep ``content_hash`` NULL until their next sync,
  which sets it without counting the item as changed; their ``content_changed_at`` starts
  as their ``updated_at``.
- ``inventory_sync_runs``: ``items_new_count``, ``items_changed_count``,
  ``items_unchanged_count`` (0 for runs from before).
- ``inventory_change_events``: the append-only history of the ``inventory_changes`` asset.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_RUN_COUNTS = ("items_new_count", "items_changed_count", "items_unchanged_count")


def upgrade() -> None:
    with op.batch_alter_table("inventory_items") as batch:
        batch.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column(
                "content_changed_at",
                sa.DateTime(timezone=True),
                nullable=True,
                comment="moves only when content_hash changes",
            )
        )
        batch.add_column(sa.Column("created_run_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("content_changed_run_id", sa.BigInteger(), nullable=True))
    op.execute("UPDATE inventory_items SET content_changed_at = updated_at")

    with op.batch_alter_table("inventory_sync_runs") as batch:
        for name in _RUN_COUNTS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))

    op.create_table(
        "inventory_change_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("selection_key", sa.String(length=128), nullable=False),
        sa.Column("selection_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("policy_type", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=1024), nullable=True),
        sa.Column(
            "sync_run_id",
            sa.BigInteger(),
            nullable=False,
            comment="the completed run the change was found by",
        ),
        sa.Column(
            "previous_sync_run_id", sa.BigInteger(), nullable=True, comment="the completed run before it"
        ),
        sa.Column(
            "confidence",
            sa.String(length=8),
            nullable=True,
            comment="disappeared only: the missing confidence",
        ),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('appeared', 'changed', 'disappeared', 'reappeared')",
            name=op.f("ck_inventory_change_events_kind"),
        ),
        sa.CheckConstraint(
            "confidence IS NULL OR confidence IN ('high', 'low')",
            name=op.f("ck_inventory_change_events_confidence"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_inventory_change_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sync_run_id"],
            ["inventory_sync_runs.id"],
            name=op.f("fk_inventory_change_events_sync_run_id_inventory_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_change_events")),
        sa.UniqueConstraint(
            "tenant_id",
            "selection_hash",
            "sync_run_id",
            "kind",
            "policy_type",
            "external_id",
            name="uq_inventory_change_events_run_item",
        ),
        comment="Append-only change history per partition (no payload): section 5b",
        sqlite_autoincrement=True,
    )
    op.create_index("ix_inventory_change_events_recorded_at", "inventory_change_events", ["recorded_at"])
    op.create_index(
        "ix_inventory_change_events_tenant_id_recorded_at",
        "inventory_change_events",
        ["tenant_id", "recorded_at"],
    )
    op.create_index(
        "ix_inventory_change_events_partition_item",
        "inventory_change_events",
        ["tenant_id", "selection_hash", "policy_type", "external_id"],
    )


def downgrade() -> None:
    op.drop_table("inventory_change_events")
    with op.batch_alter_table("inventory_sync_runs") as batch:
        for name in reversed(_RUN_COUNTS):
            batch.drop_column(name)
    with op.batch_alter_table("inventory_items") as batch:
        for name in ("content_changed_run_id", "created_run_id", "content_changed_at", "content_hash"):
            batch.drop_column(name)
