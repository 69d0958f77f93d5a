"""inventory_missing_items.inventory_item_id: a plain reference, no foreign key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

The missing set is a materialisation, rewritten by every derivation from the catalog it
references. The foreign key made each inserted row check (and lock, FOR KEY SHARE) its
catalog row: a write to one heap page of ``inventory_items`` per missing item, which
made the derivation slower than linear once the catalog outgrew the buffer cache
(benchmarks/README.md). Items are never deleted one by one; a tenant's deletion still
cascades to both tables through ``tenant_id``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_inventory_missing_items_inventory_item_id_inventory_items"


def upgrade() -> None:
    with op.batch_alter_table("inventory_missing_items") as batch:
        batch.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("inventory_missing_items") as batch:
        batch.create_foreign_key(FK, "inventory_items", ["inventory_item_id"], ["id"], ondelete="CASCADE")
