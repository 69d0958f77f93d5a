"""A sync in its own process, for the crash and concurrency tests (not a test module).

``python rel_sync_child.py <db_url> <mode> [<go_file>]``

- ``crash``: generation 2, one policy type answers only after a minute: the run
  writes the other types, then hangs until the parent kills it with SIGKILL.
- ``hold``: generation 1, one type answers after ``REL_HOLD_SECONDS``; waits for
  ``go_file`` to exist first (all racers start together); prints the status.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from rel_support import SECRET_A, SECRET_ENV, service, simulator, sync, tenant_scenario

from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind
from tenantatlas_pipelines.sync.service import SyncSettings


def main(argv: list[str]) -> int:
    url, mode = argv[0], argv[1]
    os.environ[SECRET_ENV["A"]] = SECRET_A
    store = InventoryStore(make_engine(url))
    if mode == "crash":
        slow = Fault(kind=FaultKind.SLOW, policy_type="roleScopeTag", delay_seconds=120.0)
        sim = simulator(tenant_scenario(faults=[slow]), generation=2)
    else:
        delay = float(os.environ.get("REL_HOLD_SECONDS", "2.0"))
        slow = Fault(kind=FaultKind.SLOW, policy_type="roleScopeTag", delay_seconds=delay, count=1)
        sim = simulator(tenant_scenario(faults=[slow]))
    svc = service(store, sim, settings=SyncSettings(batch_size=5))
    if mode == "hold":
        go = Path(argv[2])
        print("ready", flush=True)
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    result = sync(svc)
    print(f"status {result.status.value} {result.run_id}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
