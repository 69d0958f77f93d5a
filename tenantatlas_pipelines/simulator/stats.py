"""What the simulator was asked: every request, with its tenant, status and concurrency."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request. ``in_flight_at_start`` counts the tenant's open requests, this one included."""

    time: float  # time.monotonic() at arrival
    tenant_id: str  # "" when the request named no known tenant (bad token)
    method: str
    path: str  # URL path, without the query
    status: int
    in_flight_at_start: int


class RequestStats:
    """Thread-safe request counters (the loopback server answers on its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._open: Counter[str] = Counter()

    def start(self, tenant_id: str) -> tuple[float, int]:
        """Note a request as open; returns its arrival time and the tenant's open count."""
        with self._lock:
            self._open[tenant_id] += 1
            return time.monotonic(), self._open[tenant_id]

    def finish(self, tenant_id: str, started: tuple[float, int], method: str, path: str, status: int) -> None:
        with self._lock:
            self._open[tenant_id] -= 1
            self._records.append(RequestRecord(started[0], tenant_id, method, path, status, started[1]))

    @property
    def records(self) -> list[RequestRecord]:
        """A copy, in completion order."""
        with self._lock:
            return list(self._records)

    @property
    def total(self) -> int:
        with self._lock:
            return len(self._records)

    def by_tenant(self, tenant_id: str) -> int:
        wanted = tenant_id.lower()
        with self._lock:
            return sum(1 for r in self._records if r.tenant_id == wanted)

    def by_path(self, path: str) -> int:
        """Requests to ``path``: a full URL path ("/beta/deviceManagement/intents") matches
        exactly; a path without version ("deviceManagement/intents") matches every version."""
        full = path if path.startswith("/") else None
        suffix = "/" + path.strip("/")
        with self._lock:
            if full is not None:
                return sum(1 for r in self._records if r.path == full)
            return sum(1 for r in self._records if r.path.endswith(suffix))

    def by_status(self, status: int) -> int:
        with self._lock:
            return sum(1 for r in self._records if r.status == status)

    def max_in_flight(self, tenant_id: str) -> int:
        """The most requests of the tenant the simulator had open at once (0 when none)."""
        wanted = tenant_id.lower()
        with self._lock:
            return max((r.in_flight_at_start for r in self._records if r.tenant_id == wanted), default=0)

    def reset(self) -> None:
        """Forget the records (open requests stay counted, so concurrency stays right)."""
        with self._lock:
            self._records.clear()
