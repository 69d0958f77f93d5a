"""Alembic migrations: round trips, the migrated schema equals the model, the contract's columns."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.migrate import (
    DatabaseNotMigratedError,
    alembic_config,
    assert_at_head,
    current_revision,
    head_revision,
    upgrade_to_head,
)
from tenantatlas_pipelines.db.schema import TABLE_NAMES, metadata
from tenantatlas_pipelines.inventory.settings import DATABASE_URL_ENV

REPO_ROOT = Path(__file__).resolve().parents[2]

# contract section 3, column for column
CONTRACT_COLUMNS = {
    "tenants": {"id", "key", "tenant_id", "display_name", "cloud", "enabled", "created_at", "updated_at"},
    "inventory_items": {
        "id",
        "tenant_id",
        "policy_type",
        "external_id",
        "display_name",
        "category",
        "platform",
        "meta_jsonb",
        "last_seen_at",
        "last_seen_run_id",
        "created_at",
        "updated_at",
    },
    "inventory_sync_runs": {
        "id",
        "tenant_id",
        "selection_key",
        "selection_hash",
        "selection_payload",
        "status",
        "had_errors",
        "error_codes",
        "error_context",
        "type_results",
        "items_observed_count",
        "items_upserted_count",
        "errors_count",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "correlation_id",
        "dagster_run_id",
        "created_at",
        "updated_at",
    },
    "inventory_missing_items": {
        "tenant_id",
        "selection_key",
        "selection_hash",
        "sync_run_id",
        "inventory_item_id",
        "policy_type",
        "external_id",
        "display_name",
        "last_seen_at",
        "confidence",
        "confidence_reason",
    },
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trips_with_the_alembic_commands(blank_db_url: str) -> None:
    config = alembic_config(url=blank_db_url)
    command.upgrade(config, "head")
    assert _tables(blank_db_url) >= TABLE_NAMES
    command.downgrade(config, "base")
    assert _tables(blank_db_url) & TABLE_NAMES == set()
    command.upgrade(config, "head")
    assert _tables(blank_db_url) >= TABLE_NAMES


def test_root_alembic_ini_migrates_the_database_named_by_the_env_var(
    blank_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, blank_db_url)
    config = Config(str(REPO_ROOT / "alembic.ini"))
    command.upgrade(config, "head")
    assert _tables(blank_db_url) >= TABLE_NAMES
    command.downgrade(config, "base")
    assert _tables(blank_db_url) & TABLE_NAMES == set()


def test_assert_at_head_names_the_fix_until_the_database_is_migrated(blank_db_url: str) -> None:
    engine = make_engine(blank_db_url)
    try:
        with pytest.raises(DatabaseNotMigratedError, match="alembic upgrade head"):
            assert_at_head(engine)
        upgrade_to_head(engine)
        assert current_revision(engine) == head_revision()
        assert_at_head(engine)
    finally:
        engine.dispose()


def test_migrated_schema_equals_the_metadata(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_migrated_schema_has_the_contract_columns_and_the_lock_index(engine: Engine) -> None:
    inspector = inspect(engine)
    for table, columns in CONTRACT_COLUMNS.items():
        assert columns <= {c["name"] for c in inspector.get_columns(table)}, table
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("inventory_items")}
    assert ("tenant_id", "policy_type", "external_id") in uniques
    lock = {i["name"]: i for i in inspector.get_indexes("inventory_sync_runs")}[
        "uq_inventory_sync_runs_running_lock"
    ]
    assert lock["unique"] and lock["column_names"] == ["tenant_id", "selection_hash"]


@pytest.mark.postgres
def test_postgres_information_schema_shows_jsonb_and_timezone_aware_columns(postgres_engine: Engine) -> None:
    with postgres_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema()"
            )
        ).all()
        lock_def = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_inventory_sync_runs_running_lock'")
        ).scalar_one()
    types = {(table, column): data_type for table, column, data_type in rows}
    for table, columns in CONTRACT_COLUMNS.items():
        assert {(table, c) for c in columns} <= set(types), table
    assert types["inventory_items", "meta_jsonb"] == "jsonb"
    for column in ("error_codes", "error_context", "type_results"):
        assert types["inventory_sync_runs", column] == "jsonb"
    assert types["inventory_sync_runs", "correlation_id"] == "uuid"
    timestamps = {key: t for key, t in types.items() if key[1].endswith("_at") and key[0] in TABLE_NAMES}
    assert timestamps and set(timestamps.values()) == {"timestamp with time zone"}
    assert "UNIQUE" in lock_def and "WHERE" in lock_def and "'running'" in lock_def
