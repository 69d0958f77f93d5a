"""Many syncs of one partition at once, in threads and in processes: exactly one holds the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from rel_support import (
    OTHER_SELECTION,
    SELECTION,
    service,
    simulator,
    stored_ids,
    sync,
    tenant_scenario,
)
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.schema import inventory_sync_runs
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind

CHILD = Path(__file__).with_name("rel_sync_child.py")
RACERS = 5
PROCESSES = 3


def _statuses(engine: Engine) -> Counter[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(inventory_sync_runs.c.selection_key, inventory_sync_runs.c.status))
        return Counter((r[0], r[1]) for r in rows)


def test_concurrent_syncs_in_threads_have_exactly_one_holder_per_partition(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    # every compliance page (a type of both selections) takes 0.6 s: all racers arrive while a holder runs
    slow = Fault(kind=FaultKind.SLOW, policy_type="deviceCompliancePolicy", delay_seconds=0.6)
    sim = simulator(tenant_scenario(faults=[slow]))
    partitions: list[tuple[str, Selection]] = [("rel", SELECTION), ("compliance", OTHER_SELECTION)]
    barrier = threading.Barrier(RACERS * len(partitions))
    results: list[tuple[str, RunStatus, list[str]]] = []
    errors: list[BaseException] = []

    def racer(key: str, selection: Selection) -> None:
        try:
            barrier.wait(timeout=30)
            result = sync(service(store, sim), selection_key=key, selection=selection)
            results.append((key, result.status, result.error_codes))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=racer, args=partition) for partition in partitions for _ in range(RACERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    for key, _ in partitions:
        mine = [r for r in results if r[0] == key]
        assert sorted(s.value for _, s, _ in mine) == ["skipped"] * (RACERS - 1) + ["success"]
        assert all(codes == ["lock_contended"] for _, s, codes in mine if s is RunStatus.SKIPPED)
    # different partitions of one tenant ran side by side, one holder each
    assert _statuses(engine) == Counter(
        {(k, "success"): 1 for k, _ in partitions} | {(k, "skipped"): RACERS - 1 for k, _ in partitions}
    )
    ids = stored_ids(engine)
    assert len(ids) == len(set(ids))


@pytest.mark.slow
def test_concurrent_syncs_in_processes_have_exactly_one_holder(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(CHILD.parent), "REL_HOLD_SECONDS": "1.5"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), db_url, "hold", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        go.touch()
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert all(proc.returncode == 0 for proc in procs), outputs
    statuses = sorted(out.split()[1] for out, _ in outputs)
    assert statuses == ["skipped"] * (PROCESSES - 1) + ["success"]
    assert _statuses(engine) == Counter({("rel", "success"): 1, ("rel", "skipped"): PROCESSES - 1})
    ids = stored_ids(engine)
    assert len(ids) == len(set(ids)) and ids
