"""The Graph budget per tenant: token buckets and in-flight leases shared by every process.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Every run and process of one deployment takes its Graph requests from one budget per
tenant (contract section 5, "Graph budget per tenant"): a token bucket per (tenant, rate
class) and leased in-flight slots per tenant, kept here (db/graph_budget.py). The rows
are keyed by the Entra tenant id (the tenant Graph throttles), not by ``tenants.id``: a
budget row exists before, and independently of, the tenant's catalog rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "graph_budget_buckets",
        sa.Column("entra_tenant_id", sa.String(length=64), nullable=False),
        sa.Column("rate_class", sa.String(length=64), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False, comment="requests that may start now"),
        _ts("refilled_at"),
        sa.PrimaryKeyConstraint("entra_tenant_id", "rate_class", name=op.f("pk_graph_budget_buckets")),
        comment="Graph request budget: one token bucket per (Entra tenant, rate class), all processes",
    )
    op.create_table(
        "graph_budget_leases",
        sa.Column("entra_tenant_id", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False, comment="one process's ledger"),
        sa.Column("slots", sa.Integer(), nullable=False, comment="in-flight slots granted"),
        sa.Column("wanted", sa.Integer(), nullable=False, comment="slots the holder could use"),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("entra_tenant_id", "holder", name=op.f("pk_graph_budget_leases")),
        comment="Graph in-flight bound: slots leased per (Entra tenant, process); expired leases are free",
    )


def downgrade() -> None:
    op.drop_table("graph_budget_leases")
    op.drop_table("graph_budget_buckets")
