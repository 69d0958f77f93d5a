"""The inventory_changes asset through Dagster: what the event log and the history table hold."""

from __future__ import annotations

import dagster as dg
from batch_support import QUIET, events_of, register, run_one
from sqlalchemy import text

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.defs.assets import inventory_assets
from tenantatlas_pipelines.defs.keys import CHANGES_KEY, ITEMS_KEY, MISSING_KEY
from tenantatlas_pipelines.sync.graph_factory import set_simulator_generation


def _only(
    asset: dg.AssetKey, instance: dg.DagsterInstance, resources: dict, key: str
) -> dg.ExecuteInProcessResult:
    """Only ``asset`` of the inventory multi-asset selected, for partition ``key``."""
    return dg.materialize(
        [inventory_assets],
        selection=[asset],
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

    again = _metadata(instance, _only(CHANGES_KEY, instance, resources, key).run_id)  # same reference run
    assert again["recorded_now"] == dg.MetadataValue.int(0)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM inventory_change_events")).scalar_one() == stored


def test_a_run_of_the_items_alone_still_derives_the_missing_set_and_records_its_sync_changes(
    instance: dg.DagsterInstance, resources: dict, store: InventoryStore
) -> None:
    """The asset page's Materialize on inventory_items, or a backfill re-executed from failure.

    Before, such a run left the missing set on the previous reference run and never wrote the
    sync's changes: the next full run compares itself with this sync, so they were lost.
    """
    key = next(k for k in register(instance, ["contoso"], ["all"]))
    set_simulator_generation(1)
    assert run_one(instance, resources, key).success  # the baseline: all three assets

    set_simulator_generation(2)  # the simulator removed, added and edited items
    items_only = _only(ITEMS_KEY, instance, resources, key)
    assert items_only.success
    logged = {
        m.asset_key: dict(m.metadata)
        for m in (
            e.dagster_event.event_specific_data.materialization  # type: ignore[union-attr]
            for e in events_of(instance, items_only.run_id, "ASSET_MATERIALIZATION")
        )
    }
    assert set(logged) == {ITEMS_KEY, MISSING_KEY, CHANGES_KEY}
    sync_run_id = logged[ITEMS_KEY]["sync_run_id"].value
    assert logged[MISSING_KEY]["reference_sync_run_id"].value == sync_run_id
    assert logged[MISSING_KEY]["missing_count"].value > 0  # generation 2 removed items
    assert logged[CHANGES_KEY]["sync_run_id"].value == sync_run_id
    with store.engine.connect() as conn:
        stored = dict(
            conn.execute(
                text(
                    "SELECT kind, count(*) FROM inventory_change_events "
                    "WHERE sync_run_id = :run GROUP BY kind"
                ),
                {"run": int(sync_run_id)},
            ).all()
        )
        reference = (
            conn.execute(text("SELECT DISTINCT sync_run_id FROM inventory_missing_items")).scalars().all()
        )
    assert {"appeared", "changed", "disappeared"} <= set(stored) and min(stored.values()) > 0
    assert reference == [int(sync_run_id)]
