"""The Graph budget per tenant kept in the inventory database: one for every process.

Implements ``graph.limits.BudgetLedger`` (structurally: floor 2 does not import floor 2)
on the tables ``graph_budget_buckets`` and ``graph_budget_leases`` (migration 0003),
with the arithmetic of ``inventory/graph_budget.py``. Each call is one short write
transaction: on PostgreSQL the bucket row is locked with ``SELECT ... FOR UPDATE`` and
the tenant's leases with a transaction-level advisory lock; on SQLite the engine's
``BEGIN IMMEDIATE`` serialises writers. The calls block: ``TenantLimiter`` runs them on
a thread pool of its own, a few per second per busy tenant (slices, lease renewals).

Time is the caller's wall clock (UTC): processes on several hosts must keep their
clocks in sync (NTP). A host behind the others refills nothing until its clock catches
up; one ahead by s seconds can add at most ``rate x s`` tokens (never beyond the burst)
when it takes the row over from another host.
"""

from __future__ import annotations

import zlib
from datetime import timedelta

from sqlalchemy import and_, delete, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from tenantatlas_pipelines.db.clock import Clock, utcnow
from tenantatlas_pipelines.db.schema import graph_budget_buckets as buckets
from tenantatlas_pipelines.db.schema import graph_budget_leases as leases
from tenantatlas_pipelines.inventory import graph_budget as budget
from tenantatlas_pipelines.inventory.graph_budget import BucketTake, Lease, RateLimit

# the first key of the advisory lock of a tenant's leases ("GB"): apart from other users'
ADVISORY_NAMESPACE = 0x4742


class DatabaseBudgetLedger:
    """A ``BudgetLedger`` in the inventory database, shared by every process that uses it."""

    blocking = True

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"

    def take_tokens(self, tenant_id: str, rate_class: str, want: int, limit: RateLimit) -> BucketTake:
        key = and_(buckets.c.entra_tenant_id == tenant_id, buckets.c.rate_class == rate_class)
        with self.engine.begin() as conn:
            now = self._clock()
            conn.execute(
                self._insert_bucket_if_missing().values(
                    entra_tenant_id=tenant_id, rate_class=rate_class, tokens=limit.burst, refilled_at=now
                )
            )
            tokens, refilled_at = conn.execute(
                select(buckets.c.tokens, buckets.c.refilled_at).where(key).with_for_update()
            ).one()
            take = budget.take_tokens(tokens, refilled_at.timestamp(), now.timestamp(), limit, want)
            conn.execute(
                update(buckets).where(key).values(tokens=take.tokens, refilled_at=max(refilled_at, now))
            )
        return take

    def lease_slots(
        self, tenant_id: str, holder: str, wanted: int, in_use: int, bound: int, ttl: float
    ) -> int:
        with self.engine.begin() as conn:
            self._lock_tenant_leases(conn, tenant_id)
            now = self._clock()
            of_tenant = leases.c.entra_tenant_id == tenant_id
            conn.execute(delete(leases).where(of_tenant, leases.c.expires_at <= now))
            if wanted <= 0 and in_use <= 0:
                conn.execute(delete(leases).where(of_tenant, leases.c.holder == holder))
                return 0
            others = [
                Lease(row.holder, row.slots, row.wanted)
                for row in conn.execute(
                    select(leases.c.holder, leases.c.slots, leases.c.wanted).where(
                        of_tenant, leases.c.holder != holder
                    )
                )
            ]
            granted = budget.lease_grant(bound, holder, wanted, in_use, others)
            values = {"slots": granted, "wanted": wanted, "expires_at": now + timedelta(seconds=ttl)}
            changed = conn.execute(
                update(leases).where(of_tenant, leases.c.holder == holder).values(**values)
            ).rowcount
            if not changed:
                conn.execute(insert(leases).values(entra_tenant_id=tenant_id, holder=holder, **values))
        return granted

    def release_slots(self, tenant_id: str, holder: str) -> None:
        with self.engine.begin() as conn:
            self._lock_tenant_leases(conn, tenant_id)
            conn.execute(
                delete(leases).where(leases.c.entra_tenant_id == tenant_id, leases.c.holder == holder)
            )

    def _insert_bucket_if_missing(self) -> postgresql.Insert | sqlite.Insert:
        if self._postgres:
            return postgresql.insert(buckets).on_conflict_do_nothing()
        return sqlite.insert(buckets).on_conflict_do_nothing()

    def _lock_tenant_leases(self, conn: Connection, tenant_id: str) -> None:
        """Serialise the lease transactions of one tenant (SQLite: BEGIN IMMEDIATE already does)."""
        if self._postgres:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
                {"namespace": ADVISORY_NAMESPACE, "key": _int32(zlib.crc32(tenant_id.encode()))},
            )


def _int32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value
