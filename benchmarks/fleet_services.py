"""The fleet benchmark's deployment: webserver and daemon processes, GraphQL as the UI calls it,
backfills waited for on the instance, and the peak RSS of the run workers.

Each service runs in its own process group (its code servers and run workers with it), with
its output in a file; ``stop`` ends the group and anything that left it. Adapted from the
production-instance test's helpers (tenantatlas_pipelines_tests/defs/instance_support.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import psutil  # type: ignore[import-untyped]
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.dagster_run import RunsFilter

from benchmarks.common import PROJECT_ROOT

BIN = Path(sys.executable).parent
REPOSITORY = "__repository__"  # the repository name of a Definitions object
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""
SET_SENSOR_CURSOR = """
mutation SetSensorCursor($sensorSelector: SensorSelector!, $cursor: String) {
  setSensorCursor(sensorSelector: $sensorSelector, cursor: $cursor) {
    __typename
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""
START_SENSOR = """
mutation StartSensor($sensorSelector: SensorSelector!) {
  startSensor(sensorSelector: $sensorSelector) {
    __typename
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""
LOCATIONS = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
DONE = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"----- {self.name} (exit {self.proc.poll()}), end of {self.log} -----\n{text[-chars:]}"

    def stop(self, timeout: float = 20.0) -> None:
        try:
            descendants = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        _, survivors = psutil.wait_procs(descendants, timeout=timeout)
        for child in survivors:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        _signal_group(self.proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def start_service(name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> Service:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, proc, log)


def start_webserver(workspace: Path, env: Mapping[str, str], log_dir: Path, port: int) -> Service:
    argv = [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    return start_service("webserver", argv, env, log_dir)


def start_daemon(workspace: Path, env: Mapping[str, str], log_dir: Path) -> Service:
    return start_service("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, log_dir)


def check_alive(services: Sequence[Service]) -> None:
    dead = [s for s in services if not s.alive()]
    if dead:
        raise RuntimeError("exited early:\n" + "\n".join(s.tail() for s in dead))


@dataclass(frozen=True)
class GraphQL:
    url: str

    def __call__(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 120) -> Any:
        response = httpx.post(
            self.url, json={"query": query, "variables": dict(variables or {})}, timeout=timeout
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_ready(self, locations: set[str], services: Sequence[Service], timeout: float) -> None:
        """Until the webserver answers with every code location in ``locations`` loaded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check_alive(services)
            with contextlib.suppress(httpx.HTTPError, RuntimeError, KeyError, TypeError, ValueError):
                nodes = self(LOCATIONS, timeout=10)["repositoriesOrError"]["nodes"]
                if locations <= {node["location"]["name"] for node in nodes}:
                    return
            time.sleep(1)
        raise TimeoutError(f"the webserver at {self.url} did not load {sorted(locations)} in {timeout:.0f} s")

    def launch_backfill(self, assets: Sequence[str], partitions: Sequence[str] | None = None) -> str:
        """One backfill of ``assets`` (slash-separated keys): every partition, as the UI's
        Materialize-all dialog sends it, or the named ``partitions``."""
        params: dict[str, Any] = {"assetSelection": [{"path": a.split("/")} for a in assets], "tags": []}
        if partitions is None:
            params["allPartitions"] = True
        else:
            params["partitionNames"] = list(partitions)
        result = self(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {result}")
        return str(result["backfillId"])

    def start_sensor_with_cursor(self, location: str, sensor: str, cursor: str) -> None:
        selector = {"repositoryLocationName": location, "repositoryName": REPOSITORY, "sensorName": sensor}
        for mutation, variables in (
            (SET_SENSOR_CURSOR, {"sensorSelector": selector, "cursor": cursor}),
            (START_SENSOR, {"sensorSelector": selector}),
        ):
            data = self(mutation, variables)
            result = next(iter(data.values()))
            if "message" in result:
                raise RuntimeError(f"{sensor}: {result}")


@dataclass
class RssSampler:
    """Samples the RSS of every run worker below ``root`` (the daemon) with psutil.

    The default run launcher asks the code server (``dagster api grpc``, a child of the
    daemon) to start each run; the code server spawns it with multiprocessing
    (``spawn_main``) or, in other setups, as ``dagster api execute_run``.
    """

    root: int
    interval: float = 0.25
    peaks: dict[int, float] = field(default_factory=dict)  # pid -> peak RSS MB
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                for proc in psutil.Process(self.root).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        if not _is_run_worker(proc.cmdline()):
                            continue
                        mb = proc.memory_info().rss / 2**20
                        self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0.0), mb)
            self._stop.wait(self.interval)

    def reset(self) -> None:
        self.peaks = {}

    @property
    def peak_mb(self) -> float:
        return max(self.peaks.values(), default=0.0)


def _is_run_worker(cmdline: list[str]) -> bool:
    text = " ".join(cmdline)
    return "spawn_main" in text or "execute_run" in text


def wait_for_backfill(
    instance: dg.DagsterInstance, backfill_id: str, services: Sequence[Service], timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while True:
        check_alive(services)
        backfill = instance.get_backfill(backfill_id)
        if backfill is not None and backfill.status in DONE:
            return str(backfill.status.value)
        if time.monotonic() > deadline:
            status = backfill.status.value if backfill else "unknown"
            raise TimeoutError(f"backfill {backfill_id} still {status} after {timeout:.0f} s")
        time.sleep(0.5)


def wait_for_new_backfill(
    instance: dg.DagsterInstance, known: set[str], services: Sequence[Service], timeout: float
) -> str:
    """The id of the first backfill not in ``known`` (a sensor's), once one exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive(services)
        fresh = [b.backfill_id for b in instance.get_backfills(limit=20) if b.backfill_id not in known]
        if fresh:
            return fresh[0]
        time.sleep(0.5)
    raise TimeoutError(f"no new backfill within {timeout:.0f} s")


def backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> dict[str, Any]:
    """Runs of the backfill: how many, their statuses, and when the first started and the last ended."""
    records = instance.get_run_records(RunsFilter(tags={"dagster/backfill": backfill_id}))
    starts = [r.start_time for r in records if r.start_time]
    ends = [r.end_time for r in records if r.end_time]
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record.dagster_run.status.value] = statuses.get(record.dagster_run.status.value, 0) + 1
    durations = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
    waits = [r.start_time - r.create_timestamp.timestamp() for r in records if r.start_time]
    return {
        "runs": len(records),
        "statuses": statuses,
        "run_seconds_mean": sum(durations) / len(durations) if durations else None,
        "created_to_started_mean": sum(waits) / len(waits) if waits else None,
        "first_start": min(starts, default=None),
        "last_end": max(ends, default=None),
        "created": min((r.create_timestamp.timestamp() for r in records), default=None),
    }


def now() -> float:
    return datetime.now().timestamp()
