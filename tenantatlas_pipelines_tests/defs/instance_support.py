"""Helpers of the production-instance test: a simulated fleet, the webserver and the daemon as separate
process groups (output in files), and the webserver's GraphQL API as the UI calls it.

Nothing here is mocked: the instance is built from a real ``dagster.yaml`` (the repo's or
``deploy/dagster.yaml``) in a temporary ``DAGSTER_HOME``; the processes are the installed
``dagster-webserver`` and ``dagster-daemon`` on the repo's ``workspace.yaml``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
import httpx
import psutil
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import tenantatlas_pipelines

REPO_ROOT = Path(tenantatlas_pipelines.__file__).resolve().parent.parent
WORKSPACE = REPO_ROOT / "workspace.yaml"
EMBEDDED_DAGSTER_YAML = REPO_ROOT / "dagster.yaml"
DEPLOY_DAGSTER_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
BIN = Path(sys.executable).parent
ASSETS = ("inventory_items", "inventory_missing_items")
SELECTIONS: dict[str, dict[str, Any]] = {
    "all": {
        "categories": ["configuration", "compliance", "apps", "enrollment", "scripts", "updates", "security"],
        "include_foundations": True,
    },
    "compliance": {
        "policy_types": ["deviceCompliancePolicy", "compliancePolicyV2", "deviceComplianceScript"]
    },
}
# a few items per tenant: the test measures Dagster's path, not the sync's throughput
ITEM_COUNTS = {
    "deviceConfiguration": 3,
    "settingsCatalogPolicy": 2,
    "deviceCompliancePolicy": 2,
    "deviceComplianceScript": 1,
    "mobileApp": 2,
    "conditionalAccessPolicy": 1,
    "roleScopeTag": 1,
}
# every sync run of the inventory, in the order they started
SYNC_ROWS = """
SELECT t.key AS tenant, r.selection_key AS selection, r.status, r.dagster_run_id
FROM inventory_sync_runs r JOIN tenants t ON t.id = r.tenant_id
ORDER BY r.started_at, r.id
"""
DONE_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
SUCCEEDED_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS"}

# what the UI's "Materialize all" partitions dialog sends (LaunchAssetChoosePartitionsDialog)
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
BACKFILL_STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      numPartitions
      runs { id status }
      error { message stack }
    }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""
# the backfill page's "Re-execute" menu: a new backfill of the parent's
# targets; FROM_FAILURE keeps only what the parent did not materialise
REEXECUTE_BACKFILL = """
mutation ReexecuteBackfill($reexecutionParams: ReexecutionParams!) {
  reexecutePartitionBackfill(reexecutionParams: $reexecutionParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""
# the backfill page's per-asset table: targeted, materialised, failed and in-progress partitions
BACKFILL_ASSET_STATUSES = """
query BackfillAssetStatuses($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id
      status
      assetBackfillData {
        assetBackfillStatuses {
          __typename
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted
            numPartitionsInProgress
            numPartitionsMaterialized
            numPartitionsFailed
          }
          ... on UnpartitionedAssetStatus { assetKey { path } inProgress materialized failed }
        }
      }
    }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""
READY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"


class DatabaseServer(Protocol):
    """The root conftest's ``postgres_server`` fixture, as this test uses it."""

    def create_database(self, prefix: str = ...) -> str: ...

    def drop_database(self, url: str) -> None: ...


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Fleet:
    """A registry of simulated tenants, the simulator scenario serving them, and their secrets."""

    registry: Path
    scenario: Path
    secrets: Mapping[str, str]
    tenants: tuple[str, ...]
    selections: tuple[str, ...]

    @property
    def partitions(self) -> list[tuple[str, str]]:
        """Every (tenant, selection)."""
        return [(t, s) for t in self.tenants for s in self.selections]


def write_fleet(directory: Path, tenants: int) -> Fleet:
    """``tenants`` healthy simulated tenants x the selections ``all`` and ``compliance``."""
    directory.mkdir(parents=True, exist_ok=True)
    registry: dict[str, Any] = {"selections": SELECTIONS, "tenants": {}}
    scenario: dict[str, Any] = {"seed": 7, "tenants": []}
    secrets: dict[str, str] = {}
    keys: list[str] = []
    for index in range(tenants):
        key = f"fleet{index:03d}"
        tenant_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{key}.instance.tenantatlas.test"))
        client_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{key}.client.tenantatlas.test"))
        env_name = f"FLEET{index:03d}_GRAPH_SECRET"
        secret = f"{key}-simulated-secret"
        registry["tenants"][key] = {
            "tenant_id": tenant_id,
            "client_id": client_id,
            "client_secret_env": env_name,
            "cloud": "simulated",
            "display_name": f"Fleet tenant {index}",
        }
        scenario["tenants"].append(
            {
                "tenant_id": tenant_id,
                "client_id": client_id,
                "client_secret": secret,
                "display_name": f"Fleet tenant {index}",
                "item_counts": ITEM_COUNTS,
                "faults": [],
            }
        )
        secrets[env_name] = secret
        keys.append(key)
    registry_path = directory / "registry.yaml"
    scenario_path = directory / "scenario.yaml"
    registry_path.write_text(yaml.safe_dump(registry, sort_keys=False))
    scenario_path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return Fleet(registry_path, scenario_path, secrets, tuple(keys), tuple(SELECTIONS))


@dataclass
class Service:
    """A long-running process in its own process group; stdout and stderr go to ``log``."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 6000) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return f"({self.log} was never written)"
        return (
            f"----- {self.name} (exit {self.proc.poll()}), last {chars} chars of {self.log} -----\n"
            + (text[-chars:])
        )

    def stop(self, timeout: float = 20.0) -> list[int]:
        """Terminate the process group (code servers and run workers included); SIGKILL what
        outlives ``timeout``, and any descendant that left the group. Returns the pids killed hard."""
        try:
            descendants = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        if self.alive():
            _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        _, survivors = psutil.wait_procs(descendants, timeout=timeout)
        killed: list[int] = []
        for child in survivors:
            try:
                child.kill()
                killed.append(child.pid)
            except psutil.NoSuchProcess:
                pass
        _signal_group(self.proc.pid, signal.SIGKILL)  # anything left in the group
        return killed


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def start_service(name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> Service:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches every child
        )
    return Service(name, proc, log)


def start_webserver(env: Mapping[str, str], log_dir: Path, port: int) -> Service:
    argv = [str(BIN / "dagster-webserver"), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)]
    return start_service("webserver", argv, env, log_dir)


def start_daemon(env: Mapping[str, str], log_dir: Path) -> Service:
    return start_service("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)], env, log_dir)


class ServiceDied(RuntimeError):
    pass


def _check_alive(services: Sequence[Service]) -> None:
    dead = [s for s in services if not s.alive()]
    if dead:
        raise ServiceDied(f"{', '.join(s.name for s in dead)} exited early")


@dataclass(frozen=True)
class GraphQL:
    """The webserver's GraphQL endpoint."""

    url: str

    @classmethod
    def on_port(cls, port: int) -> GraphQL:
        return cls(f"http://127.0.0.1:{port}/graphql")

    def __call__(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60) -> Any:
        response = httpx.post(
            self.url, json={"query": query, "variables": dict(variables or {})}, timeout=timeout
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_ready(self, services: Sequence[Service], timeout: float) -> None:
        """Until the webserver answers with the code location loaded (or a service dies)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _check_alive(services)
            try:
                if self(READY, timeout=5)["repositoriesOrError"]["nodes"]:
                    return
            except (httpx.HTTPError, AssertionError, KeyError, TypeError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the webserver at {self.url} did not answer within {timeout:.0f} s")

    def launch_backfill_of_all_partitions(self, assets: Sequence[str]) -> str:
        """One backfill of every partition of ``assets``, as the UI's Materialize-all dialog launches it."""
        params = {"assetSelection": [{"path": [a]} for a in assets], "allPartitions": True, "tags": []}
        result = self(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", f"backfill not launched: {result}"
        return str(result["backfillId"])

    def reexecute_backfill(self, backfill_id: str, strategy: str = "FROM_FAILURE") -> str:
        """A re-execution of a finished backfill, as the backfill page's Re-execute menu launches it."""
        params = {"parentRunId": backfill_id, "strategy": strategy}
        result = self(REEXECUTE_BACKFILL, {"reexecutionParams": params})["reexecutePartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", (
            f"backfill {backfill_id} not re-executed: {result}"
        )
        return str(result["backfillId"])

    def backfill_asset_statuses(self, backfill_id: str) -> dict[str, dict[str, Any]]:
        """Per asset (its key's path joined by "/"): the backfill page's partition counts."""
        result = self(BACKFILL_ASSET_STATUSES, {"backfillId": backfill_id})["partitionBackfillOrError"]
        assert result["__typename"] == "PartitionBackfill", f"backfill {backfill_id}: {result}"
        statuses = (result["assetBackfillData"] or {}).get("assetBackfillStatuses") or []
        return {
            "/".join(status["assetKey"]["path"]): {
                k: v for k, v in status.items() if k not in ("__typename", "assetKey")
            }
            for status in statuses
        }

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        result = self(BACKFILL_STATUS, {"backfillId": backfill_id})["partitionBackfillOrError"]
        assert result["__typename"] == "PartitionBackfill", f"backfill {backfill_id}: {result}"
        return dict(result)

    def wait_for_backfill(
        self, backfill_id: str, services: Sequence[Service], timeout: float
    ) -> dict[str, Any]:
        """Poll the backfill until it is done (any end state); TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            _check_alive(services)
            state = self.backfill(backfill_id)
            if state["status"] in DONE_BACKFILL:
                return state
            time.sleep(2)
        runs = state.get("runs") or []
        raise TimeoutError(
            f"backfill {backfill_id} still {state.get('status')} after {timeout:.0f} s "
            f"({len(runs)} runs: {sorted(r['status'] for r in runs)})"
        )


def partition_str(tenant: str, selection: str) -> str:
    return f"{selection}|{tenant}"  # the contract's string form of the multi-partition key


@dataclass
class Deployment:
    label: str
    home: Path
    env: dict[str, str]  # what the webserver, the daemon and their runs see
    instance: dg.DagsterInstance  # the same instance, opened in the test process
    inventory_url: str


@contextlib.contextmanager
def open_deployment(
    label: str,
    dagster_yaml: Path,
    postgres_storage: bool,
    postgres_server: DatabaseServer,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Deployment]:
    """``dagster_yaml`` itself in ``home``; the inventory on a fresh PostgreSQL database, migrated.

    ``postgres_storage``: the yaml reads ``DAGSTER_PG_*`` for an instance database of its own.
    The databases are dropped at the end.
    """
    home.mkdir()
    shutil.copyfile(dagster_yaml, home / "dagster.yaml")  # the file itself, unchanged
    env: dict[str, str] = {"DAGSTER_HOME": str(home)}
    databases: list[str] = []
    instance: dg.DagsterInstance | None = None
    try:
        if postgres_storage:
            dagster_url = make_url(postgres_server.create_database("tenantatlas_dagster"))
            databases.append(dagster_url.render_as_string(hide_password=False))
            env |= {
                "DAGSTER_PG_HOST": dagster_url.host or "127.0.0.1",
                "DAGSTER_PG_PORT": str(dagster_url.port or 5432),
                "DAGSTER_PG_DB": dagster_url.database or "",
                "DAGSTER_PG_USERNAME": dagster_url.username or "postgres",
                "DAGSTER_PG_PASSWORD": dagster_url.password or "",
            }
        inventory_url = postgres_server.create_database("tenantatlas_inventory")
        databases.append(inventory_url)
        migrated = subprocess.run(
            [str(BIN / "tenantatlas"), "migrate", "--database-url", inventory_url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        for name, value in env.items():  # the yaml's env vars, for the instance opened here
            monkeypatch.setenv(name, value)
        instance = dg.DagsterInstance.from_config(str(home))
        yield Deployment(label, home, env, instance, inventory_url)
    finally:
        if instance is not None:
            instance.dispose()
        for url in databases:
            postgres_server.drop_database(url)  # WITH (FORCE): a leftover connection cannot keep it


def service_env(
    deployment: Deployment,
    fleet: Fleet,
    state_dir: Path,
    batch_size: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """What the webserver, the daemon and their runs see: the deployment, the fleet, ``extra``."""
    return {
        **os.environ,
        **deployment.env,
        **fleet.secrets,
        **(extra or {}),
        "TENANTATLAS_DATABASE_URL": deployment.inventory_url,
        "TENANTATLAS_REGISTRY": str(fleet.registry),
        "TENANTATLAS_SIMULATOR_SCENARIO": str(fleet.scenario),
        "TENANTATLAS_STATE_DIR": str(state_dir),
        "TENANTATLAS_BATCH_SIZE": str(batch_size),
    }


@contextlib.contextmanager
def webserver_and_daemon(
    env: Mapping[str, str], log_dir: Path, ready_timeout: float
) -> Iterator[tuple[GraphQL, list[Service]]]:
    """Both services on ``env``, ready: yields the webserver's GraphQL API and the services.

    On an error the services' log tails are printed; at the end both are stopped (a
    survivor 20 s after SIGTERM is named).
    """
    log_dir.mkdir()
    services: list[Service] = []
    try:
        services.append(start_webserver(env, log_dir, port := free_port()))
        services.append(start_daemon(env, log_dir))
        graphql = GraphQL.on_port(port)
        graphql.wait_ready(services, ready_timeout)
        yield graphql, services
    except BaseException:
        for service in services:
            print(service.tail())
        raise
    finally:
        for service in services:
            if killed := service.stop():
                print(f"{service.name}: killed {killed}, still alive 20 s after SIGTERM")


def sync_rows(inventory_url: str) -> dict[tuple[str, str], list[tuple[str, str | None]]]:
    """(tenant, selection) -> its sync runs' (status, Dagster run id), in the order they started."""
    engine = create_engine(inventory_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(SYNC_ROWS)).mappings().all()
    finally:
        engine.dispose()
    by_partition: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    for row in rows:
        by_partition.setdefault((row["tenant"], row["selection"]), []).append(
            (row["status"], row["dagster_run_id"])
        )
    return by_partition
