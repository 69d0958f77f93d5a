"""The inventory_changes asset through Dagster: what the event log and the history table hold."""

from __future__ import annotations

import dagster as dg
from batch_support import QUIET, events_of, register, run_one
from sqlalchemy import text

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.defs.assets import inventory_assets
from tenantatlas_pipelines.defs.keys import CHANGES_KEY
from tenantatlas_pipelines.sync.graph_factory import set_simulator_generation


def _changes(instance: dg.DagsterInstance, resources: dict, key: str) -> dg.ExecuteInProcessResult:
    """Only the change history of ``key`` (a subset of the inventory multi-asset)."""
    return dg.materialize(
        [inventory_assets],
        selection=[CHANGES_KEY],
        partition_key=key,
        instance=instance,
        resources=resources,
        run_config=QUIET,
    )


def _metadata(instance: dg.DagsterInstance, run_id: str) -> dict:
    """The inventory_changes materialisation of the run, as the event log holds it."""
    materializations = [
        e.dagster_event.event_specific_data.materialization  # type: ignore[union-attr]
        for e in events_of(instance, run_id, "ASSET_MATERIALIZATION")
    ]
    [materialization] = [m for m in materializations if m.asset_key == CHANGES_KEY]
    return dict(materialization.metadata)


def test_the_changes_asset_records_the_second_generation_once_and_shows_counts_and_ids_as_text(
    instance: dg.DagsterInstance, resources: dict, store: InventoryStore
) -> None:
    key = next(k for k in register(instance, ["contoso"], ["all"]))
    set_simulator_generation(1)
    first = run_one(instance, resources, key)  # sync, missing set and change history in one run
    assert first.success
    baseline = _metadata(instance, first.run_id)
    assert baseline["changes_total"] == dg.MetadataValue.int(0)
    assert "baseline" in baseline["note"].value

    set_simulator_generation(2)
    second = run_one(instance, resources, key)
    assert second.success
    metadata = _metadata(instance, second.run_id)
    for kind in ("appeared", "changed", "disappeared"):
        assert isinstance(metadata[kind], dg.IntMetadataValue) and metadata[kind].value > 0, kind
    for name in ("sync_run_id", "previous_sync_run_id"):  # ids are text, never plotted
        assert isinstance(metadata[name], dg.TextMetadataValue) and metadata[name].value.isdigit()
    assert "| kind" in metadata["preview"].value
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM inventory_change_events")).scalar_one()
    assert stored == metadata["changes_total"].value == metadata["recorded_now"].value

    again = _metadata(instance, _changes(instance, resources, key).run_id)  # same reference run
    assert again["recorded_now"] == dg.MetadataValue.int(0)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM inventory_change_events")).scalar_one() == stored
