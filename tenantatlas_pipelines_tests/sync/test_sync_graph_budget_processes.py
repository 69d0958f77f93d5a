"""One Graph budget per tenant across processes: two syncs of one tenant, in two processes,
against one loopback simulator and one inventory database (SQLite file and PostgreSQL).

The simulator records every request's arrival; the requests of the tenant per rate class
in any 1-second window never exceed the bucket's documented bound (burst + rate x (1 s +
slice), plus 0.1 s for loopback jitter), and the Graph requests open at once never exceed
the in-flight bound. The control runs the same two processes with a budget per process
(what every run had before): the same checks catch it going over.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sync_support import TENANT_A, tenant_scenario

from tenantatlas_pipelines.db.migrate import upgrade_to_head
from tenantatlas_pipelines.db.schema import BUDGET_TABLES, graph_budget_buckets, graph_budget_leases
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind, Scenario
from tenantatlas_pipelines.simulator.server import serve_loopback

CHILD = Path(__file__).with_name("budget_sync_child.py")
IN_FLIGHT = 2
INTUNE = (4.0, 0.2)  # 20 requests per second, bursts of 4
CONDITIONAL_ACCESS = (1.0, 0.25)  # 4 per second, bursts of 1
SLICE = 0.25
SETTINGS = {
    "max_in_flight": IN_FLIGHT,
    "rates": {"intune": INTUNE, "conditional_access": CONDITIONAL_ACCESS},
    "slice_seconds": SLICE,
    "renew_seconds": 0.2,
    "lease_ttl_seconds": 5.0,
    "poll_seconds": 0.05,
}
COUNTS = {
    "deviceConfiguration": 100,
    "mobileApp": 100,
    "deviceCompliancePolicy": 100,
    "settingsCatalogPolicy": 100,
    "conditionalAccessPolicy": 40,
}
PAGE_SIZE = 5
JITTER = 0.1  # loopback: a request arrives a little after its token was taken


def _bound(limit: tuple[float, float]) -> int:
    """The most requests in any 1-second window: burst + rate x (1 s + slice), with jitter."""
    burst, rate = limit[0], limit[0] / limit[1]
    return math.floor(burst + rate * (1.0 + SLICE + JITTER))


class CountingSimulator(GraphSimulator):
    """The simulator, also counting the Graph GETs it has open at once (all processes)."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        self._lock = threading.Lock()
        self.open_gets = 0
        self.max_open_gets = 0

    def app(self) -> Any:
        inner = super().app()

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["method"] != "GET":
                await inner(scope, receive, send)
                return
            with self._lock:
                self.open_gets += 1
                self.max_open_gets = max(self.max_open_gets, self.open_gets)
            try:
                await inner(scope, receive, send)
            finally:
                with self._lock:
                    self.open_gets -= 1

        return counted


def _max_per_second(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0)


def _run_two_processes(db_url: str, ledger: str, tmp_path: Path) -> CountingSimulator:
    slow = Fault(kind=FaultKind.SLOW, delay_seconds=0.03)  # requests overlap: in flight matters
    sim = CountingSimulator(
        Scenario(seed=5, tenants=[tenant_scenario(item_counts=COUNTS, page_size=PAGE_SIZE, faults=[slow])])
    )
    go = tmp_path / "go"
    with serve_loopback(sim) as base:
        children = [
            subprocess.Popen(
                [sys.executable, str(CHILD), db_url, base, key, ledger, str(go), json.dumps(SETTINGS)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for key in ("one", "two")
        ]
        try:
            for child in children:
                assert child.stdout is not None
                assert child.stdout.readline().strip() == "ready", child.stderr and child.stderr.read()
            go.touch()
            outputs = [child.communicate(timeout=120) for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == "status success", (out, err)
    return sim


def _gets(sim: GraphSimulator, conditional_access: bool) -> list[float]:
    records = [r for r in sim.stats.records if r.method == "GET" and r.tenant_id == TENANT_A]
    return [r.time for r in records if ("conditionalAccess" in r.path) == conditional_access]


@pytest.fixture
def budget_engine(engine: Engine) -> Iterator[Engine]:
    """The test database, its Graph budget tables emptied (the session's PostgreSQL keeps rows)."""
    with engine.begin() as conn:
        for table in BUDGET_TABLES:
            conn.execute(delete(table))
    yield engine


def test_two_processes_of_one_tenant_share_its_rate_and_in_flight_budget(
    db_url: str, budget_engine: Engine, tmp_path: Path
) -> None:
    sim = _run_two_processes(db_url, "database", tmp_path)
    intune, ca = _gets(sim, conditional_access=False), _gets(sim, conditional_access=True)
    assert len(ca) == 2 * COUNTS["conditionalAccessPolicy"] // PAGE_SIZE  # listed by both selections
    assert len(intune) >= 60

    assert _max_per_second(intune) <= _bound(INTUNE), _max_per_second(intune)
    assert _max_per_second(ca) <= _bound(CONDITIONAL_ACCESS), _max_per_second(ca)
    assert sim.max_open_gets <= IN_FLIGHT
    # the budget was what held them back: both processes together at about one bucket's rate
    burst, rate = INTUNE[0], INTUNE[0] / INTUNE[1]
    assert max(intune) - min(intune) >= (len(intune) - burst * 2) / rate * 0.8
    assert sim.max_open_gets == IN_FLIGHT
    with budget_engine.connect() as conn:
        buckets = {r.rate_class for r in conn.execute(select(graph_budget_buckets))}
        leases = conn.execute(select(graph_budget_leases)).all()
    assert buckets == {"intune", "conditional_access"}
    assert leases == []  # each process released its in-flight lease at the end of its run


def test_control_a_budget_per_process_goes_over_and_the_checks_catch_it(tmp_path: Path) -> None:
    # the per-process budget never touches the database: one SQLite file is enough
    db_url = f"sqlite:///{tmp_path / 'control.db'}"
    upgrade_to_head(db_url)
    sim = _run_two_processes(db_url, "process", tmp_path)
    intune, ca = _gets(sim, conditional_access=False), _gets(sim, conditional_access=True)
    over = (
        _max_per_second(intune) > _bound(INTUNE),
        _max_per_second(ca) > _bound(CONDITIONAL_ACCESS),
        sim.max_open_gets > IN_FLIGHT,
    )
    print("control", _max_per_second(intune), _max_per_second(ca), sim.max_open_gets)
    assert over == (True, True, True), (_max_per_second(intune), _max_per_second(ca), sim.max_open_gets)
