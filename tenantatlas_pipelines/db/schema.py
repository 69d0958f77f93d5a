"""The inventory schema (contract section 3): the model the Alembic migrations create.

Four catalog tables (``TABLES``) and the two tables of the Graph budget shared by every
process (``BUDGET_TABLES``), nothing else. Constraint and index names are fixed by the naming
convention so that migrations and ``compare_metadata`` agree on both dialects.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from tenantatlas_pipelines.db.types import BigId, JsonDocument, UtcDateTime
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.inventory.text_bounds import (
    CATEGORY_CHARS,
    CLOUD_CHARS,
    CONFIDENCE_CHARS,
    DAGSTER_RUN_ID_CHARS,
    DISPLAY_NAME_CHARS,
    EXTERNAL_ID_CHARS,
    PLATFORM_CHARS,
    POLICY_TYPE_CHARS,
    RUN_STATUS_CHARS,
    SELECTION_HASH_CHARS,
    SELECTION_KEY_CHARS,
    TENANT_DISPLAY_NAME_CHARS,
    TENANT_ID_CHARS,
    TENANT_KEY_CHARS,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

RUN_STATUSES = tuple(s.value for s in RunStatus)
CONFIDENCES = ("high", "low")
CHANGE_KINDS = ("appeared", "changed", "disappeared", "reappeared")

tenants = Table(
    "tenants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(TENANT_KEY_CHARS), nullable=False, unique=True),
    Column("tenant_id", String(TENANT_ID_CHARS), nullable=False, unique=True, comment="Entra tenant GUID"),
    Column("display_name", String(TENANT_DISPLAY_NAME_CHARS), nullable=False),
    Column("cloud", String(CLOUD_CHARS), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    comment="Mirror of the registry's tenants; never deleted, disabled when gone from the registry",
)

inventory_sync_runs = Table(
    "inventory_sync_runs",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("selection_key", String(SELECTION_KEY_CHARS), nullable=False),
    Column("selection_hash", String(SELECTION_HASH_CHARS), nullable=False),
    Column("selection_payload", Text, nullable=False, comment="canonical JSON of the selection"),
    Column("status", String(RUN_STATUS_CHARS), nullable=False),
    Column("had_errors", Boolean, nullable=False),
    Column("error_codes", JsonDocument, nullable=False, comment="distinct error codes, sorted"),
    Column("error_context", JsonDocument, nullable=False, comment="redacted errors per policy type"),
    Column("type_results", JsonDocument, nullable=False, comment="per policy type: outcome, items, pages"),
    Column("items_observed_count", Integer, nullable=False),
    Column("items_upserted_count", Integer, nullable=False),
    Column("errors_count", Integer, nullable=False),
    # what the run's upserts found (section 5b): first written, content hash moved, neither
    Column("items_new_count", Integer, nullable=False, server_default="0"),
    Column("items_changed_count", Integer, nullable=False, server_default="0"),
    Column("items_unchanged_count", Integer, nullable=False, server_default="0"),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("heartbeat_at", UtcDateTime, nullable=True),
    Column("correlation_id", Uuid(as_uuid=False), nullable=False),
    Column("dagster_run_id", String(DAGSTER_RUN_ID_CHARS), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in RUN_STATUSES) + ")", name="status"),
    CheckConstraint(f"length(selection_hash) = {SELECTION_HASH_CHARS}", name="selection_hash_length"),
    # the latest completed run of a (tenant, selection): the missing reference
    Index(None, "tenant_id", "selection_hash", "started_at"),
    # freshness checks: a completed run within a window
    Index(None, "tenant_id", "selection_hash", "finished_at"),
    # the run-failure sensor finds runs by their Dagster run
    Index(None, "dagster_run_id"),
    # the lock: at most one running run per (tenant, selection hash)
    Index(
        "uq_inventory_sync_runs_running_lock",
        "tenant_id",
        "selection_hash",
        unique=True,
        sqlite_where=Column("status") == RunStatus.RUNNING.value,
        postgresql_where=Column("status") == RunStatus.RUNNING.value,
    ),
    sqlite_autoincrement=True,  # run ids are referenced from Dagster metadata: never reuse one
    comment="One row per sync run (including skipped ones)",
)

inventory_items = Table(
    "inventory_items",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("policy_type", String(POLICY_TYPE_CHARS), nullable=False),
    Column("external_id", String(EXTERNAL_ID_CHARS), nullable=False),
    Column("display_name", String(DISPLAY_NAME_CHARS), nullable=True),
    Column("category", String(CATEGORY_CHARS), nullable=False),
    Column("platform", String(PLATFORM_CHARS), nullable=True),
    Column("meta_jsonb", JsonDocument, nullable=False, comment="whitelisted metadata only"),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column(
        "last_seen_run_id",
        BigInteger,
        ForeignKey("inventory_sync_runs.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # section 5b: sha256 hex of the item's canonical JSON (inventory/fingerprint.py), never
    # the payload; NULL only for rows written before migration 0004, until their next sync
    Column("content_hash", String(64), nullable=True),
    Column("content_changed_at", UtcDateTime, nullable=True, comment="moves only when content_hash changes"),
    # plain references (no foreign key, like inventory_missing_items.inventory_item_id): the
    # run that first wrote the item and the run whose write last changed its content hash
    Column("created_run_id", BigInteger, nullable=True),
    Column("content_changed_run_id", BigInteger, nullable=True),
    UniqueConstraint("tenant_id", "policy_type", "external_id"),
    # the missing query: items of a tenant and type not seen since a run started
    Index(None, "tenant_id", "policy_type", "last_seen_at"),
    comment="The catalog: one row per (tenant, policy type, Graph object id)",
)

inventory_missing_items = Table(
    "inventory_missing_items",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("selection_key", String(SELECTION_KEY_CHARS), nullable=False),
    Column("selection_hash", String(SELECTION_HASH_CHARS), nullable=False),
    Column(
        "sync_run_id",
        BigInteger,
        ForeignKey("inventory_sync_runs.id", ondelete="CASCADE"),
        nullable=False,
        comment="the reference run",
    ),
    # a plain reference (no foreign key): the set is rewritten from the catalog by every
    # derivation, and a key check per row would lock a catalog row per missing item
    Column("inventory_item_id", BigInteger, nullable=False),
    Column("policy_type", String(POLICY_TYPE_CHARS), nullable=False),
    Column("external_id", String(EXTERNAL_ID_CHARS), nullable=False),
    Column("display_name", String(DISPLAY_NAME_CHARS), nullable=True),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("confidence", String(CONFIDENCE_CHARS), nullable=False),
    Column("confidence_reason", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("confidence IN (" + ", ".join(f"'{c}'" for c in CONFIDENCES) + ")", name="confidence"),
    # one row per item and partition; its (tenant_id, selection_key) prefix serves the
    # partition's delete and reads
    UniqueConstraint(
        "tenant_id", "selection_key", "inventory_item_id", name="uq_inventory_missing_items_partition_item"
    ),
    comment="Materialised missing set, replaced atomically per partition (tenant, selection key)",
)

graph_budget_buckets = Table(
    "graph_budget_buckets",
    metadata,
    Column("entra_tenant_id", String(64), primary_key=True),
    Column("rate_class", String(64), primary_key=True),
    Column("tokens", Double, nullable=False, comment="requests that may start now"),
    Column("refilled_at", UtcDateTime, nullable=False),
    comment="Graph request budget: one token bucket per (Entra tenant, rate class), all processes",
)

graph_budget_leases = Table(
    "graph_budget_leases",
    metadata,
    Column("entra_tenant_id", String(64), primary_key=True),
    Column("holder", String(64), primary_key=True, comment="one process's ledger"),
    Column("slots", Integer, nullable=False, comment="in-flight slots granted"),
    Column("wanted", Integer, nullable=False, comment="slots the holder could use"),
    Column("expires_at", UtcDateTime, nullable=False),
    comment="Graph in-flight bound: slots leased per (Entra tenant, process); expired leases are free",
)

inventory_change_events = Table(
    "inventory_change_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("selection_key", String(SELECTION_KEY_CHARS), nullable=False),
    Column("selection_hash", String(SELECTION_HASH_CHARS), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("policy_type", String(POLICY_TYPE_CHARS), nullable=False),
    Column("external_id", String(EXTERNAL_ID_CHARS), nullable=False),
    Column("display_name", String(DISPLAY_NAME_CHARS), nullable=True),
    Column(
        "sync_run_id",
        BigInteger,
        ForeignKey("inventory_sync_runs.id", ondelete="CASCADE"),
        nullable=False,
        comment="the completed run the change was found by",
    ),
    Column("previous_sync_run_id", BigInteger, nullable=True, comment="the completed run before it"),
    Column(
        "confidence",
        String(CONFIDENCE_CHARS),
        nullable=True,
        comment="disappeared only: the missing confidence",
    ),
    Column("recorded_at", UtcDateTime, nullable=False),
    CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in CHANGE_KINDS) + ")", name="kind"),
    CheckConstraint(
        "confidence IS NULL OR confidence IN (" + ", ".join(f"'{c}'" for c in CONFIDENCES) + ")",
        name="confidence",
    ),
    # idempotent per run: the same finding of the same run is stored once
    UniqueConstraint(
        "tenant_id",
        "selection_hash",
        "sync_run_id",
        "kind",
        "policy_type",
        "external_id",
        name="uq_inventory_change_events_run_item",
    ),
    # "what changed in the last 24 hours across every tenant"
    Index(None, "recorded_at"),
    # a tenant's history and its retention prune
    Index(None, "tenant_id", "recorded_at"),
    # an item's latest disappeared / reappeared event in a partition
    Index(
        "ix_inventory_change_events_partition_item",
        "tenant_id",
        "selection_hash",
        "policy_type",
        "external_id",
    ),
    sqlite_autoincrement=True,  # event ids only grow: "the latest event" is the highest id
    comment="Append-only change history per partition (no payload): section 5b",
)

TABLES = (tenants, inventory_sync_runs, inventory_items, inventory_missing_items, inventory_change_events)
TABLE_NAMES = frozenset(t.name for t in TABLES)
# the Graph budget shared by every process (db/graph_budget.py): keyed by Entra tenant id,
# not tenant-scoped catalog data (no ``tenant_id`` column, no row-level security)
BUDGET_TABLES = (graph_budget_buckets, graph_budget_leases)
