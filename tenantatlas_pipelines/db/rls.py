"""Optional row-level security on PostgreSQL: the database itself keeps tenants apart.

The store already filters every statement by tenant. Row-level security is a
second wall for the day a query forgets to: with it on, the tenant-scoped
tables (``TENANT_SCOPED_TABLES``: ``inventory_items``, ``inventory_sync_runs``,
``inventory_missing_items``, ``inventory_change_events``; every table whose
``tenant_id`` references ``tenants.id``) show and accept only the rows of the
tenant named by the transaction-local setting ``tenantatlas.tenant_id``.

Turning it on (PostgreSQL only; SQLite has no row-level security):

1. ``enable_row_level_security(engine)`` as the tables' owner, after migrating: it
   enables and *forces* RLS and creates one policy per table (idempotent). Run it
   again after a migration that adds a tenant-scoped table (0004 added
   ``inventory_change_events``): policies are not created by the migrations.
2. Connect the pipeline as a role that is neither superuser nor ``BYPASSRLS``
   (superusers always bypass RLS), granted SELECT/INSERT/UPDATE/DELETE on the
   tables and USAGE on their sequences.
3. Install the per-transaction scoping on the pipeline's engine with
   ``install_tenant_scoping(engine)`` (``make_engine`` does it when
   ``TENANTATLAS_ROW_LEVEL_SECURITY=1``). Every transaction then begins with
   ``set_config('tenantatlas.tenant_id', <scope>, true)``, the scope being the
   one ``tenant_scope()`` set for the current context (the sync service scopes
   each run to its tenant; ``InventoryStore.tenant_scope`` is the same).

Outside any scope a transaction sees no tenant-scoped row at all (the safe
default); ``tenant_scope(ALL_TENANTS)`` is the explicit cross-tenant scope of
maintenance paths (the run-failure sensor finds a sync run by its Dagster run
id; the freshness sensor reads the whole fleet; an operator's cross-tenant query
such as README's "what changed in the last 24 hours" sets
``tenantatlas.tenant_id`` to ``'*'`` in its transaction, or runs as the owner).
RLS guards against bugs in our own queries, not against a client that sends its
own SQL: such a client can set the setting itself.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

from tenantatlas_pipelines.inventory.errors import ConfigError

TENANT_SETTING = "tenantatlas.tenant_id"
ALL_TENANTS = "*"
RLS_ENV = "TENANTATLAS_ROW_LEVEL_SECURITY"
POLICY_NAME = "tenantatlas_tenant_isolation"
TENANT_SCOPED_TABLES = (
    "inventory_items",
    "inventory_sync_runs",
    "inventory_missing_items",
    "inventory_change_events",
)

_scope: contextvars.ContextVar[str] = contextvars.ContextVar("tenantatlas_tenant_scope", default="")
_INSTALLED = "_tenantatlas_tenant_scoping"

# CASE, not OR: the cast of the setting to integer must only happen for a tenant id
_SETTING = f"coalesce(current_setting('{TENANT_SETTING}', true), '')"
POLICY_EXPRESSION = (
    f"CASE WHEN {_SETTING} = '{ALL_TENANTS}' THEN true "
    f"WHEN {_SETTING} = '' THEN false "
    f"ELSE tenant_id = {_SETTING}::integer END"
)


def rls_requested(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(RLS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def current_scope() -> str:
    """The tenant scope of the current context: a tenants.id, ``ALL_TENANTS`` or '' (none)."""
    return _scope.get()


@contextmanager
def tenant_scope(tenant_pk: int | str) -> Iterator[None]:
    """Run the enclosed transactions (threads and tasks started inside inherit it) for one tenant."""
    value = str(tenant_pk)
    if value != ALL_TENANTS and not value.isdigit():
        raise ValueError(f"a tenant scope is a tenants.id or {ALL_TENANTS!r}, not {value!r}")
    token = _scope.set(value)
    try:
        yield
    finally:
        _scope.reset(token)


def install_tenant_scoping(engine: Engine) -> Engine:
    """Make every transaction of ``engine`` begin by setting ``tenantatlas.tenant_id`` (PostgreSQL)."""
    if engine.dialect.name != "postgresql":
        raise ConfigError("row-level security needs PostgreSQL; unset TENANTATLAS_ROW_LEVEL_SECURITY")
    if getattr(engine, _INSTALLED, False):
        return engine

    @event.listens_for(engine, "begin")
    def _scope_transaction(conn: Connection) -> None:
        conn.exec_driver_sql(
            "SELECT set_config(%(name)s, %(value)s, true)", {"name": TENANT_SETTING, "value": current_scope()}
        )

    setattr(engine, _INSTALLED, True)
    return engine


def enable_row_level_security(engine: Engine) -> None:
    """Enable and force RLS with the tenant policy on the tenant-scoped tables (idempotent)."""
    if engine.dialect.name != "postgresql":
        raise ConfigError("row-level security needs PostgreSQL")
    with engine.begin() as conn:
        for table in TENANT_SCOPED_TABLES:
            conn.execute(text(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
            conn.execute(text(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))
            conn.execute(text(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {table}"))
            conn.execute(
                text(
                    f"CREATE POLICY {POLICY_NAME} ON {table} "
                    f"USING ({POLICY_EXPRESSION}) WITH CHECK ({POLICY_EXPRESSION})"
                )
            )


def disable_row_level_security(engine: Engine) -> None:
    """Drop the policies and turn RLS off again (idempotent)."""
    with engine.begin() as conn:
        for table in TENANT_SCOPED_TABLES:
            conn.execute(text(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {table}"))
            conn.execute(text(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY"))
            conn.execute(text(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"))
