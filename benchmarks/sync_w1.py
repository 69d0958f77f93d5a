"""The W1 sync through a Dagster materialisation of ``inventory_items`` (or the empty asset).

Runs in its own process with ``DAGSTER_HOME``, ``TENANTATLAS_DATABASE_URL`` and
``TENANTATLAS_REGISTRY`` set by the caller. Measures the asset body's own time (the
``duration_seconds`` metadata the asset emits) and the whole materialisation's wall time.
Optionally profiles the whole materialisation with pyinstrument.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import text

from benchmarks.bench_defs import empty_asset, use_unthrottled_client
from benchmarks.common import SELECTION, machine_busy_seconds


def work(args: dict[str, Any]) -> dict[str, Any]:
    from tenantatlas_pipelines.db.store import InventoryStore
    from tenantatlas_pipelines.definitions import defs
    from tenantatlas_pipelines.defs.assets import inventory_assets
    from tenantatlas_pipelines.defs.partitions import partition_key
    from tenantatlas_pipelines.defs.resources import _engine

    use_unthrottled_client()
    instance = dg.DagsterInstance.get()
    tenant = args["tenant"]
    instance.add_dynamic_partitions("tenants", [tenant])
    instance.add_dynamic_partitions("selections", [SELECTION])
    key = partition_key(tenant, SELECTION)
    asset = empty_asset if args.get("empty") else inventory_assets
    resources = defs.resources or {}
    # the resource's engine (cached per process): connect and check migrations outside the timing
    store = InventoryStore(_engine(os.environ["TENANTATLAS_DATABASE_URL"]))

    profiler = None
    if args.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002, async_mode="disabled")
        profiler.start()
    wal_before = _wal_lsn(store)
    busy = machine_busy_seconds()
    own = time.process_time()
    started = time.perf_counter()
    result = dg.materialize(
        [asset],
        partition_key=str(key),
        instance=instance,
        resources=resources if not args.get("empty") else {},
        selection=None if args.get("empty") else ["inventory_items"],
    )
    wall = time.perf_counter() - started
    own_cpu = time.process_time() - own
    machine_cpu = machine_busy_seconds() - busy
    if profiler is not None:
        profiler.stop()
        Path(args["profile"]).write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    assert result.success
    event = result.get_asset_materialization_events()[0].materialization
    body = float(event.metadata["duration_seconds"].value)  # type: ignore[arg-type]
    out: dict[str, Any] = {
        "wall_seconds": wall,
        "body_seconds": body,
        "own_cpu_seconds": own_cpu,
        "machine_cpu_seconds": machine_cpu,
    }
    if not args.get("empty"):
        meta = event.metadata
        out["status"] = str(meta["status"].value)
        out["items_observed"] = int(meta["items_observed"].value) if "items_observed" in meta else None  # type: ignore[arg-type]
        with store.engine.connect() as conn:
            out["stored"] = int(conn.execute(text("SELECT count(*) FROM inventory_items")).scalar_one())
        out["items_per_s"] = out["stored"] / body
        if wal_before is not None:
            with store.engine.connect() as conn:
                wal = conn.execute(
                    text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), CAST(:lsn AS pg_lsn))"),
                    {"lsn": wal_before},
                ).scalar_one()
            out["wal_mb"] = float(wal) / 1e6  # what the database wrote to its log for this sync
    return out


def _wal_lsn(store: Any) -> str | None:
    if store.engine.dialect.name != "postgresql":
        return None
    with store.engine.connect() as conn:
        return str(conn.execute(text("SELECT pg_current_wal_lsn()")).scalar_one())
