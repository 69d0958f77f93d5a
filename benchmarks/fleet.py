"""``python -m benchmarks.fleet``: a fleet sweep through the paths users take, against its floors.

Per workload (W2 = 100 tenants x 1,000 items, W3 = 1,000 tenants x 100 items; one selection
of three policy types, 40/30/30, page size 100), on a fresh PostgreSQL inventory database and
a Dagster instance from ``deploy/dagster.yaml`` on a fresh PostgreSQL database of its own
(``--instance embedded``: the repo's SQLite ``dagster.yaml``), with every tenant served by the
Graph simulator from a separate process on a loopback port (the registry points
``graph_endpoint``/``login_endpoint`` at it, so the sync and F cross the same sockets):

- F: every page of every tenant fetched with bare httpx (benchmarks/fleet_f.py), before the
  services start and again after they stop; the faster counts;
- UI path: ``dagster-webserver`` and ``dagster-daemon run`` as separate processes, ONE backfill
  of every partition of both inventory assets through the webserver's GraphQL API
  (``launchPartitionBackfill`` with ``allPartitions``, as the UI's Materialize-all sends it),
  waited for until the backfill is done;
- nightly sweep path: ``inventory_nightly_sweep``'s cursor set to yesterday's sweep through
  GraphQL and the sensor started, so the daemon's next evaluation launches the sweep's backfill;
  waited for from the start call until that backfill is done (second syncs: items unchanged);
- Dagster's floor: the same backfill of an empty batched multi-asset (benchmarks/fleet_defs.py)
  at the same batch size, and at the other ``--batch-sizes`` (W3: which default is best);
- the unbatched floor: the empty asset with one run per partition, on ``--unbatched-sample``
  partitions, extrapolated per partition.

The project's code location is ``tenantatlas_pipelines.definitions``, as the repo's
workspace.yaml loads it.
The dynamic partitions are added through the instance before the daemon starts, so the
registry sensor finds every partition known and launches no first syncs of its own.
Prints a table and the targets of issue 11; ``--json`` writes every raw number.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PG_ADMIN_URL,
    PROJECT_ROOT,
    SECRET,
    SECRET_ENV,
    exit_cleanly_on_termination,
    free_port,
    machine_busy_seconds,
    postgres_database,
    run_worker,
    simulator,
    simulator_cpu_seconds,
    tenant_guid,
    write_yaml,
)
from benchmarks.fleet_f import client_guid

SELECTION = "bench"
POLICY_SHARES = {"deviceConfiguration": 0.4, "deviceCompliancePolicy": 0.3, "mobileApp": 0.3}
INVENTORY_ASSETS = ("inventory_items", "inventory_missing_items")
MAIN_LOCATION = "tenantatlas_pipelines"
FLOOR_LOCATION = "fleet_floor"
SWEEP_SENSOR = "inventory_nightly_sweep"
TENANTS_AT_ONCE = 8  # F: as many tenants at once as a run syncs (max_concurrent_partitions)
IN_FLIGHT = 4  # F: requests in flight per tenant, as the client
TARGETS = {"wall_over_f": 20.0, "sweep_over_f": 10.0, "overhead_s": 0.1, "rss_mb": 400.0}


@dataclass(frozen=True)
class FleetWorkload:
    name: str
    tenants: int
    items: int

    def tenant_key(self, index: int) -> str:
        return f"{self.name.lower()}-t{index:04d}"

    @property
    def partitions(self) -> int:
        return self.tenants  # one selection

    def item_counts(self) -> dict[str, int]:
        counts = {key: int(self.items * share) for key, share in POLICY_SHARES.items()}
        counts["deviceConfiguration"] += self.items - sum(counts.values())
        return counts

    def scenario(self) -> dict[str, Any]:
        return {
            "seed": 42,
            "tenants": [
                {
                    "tenant_id": tenant_guid(i),
                    "client_id": client_guid(i),
                    "client_secret": SECRET,
                    "display_name": self.tenant_key(i),
                    "page_size": 100,
                    "item_counts": self.item_counts(),
                    "removed_per_generation": 0.0,
                    "added_per_generation": 0.0,
                    "faults": [],
                }
                for i in range(self.tenants)
            ],
        }

    def registry(self, base: str) -> dict[str, Any]:
        return {
            "selections": {SELECTION: {"policy_types": list(POLICY_SHARES)}},
            "tenants": {
                self.tenant_key(i): {
                    "tenant_id": tenant_guid(i),
                    "client_id": client_guid(i),
                    "client_secret_env": SECRET_ENV,
                    "cloud": "global",
                    "display_name": self.tenant_key(i),
                    "graph_endpoint": base,
                    "login_endpoint": base,
                }
                for i in range(self.tenants)
            },
        }


def say(text: str) -> None:
    print(text, flush=True)


@contextmanager
def plain_database(label: str) -> Iterator[str]:
    """A fresh empty PostgreSQL database (Dagster's storage creates its own tables); dropped after."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"tenantatlas_bench_{os.getpid()}_{label}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def dagster_home(directory: Path, kind: str, label: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """A DAGSTER_HOME with the deployment's dagster.yaml (and its storage database) or the embedded one."""
    from sqlalchemy.engine import make_url

    home = directory / f"dagster-{label}"
    home.mkdir()
    if kind == "embedded":
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        yield home, {"DAGSTER_HOME": str(home)}
        return
    shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with plain_database(f"{label}_dagster") as url:
        parsed = make_url(url)
        yield (
            home,
            {
                "DAGSTER_HOME": str(home),
                "DAGSTER_PG_HOST": parsed.host or "127.0.0.1",
                "DAGSTER_PG_PORT": str(parsed.port or 5432),
                "DAGSTER_PG_DB": parsed.database or "",
                "DAGSTER_PG_USERNAME": parsed.username or "postgres",
                "DAGSTER_PG_PASSWORD": parsed.password or "",
            },
        )


def write_workspace(path: Path) -> Path:
    def location(module: str, name: str) -> dict[str, Any]:
        return {
            "python_module": {
                "module_name": module,
                "attribute": "defs",
                "working_directory": str(PROJECT_ROOT),
                "location_name": name,
            }
        }

    return write_yaml(
        path,
        {
            "load_from": [
                location("tenantatlas_pipelines.definitions", MAIN_LOCATION),
                location("benchmarks.fleet_defs", FLOOR_LOCATION),
            ]
        },
    )


def inventory_counts(url: str) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            statuses: dict[Any, Any] = dict(
                conn.execute(text("SELECT status, count(*) FROM inventory_sync_runs GROUP BY status")).all()
            )
            items = conn.execute(text("SELECT count(*) FROM inventory_items")).scalar_one()
    finally:
        engine.dispose()
    return {"sync_runs": {str(k): int(v) for k, v in statuses.items()}, "items": int(items)}


def measure_f(w: FleetWorkload, base: str) -> dict[str, Any]:
    sim = simulator_cpu_seconds(base)
    result = run_worker(
        "fleet_f",
        {
            "base": base,
            "tenant_count": w.tenants,  # the worker rebuilds them (1,000 would overflow argv)
            "policy_types": list(POLICY_SHARES),
            "tenants_at_once": TENANTS_AT_ONCE,
            "in_flight": IN_FLIGHT,
        },
        timeout=900,
    )
    result["simulator_cpu_seconds"] = simulator_cpu_seconds(base) - sim
    return result


class Deployment:
    """The running webserver + daemon of one workload, and the instance opened here."""

    def __init__(
        self, instance: Any, graphql: Any, services: list[Any], sampler: Any, timeout: float
    ) -> None:
        self.instance, self.graphql, self.services, self.sampler = instance, graphql, services, sampler
        self.timeout = timeout

    def backfill(self, assets: tuple[str, ...], partitions: list[str] | None = None) -> dict[str, Any]:
        from benchmarks.fleet_services import backfill_runs, wait_for_backfill

        self.sampler.reset()
        busy = machine_busy_seconds()
        started = time.time()
        backfill_id = self.graphql.launch_backfill(assets, partitions)
        status = wait_for_backfill(self.instance, backfill_id, self.services, self.timeout)
        return self._result(backfill_id, status, started, busy, backfill_runs(self.instance, backfill_id))

    def sweep(self) -> dict[str, Any]:
        from benchmarks.fleet_services import backfill_runs, wait_for_backfill, wait_for_new_backfill
        from tenantatlas_pipelines.defs.sensors import latest_sweep_tick

        self.sampler.reset()
        known = {b.backfill_id for b in self.instance.get_backfills(limit=1000)}
        yesterday = latest_sweep_tick(_utcnow()) - timedelta(days=1)
        busy = machine_busy_seconds()
        started = time.time()
        self.graphql.start_sensor_with_cursor(MAIN_LOCATION, SWEEP_SENSOR, yesterday.isoformat())
        backfill_id = wait_for_new_backfill(self.instance, known, self.services, self.timeout)
        status = wait_for_backfill(self.instance, backfill_id, self.services, self.timeout)
        return self._result(backfill_id, status, started, busy, backfill_runs(self.instance, backfill_id))

    def _result(
        self, backfill_id: str, status: str, started: float, busy: float, runs: dict[str, Any]
    ) -> dict[str, Any]:
        wall = time.time() - started
        backfill = self.instance.get_backfill(backfill_id)
        created = backfill.backfill_timestamp if backfill else started
        return {
            "backfill_id": backfill_id,
            "status": status,
            "wall_seconds": wall,
            "machine_cpu_seconds": machine_busy_seconds() - busy,
            "to_backfill_created": created - started,
            "to_first_run_start": (runs["first_start"] - started) if runs["first_start"] else None,
            "to_last_run_end": (runs["last_end"] - started) if runs["last_end"] else None,
            "runs": runs["runs"],
            "run_statuses": runs["statuses"],
            "run_seconds_mean": runs["run_seconds_mean"],  # a run's own start to end
            "created_to_started_mean": runs["created_to_started_mean"],  # queued, dequeued, process start
            "peak_run_rss_mb": self.sampler.peak_mb,
            "run_workers_sampled": len(self.sampler.peaks),
        }


def _utcnow() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


@contextmanager
def deployment(
    w: FleetWorkload, directory: Path, env: dict[str, str], partitions: list[str], timeout: float
) -> Iterator[Deployment]:
    import dagster as dg

    from benchmarks.fleet_services import GraphQL, RssSampler, start_daemon, start_webserver
    from tenantatlas_pipelines.defs.partitions import partition_key

    os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_")})
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    instance.add_dynamic_partitions("tenants", [w.tenant_key(i) for i in range(w.tenants)])
    instance.add_dynamic_partitions("selections", [SELECTION])
    assert len(partitions) == w.partitions and str(partition_key(w.tenant_key(0), SELECTION)) in partitions
    workspace = write_workspace(directory / f"workspace-{w.name}.yaml")
    logs = directory / f"logs-{w.name}"
    logs.mkdir()
    services = []
    try:
        port = free_port()
        services.append(start_webserver(workspace, env, logs, port))
        services.append(start_daemon(workspace, env, logs))
        graphql = GraphQL(f"http://127.0.0.1:{port}/graphql")
        started = time.monotonic()
        graphql.wait_ready({MAIN_LOCATION, FLOOR_LOCATION}, services, 300)
        say(f"  webserver and daemon up in {time.monotonic() - started:.0f}s (logs: {logs})")
        with RssSampler(services[1].proc.pid) as sampler:
            yield Deployment(instance, graphql, services, sampler, timeout)
    except BaseException:
        for service in services:
            say(service.tail())
        raise
    finally:
        for service in services:
            service.stop()
        instance.dispose()


def bench_workload(w: FleetWorkload, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.fleet_defs import BATCH_SIZES_ENV, SINGLE_KEY, batched_keys
    from tenantatlas_pipelines.defs.batching import batch_size
    from tenantatlas_pipelines.defs.partitions import partition_key

    size = args.batch_size or batch_size()
    sizes = sorted({size, *(args.batch_sizes if w.name in args.size_sweep else [])})
    partitions = [str(partition_key(w.tenant_key(i), SELECTION)) for i in range(w.tenants)]
    result: dict[str, Any] = {"tenants": w.tenants, "items_per_tenant": w.items, "partitions": w.partitions}
    result["batch_size"] = size
    scenario = write_yaml(directory / f"{w.name}-scenario.yaml", w.scenario())
    with (
        simulator(scenario, directory) as base,
        postgres_database(f"{w.name.lower()}_inventory") as inventory_url,
        dagster_home(directory, args.instance, w.name.lower()) as (_home, dagster_env),
    ):
        registry = write_yaml(directory / f"{w.name}-registry.yaml", w.registry(base))
        say(
            f"{w.name}: {w.tenants} tenants x {w.items:,} items ({w.partitions} partitions), "
            f"simulator at {base}"
        )
        result["F_before"] = f1 = measure_f(w, base)
        say(f"  F (bare httpx): {f1['seconds']:.2f}s, {f1['items']:,} items, {f1['pages']:,} pages")
        env = {
            **os.environ,
            **dagster_env,
            "PYTHONPATH": str(PROJECT_ROOT),
            "TENANTATLAS_DATABASE_URL": inventory_url,
            "TENANTATLAS_REGISTRY": str(registry),
            "TENANTATLAS_STATE_DIR": str(directory / f"state-{w.name}"),
            "TENANTATLAS_BATCH_SIZE": str(size),
            BATCH_SIZES_ENV: ",".join(str(s) for s in sizes),
            SECRET_ENV: SECRET,
        }
        with deployment(w, directory, env, partitions, args.timeout) as dep:
            result["ui"] = r = dep.backfill(INVENTORY_ASSETS)
            result["ui"]["inventory"] = inventory_counts(inventory_url)
            say(_line("UI backfill (real assets)", r) + f"; inventory {result['ui']['inventory']}")
            if w.name not in args.skip_sweep:
                result["sweep"] = r = dep.sweep()
                result["sweep"]["inventory"] = inventory_counts(inventory_url)
                say(_line("nightly sweep (real assets)", r) + f"; inventory {result['sweep']['inventory']}")
            result["floors"] = {}
            for s in sizes:
                result["floors"][str(s)] = r = dep.backfill(batched_keys(s))
                say(_line(f"empty batched floor, batch {s}", r))
            sample = partitions[: min(args.unbatched_sample, len(partitions))]
            result["unbatched"] = r = dep.backfill((SINGLE_KEY,), sample)
            r["sample"] = len(sample)
            say(_line(f"empty unbatched floor, {len(sample)} partitions", r))
        result["F_after"] = f2 = measure_f(w, base)
        say(f"  F again: {f2['seconds']:.2f}s")
    result["F"] = min((f1, f2), key=lambda f: f["seconds"])
    return result


def _line(name: str, r: dict[str, Any]) -> str:
    last = r["to_last_run_end"]
    return (
        f"  {name}: {r['wall_seconds']:.1f}s ({r['status']}), {r['runs']} runs {r['run_statuses']}, "
        f"last run ended at {last:.1f}s, peak run RSS {r['peak_run_rss_mb']:.0f} MB"
        if last is not None
        else f"  {name}: {r['wall_seconds']:.1f}s ({r['status']}), {r['runs']} runs"
    )


def _row(name: str, value: str, target: str, ok: bool | None) -> tuple[str, str, str, str]:
    return (name, value, target, "n/a" if ok is None else ("PASS" if ok else "FAIL"))


def summary(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for name, w in results["workloads"].items():
        f, p, size = w["F"]["seconds"], w["partitions"], w["batch_size"]
        ui = w["ui"]
        rows.append(
            _row(
                f"{name} backfill wall / F",
                f"{ui['wall_seconds'] / f:.1f} ({ui['wall_seconds']:.1f}s / {f:.2f}s)",
                f"<= {TARGETS['wall_over_f']:g}",
                ui["wall_seconds"] / f <= TARGETS["wall_over_f"],
            )
        )
        sweep = w.get("sweep")
        if sweep:
            ratio = sweep["wall_seconds"] / f
            rows.append(
                _row(
                    f"{name} nightly sweep wall / F",
                    f"{ratio:.1f} ({sweep['wall_seconds']:.1f}s / {f:.2f}s)",
                    f"<= {TARGETS['sweep_over_f']:g}" if name == "W2" else "report",
                    ratio <= TARGETS["sweep_over_f"] if name == "W2" else None,
                )
            )
        overhead = (ui["wall_seconds"] - f) / p
        rows.append(
            _row(
                f"{name} per-partition overhead (wall - F) / P",
                f"{overhead:.3f}s",
                f"<= {TARGETS['overhead_s']:g}s" if name == "W3" else "report",
                overhead <= TARGETS["overhead_s"] if name == "W3" else None,
            )
        )
        floor = w["floors"][str(size)]
        rows.append(
            _row(
                f"{name} empty batched floor / P",
                f"{floor['wall_seconds'] / p:.3f}s ({floor['wall_seconds']:.1f}s, {floor['runs']} runs)",
                "report",
                None,
            )
        )
        unb = w["unbatched"]
        rows.append(
            _row(
                f"{name} empty unbatched floor / P",
                f"{unb['wall_seconds'] / unb['sample']:.3f}s "
                f"({unb['wall_seconds']:.1f}s for {unb['sample']} partitions; x {p} = "
                f"{unb['wall_seconds'] / unb['sample'] * p:.0f}s)",
                "report",
                None,
            )
        )
        for label, r in (("backfill", ui), ("sweep", sweep)):
            if r:
                bound = math.ceil(p / size) + 1
                rows.append(
                    _row(
                        f"{name} {label} runs launched",
                        f"{r['runs']} for {p} partitions, batch {size}",
                        f"<= {bound}",
                        r["runs"] <= bound,
                    )
                )
        rss = max(ui["peak_run_rss_mb"], (sweep or ui)["peak_run_rss_mb"])
        rows.append(
            _row(
                f"{name} peak RSS of one batch run",
                f"{rss:.0f} MB",
                f"<= {TARGETS['rss_mb']:g} MB",
                rss <= TARGETS["rss_mb"],
            )
        )
    return rows


def print_tables(results: dict[str, Any]) -> None:
    say("\nfleet (seconds from launch; 'last run end' excludes the daemon noticing the backfill is done)")
    header = (
        "workload",
        "path",
        "wall s",
        "last run end s",
        "runs",
        "per partition s",
        "peak run RSS MB",
        "machine CPU s",
    )
    lines: list[tuple[str, ...]] = [header]
    for name, w in results["workloads"].items():
        p = w["partitions"]
        lines.append(
            (
                name,
                "F: bare httpx",
                f"{w['F']['seconds']:.2f}",
                "-",
                "-",
                f"{w['F']['seconds'] / p:.4f}",
                "-",
                f"{w['F']['machine_cpu_seconds']:.1f}",
            )
        )
        paths = [("UI backfill", w["ui"], p), ("nightly sweep", w.get("sweep"), p)]
        paths += [(f"empty batched b{s}", r, p) for s, r in w["floors"].items()]
        paths.append(
            (f"empty unbatched ({w['unbatched']['sample']})", w["unbatched"], w["unbatched"]["sample"])
        )
        for label, r, n in paths:
            if not r:
                continue
            last = r["to_last_run_end"]
            lines.append(
                (
                    name,
                    label,
                    f"{r['wall_seconds']:.1f}",
                    f"{last:.1f}" if last is not None else "-",
                    str(r["runs"]),
                    f"{r['wall_seconds'] / n:.3f}",
                    f"{r['peak_run_rss_mb']:.0f}",
                    f"{r['machine_cpu_seconds']:.1f}",
                )
            )
    _print(lines)
    say("\nsummary")
    _print([("measure", "value", "target", "verdict"), *summary(results)])


def _print(lines: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        say("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fleet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="W2 = 10 x 1,000, W3 = 60 x 100 (a few minutes)")
    parser.add_argument("--only", choices=["W2", "W3"], action="append", help="run only this workload")
    parser.add_argument(
        "--instance",
        choices=["deploy", "embedded"],
        default="deploy",
        help="deploy/dagster.yaml on PostgreSQL (default) or the embedded SQLite instance",
    )
    parser.add_argument(
        "--batch-size", type=int, help="TENANTATLAS_BATCH_SIZE for the run (default: the project's)"
    )
    parser.add_argument(
        "--batch-sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[25, 50, 100],
        help="empty-floor batch sizes to compare (default 25,50,100)",
    )
    parser.add_argument(
        "--size-sweep", action="append", default=None, help="workloads that compare batch sizes (W3)"
    )
    parser.add_argument(
        "--skip-sweep", action="append", default=[], help="workloads without the nightly sweep path"
    )
    parser.add_argument("--unbatched-sample", type=int, default=100, help="partitions of the unbatched floor")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds any one backfill may take")
    parser.add_argument("--json", type=Path, help="also write every raw result to this file")
    args = parser.parse_args(argv)
    args.size_sweep = args.size_sweep or ["W3"]
    return args


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every workload of ``args``; the raw results (``summary`` turns them into the target rows)."""
    workloads = [
        FleetWorkload("W2", 10 if args.quick else 100, 1_000),
        FleetWorkload("W3", 60 if args.quick else 1_000, 100),
    ]
    if args.only:
        workloads = [w for w in workloads if w.name in args.only]
    results: dict[str, Any] = {"cpus": os.cpu_count(), "instance": args.instance, "workloads": {}}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tenantatlas-fleet-") as tmp:
        for w in workloads:
            results["workloads"][w.name] = bench_workload(w, Path(tmp), args)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2, default=str))
    results["total_seconds"] = time.monotonic() - started
    return results


def main(argv: list[str] | None = None) -> int:
    exit_cleanly_on_termination()
    args = parse_args(argv)
    results = run_all(args)
    print_tables(results)
    say(f"\n{os.cpu_count()} CPUs; Dagster instance: {args.instance}; total {results['total_seconds']:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
