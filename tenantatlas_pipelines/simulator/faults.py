"""How often each scenario fault has fired: the simulator's only mutable fault state."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from tenantatlas_pipelines.simulator.scenario import Fault, FaultKind, Scenario, TenantScenario

# faults that answer a list request with an error status instead of a page
STATUS_FAULTS = frozenset(
    {
        FaultKind.FORBIDDEN,
        FaultKind.UNAUTHORIZED,
        FaultKind.UNLICENSED,
        FaultKind.BAD_REQUEST,
        FaultKind.NOT_FOUND,
        FaultKind.THROTTLE,
        FaultKind.UNAVAILABLE,
        FaultKind.GATEWAY_TIMEOUT,
    }
)
# faults that change a page (chosen by ``Fault.page``) rather than the status
PAGE_FAULTS = frozenset(
    {
        FaultKind.MALFORMED_JSON,
        FaultKind.NOT_A_PAGE,
        FaultKind.NEXTLINK_LOOP,
        FaultKind.FOREIGN_NEXTLINK,
        FaultKind.REPEATED_ITEM,
    }
)


class FaultBook:
    """Counts the firings of every fault (``count`` None: fires forever). Thread-safe."""

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario
        self._lock = threading.Lock()
        self._fired: dict[tuple[str, int], int] = {}

    def faults(self, tenant: TenantScenario, *kinds: FaultKind) -> Iterator[tuple[int, Fault]]:
        """The tenant's faults of these kinds (all when none given), in scenario order."""
        for index, fault in enumerate(tenant.faults):
            if not kinds or fault.kind in kinds:
                yield index, fault

    def active(self, tenant: TenantScenario, index: int) -> bool:
        fault = tenant.faults[index]
        if fault.count is None:
            return True
        with self._lock:
            return self._fired.get((tenant.tenant_id, index), 0) < fault.count

    def fire(self, tenant: TenantScenario, index: int) -> bool:
        """Use one firing of the fault; False when it is spent."""
        fault = tenant.faults[index]
        key = (tenant.tenant_id, index)
        with self._lock:
            fired = self._fired.get(key, 0)
            if fault.count is not None and fired >= fault.count:
                return False
            self._fired[key] = fired + 1
            return True

    def fired(self, tenant_id: str, index: int) -> int:
        with self._lock:
            return self._fired.get((tenant_id.lower(), index), 0)

    def reset(self) -> None:
        with self._lock:
            self._fired.clear()
