"""``python -m benchmarks.run [--quick]``: every workload and limit of issue 5, then a summary table.

Each measurement runs in a child process of its own (its own peak RSS); the Graph
simulator serves from a separate process on a loopback port; each PostgreSQL
measurement gets a fresh database (dropped afterwards). See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import fingerprint_cost, fleet
from benchmarks.common import (
    PROJECT_ROOT,
    SECRET,
    SECRET_ENV,
    Workload,
    exit_cleanly_on_termination,
    postgres_database,
    run_worker,
    simulator,
    simulator_cpu_seconds,
    sqlite_database,
    tenant_guid,
    write_yaml,
)


def _instance_home(directory: Path, name: str) -> Path:
    home = directory / f"dagster-{name}"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def _say(text: str) -> None:
    print(text, flush=True)


def _say_methods(database: str, d: dict[str, Any]) -> None:
    for name, m in d["methods"].items():
        first, reload = m["first_seconds"], m["reload_seconds"]
        _say(f"  limit D ({database}, {name}): first {first:.1f}s, reload {reload:.1f}s")
    _say(f"  limit D ({database}): the best first load is {d['first_method']}, reload {d['reload_method']}")


def _sync_env(home: Path, url: str, registry: Path) -> dict[str, str]:
    return {
        "DAGSTER_HOME": str(home),
        "TENANTATLAS_DATABASE_URL": url,
        "TENANTATLAS_REGISTRY": str(registry),
        SECRET_ENV: SECRET,
    }


def bench_w1(w1: Workload, directory: Path, results: dict[str, Any], profile: bool) -> None:
    scenario = write_yaml(directory / "w1-scenario.yaml", w1.scenario())
    tenant = w1.tenant_key(0)
    with simulator(scenario, directory) as base:
        registry = write_yaml(directory / "w1-registry.yaml", w1.registry(base))
        _say(f"W1 ({w1.items:,} items) served by the simulator at {base}")
        sim = simulator_cpu_seconds(base)
        results["F"] = run_worker(
            "limit_f",
            {"base": base, "tenant_id": tenant_guid(0), "client_id": tenant_guid(10_000), "secret": SECRET},
        )
        results["F"]["simulator_cpu_seconds"] = simulator_cpu_seconds(base) - sim
        _say(
            f"  limit F (httpx list + parse): {results['F']['seconds']:.1f}s, "
            f"{results['F']['items_per_s']:,.0f} items/s"
        )
        limit_args = {"scenario": str(scenario), "tenant_id": tenant_guid(0)}
        with postgres_database("limit_d") as url:
            results["D"] = run_worker("limit_d", {**limit_args, "url": url})
        _say_methods("PostgreSQL", results["D"])
        results["D_sqlite"] = run_worker(
            "limit_d", {**limit_args, "url": sqlite_database(directory, "limit_d")}
        )
        _say_methods("SQLite", results["D_sqlite"])
        with postgres_database("w1") as url:
            env = _sync_env(_instance_home(directory, "w1-pg"), url, registry)
            results["empty"] = run_worker("sync_w1", {"tenant": tenant, "empty": True}, env)
            _say(f"  empty asset (Dagster's fixed cost): {results['empty']['wall_seconds']:.2f}s")
            for label in ("first", "second"):
                sim = simulator_cpu_seconds(base)
                results[f"pg_{label}"] = run_worker("sync_w1", {"tenant": tenant}, env)
                results[f"pg_{label}"]["simulator_cpu_seconds"] = simulator_cpu_seconds(base) - sim
                r = results[f"pg_{label}"]
                _say(
                    f"  W1 sync PostgreSQL {label}: body {r['body_seconds']:.1f}s, "
                    f"wall {r['wall_seconds']:.1f}s, "
                    f"{r['items_per_s']:,.0f} items/s, peak RSS {r['peak_rss_mb']:.0f} MB, "
                    f"WAL {r['wal_mb']:.0f} MB ({1e6 * r['wal_mb'] / r['stored']:,.0f} bytes per item)"
                )
            results["missing_w1"] = run_worker(
                "missing", {"url": url, "registry": str(registry), "tenant": tenant}
            )
            _say(
                f"  missing derivation W1: {results['missing_w1']['seconds']:.2f}s "
                f"({results['missing_w1']['missing']:,} missing)"
            )
        if profile:  # extra runs: the profiler slows what it watches, so it never runs in a measured one
            with postgres_database("w1_profile") as url:
                env = _sync_env(_instance_home(directory, "w1-profile"), url, registry)
                for label in ("first", "second"):
                    out = directory / f"profile-w1-pg-{label}.txt"
                    run_worker("sync_w1", {"tenant": tenant, "profile": str(out)}, env)
                    _say(f"  profile of the W1 {label} sync: benchmarks/profiles/{out.name}")
        url = sqlite_database(directory, "w1")
        env = _sync_env(_instance_home(directory, "w1-sqlite"), url, registry)
        for label in ("first", "second"):
            results[f"sqlite_{label}"] = run_worker("sync_w1", {"tenant": tenant}, env)
            r = results[f"sqlite_{label}"]
            _say(f"  W1 sync SQLite {label}: body {r['body_seconds']:.1f}s, wall {r['wall_seconds']:.1f}s")


def bench_w1x10(w: Workload, directory: Path, results: dict[str, Any]) -> None:
    scenario = write_yaml(directory / "w1x10-scenario.yaml", w.scenario())
    tenant = w.tenant_key(0)
    with simulator(scenario, directory) as base, postgres_database("w1x10") as url:
        registry = write_yaml(directory / "w1x10-registry.yaml", w.registry(base))
        _say(f"W1x10 ({w.items:,} items) served by the simulator at {base}")
        env = _sync_env(_instance_home(directory, "w1x10"), url, registry)
        results["x10"] = r = run_worker("sync_w1", {"tenant": tenant}, env, timeout=3600)
        _say(f"  W1x10 sync PostgreSQL: body {r['body_seconds']:.1f}s, peak RSS {r['peak_rss_mb']:.0f} MB")
        results["missing_x10"] = run_worker(
            "missing", {"url": url, "registry": str(registry), "tenant": tenant}
        )
        _say(
            f"  missing derivation W1x10: {results['missing_x10']['seconds']:.2f}s "
            f"({results['missing_x10']['missing']:,} missing)"
        )


def bench_w2(w: Workload, directory: Path, results: dict[str, Any]) -> None:
    scenario = write_yaml(directory / "w2-scenario.yaml", w.scenario())
    with simulator(scenario, directory) as base, postgres_database("w2") as url:
        registry = write_yaml(directory / "w2-registry.yaml", w.registry(base))
        _say(f"W2 ({w.tenants} tenants x {w.items:,} items) served by the simulator at {base}")
        tenants = [w.tenant_key(i) for i in range(w.tenants)]
        for label, empty in (("w2_empty", True), ("w2", False)):
            env = _sync_env(_instance_home(directory, label), url, registry)
            results[label] = r = run_worker(
                "w2_queue",
                {"tenants": tenants, "empty": empty, "home": env["DAGSTER_HOME"]},
                env,
                timeout=3600,
            )
            _say(
                f"  {label}: {r['runs']} runs through the queue and the daemon "
                f"in {r['wall_seconds']:.1f}s ({r.get('status')})"
            )


def _row(name: str, value: str, target: str, ok: bool | None) -> tuple[str, str, str, str]:
    verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
    return (name, value, target, verdict)


def _ratio_row(name: str, value: float, floor: float, unit: str, bound: float) -> tuple[str, str, str, str]:
    """``value / floor`` against ``bound``, with both numbers shown."""
    ratio = value / floor
    return _row(name, f"{ratio:.2f} ({value:.2f}{unit} / {floor:.2f}{unit})", f"<= {bound:g}", ratio <= bound)


def _cpu_rows(
    results: dict[str, Any], f: dict[str, Any], d: dict[str, Any]
) -> list[tuple[str, str, str, str]]:
    """What the cores allow: F and D share them, so the sync cannot beat their CPU-seconds / cores."""
    cores = results["cpus"]
    f_cpu, d_cpu = f["machine_cpu_seconds"], d["first_machine_cpu_seconds"]
    sim = f.get("simulator_cpu_seconds", 0.0)
    floor = max(f["seconds"], d["first_seconds"])
    rows = [
        _row(
            "W1 CPU floor: (F + D CPU-s) / cores",
            f"{(f_cpu + d_cpu) / cores:.1f}s (({f_cpu:.1f} + {d_cpu:.1f}) / {cores}, "
            f"simulator {sim:.1f} of F); "
            f"1.5 x max(F, D) = {1.5 * floor:.1f}s",
            "report",
            None,
        )
    ]
    for label in ("first", "second"):
        r = results.get(f"pg_{label}")
        if r:
            used = r["machine_cpu_seconds"]
            rows.append(
                _row(
                    f"W1 {label} sync: machine CPU-s / cores",
                    f"{used / cores:.1f}s ({used:.1f} / {cores}; ours {r['own_cpu_seconds']:.1f} "
                    f"in one process, simulator {r.get('simulator_cpu_seconds', 0.0):.1f})",
                    "report",
                    None,
                )
            )
    return rows


def summary(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    f, d = results.get("F"), results.get("D")
    if f and d:
        empty = results["empty"]["wall_seconds"]
        for label, floor_key in (("first", "first_seconds"), ("second", "reload_seconds")):
            r = results.get(f"pg_{label}")
            if not r:
                continue
            floor = max(f["seconds"], d[floor_key])
            ratio = r["body_seconds"] / floor
            rows.append(
                _row(
                    f"W1 {label} sync (PostgreSQL) / max(F, D)",
                    f"{ratio:.2f} ({r['body_seconds']:.1f}s / {floor:.1f}s); wall {r['wall_seconds']:.1f}s - "
                    f"Dagster {empty:.1f}s = {r['wall_seconds'] - empty:.1f}s",
                    "<= 1.5",
                    ratio <= 1.5,
                )
            )
        rows.extend(_cpu_rows(results, f, d))
        for label in ("first", "second"):
            r = results.get(f"sqlite_{label}")
            if r:
                rows.append(
                    _row(
                        f"W1 {label} sync (SQLite)",
                        f"{r['body_seconds']:.1f}s, {r['items_per_s']:,.0f} items/s",
                        "report",
                        None,
                    )
                )
    first = results.get("pg_first")
    if first:
        rss = max(first["peak_rss_mb"], results.get("pg_second", first)["peak_rss_mb"])
        rows.append(_row("W1 sync peak RSS", f"{rss:.0f} MB", "<= 300 MB", rss <= 300))
        x10 = results.get("x10")
        if x10:
            rows.append(
                _ratio_row("W1x10 / W1 peak RSS", x10["peak_rss_mb"], first["peak_rss_mb"], " MB", 1.25)
            )
    m1, m10 = results.get("missing_w1"), results.get("missing_x10")
    if m1 and m10:
        rows.append(_ratio_row("missing W1x10 / W1", m10["seconds"], m1["seconds"], "s", 12))
    w2, w2e = results.get("w2"), results.get("w2_empty")
    if w2 and w2e:
        rows.append(
            _ratio_row("W2 / empty-asset queue floor", w2["wall_seconds"], w2e["wall_seconds"], "s", 1.5)
        )
    elif "w2_error" in results:
        rows.append(
            _row("W2 / empty-asset queue floor", f"not measured: {results['w2_error']}", "<= 1.5", None)
        )
    if "fingerprint" in results:
        rows.extend(fingerprint_cost.summary(results["fingerprint"]))
    if "fleet" in results:
        rows.extend(fleet.summary(results["fleet"]))
    elif "fleet_error" in results:
        rows.append(_row("fleet sweep", f"not measured: {results['fleet_error']}", "see fleet.py", None))
    return rows


SYNC_ROWS = (
    ("pg_first", "sync PostgreSQL first (body)"),
    ("pg_second", "sync PostgreSQL second (body)"),
    ("sqlite_first", "sync SQLite first (body)"),
    ("sqlite_second", "sync SQLite second (body)"),
    ("x10", "sync W1x10 PostgreSQL (body)"),
)


def print_table(results: dict[str, Any]) -> None:
    f, d, dl = results.get("F"), results.get("D"), results.get("D_sqlite")
    _say("\nside by side (W1)")
    lines = []
    if f:
        lines.append(
            (
                "limit F: httpx list + parse",
                f["seconds"],
                f["items"] / f["seconds"],
                f["peak_rss_mb"],
                f.get("machine_cpu_seconds"),
            )
        )
    for database, limit in (("PostgreSQL", d), ("SQLite", dl)):
        if not limit:
            continue
        for method, m in limit["methods"].items():
            n = limit["items"]
            for label, key in (("first load", "first"), ("reload", "reload")):
                best = " (best)" if limit[f"{key}_method"] == method else ""
                lines.append(
                    (
                        f"limit D: {database} {method}, {label}{best}",
                        m[f"{key}_seconds"],
                        n / m[f"{key}_seconds"],
                        limit["peak_rss_mb"],
                        m.get(f"{key}_machine_cpu_seconds"),
                    )
                )
    for key, name in SYNC_ROWS:
        r = results.get(key)
        if r:
            lines.append(
                (name, r["body_seconds"], r["items_per_s"], r["peak_rss_mb"], r.get("machine_cpu_seconds"))
            )
    width = max((len(line[0]) for line in lines), default=34)
    _say(f"{'':{width}} {'seconds':>8} {'items/s':>9} {'peak RSS MB':>12} {'machine CPU s':>14}")
    for name, seconds, rate, rss, cpu in lines:
        cpu_text = f"{cpu:14.1f}" if cpu is not None else f"{'-':>14}"
        _say(f"{name:{width}} {seconds:8.1f} {rate:9,.0f} {rss:12.0f} {cpu_text}")
    _say("\nsummary")
    rows = summary(results)
    widths = [max(len(r[i]) for r in rows) if rows else 10 for i in range(4)]
    for r in [("measure", "value", "target", "verdict"), *rows]:
        _say("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)))


def main(argv: list[str] | None = None) -> int:
    exit_cleanly_on_termination()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="W1 20k items, W1x10 200k, W2 20 x 1,000 (a few minutes)"
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["w1x10", "w2", "fleet", "fingerprint"],
        help="leave a workload out",
    )
    parser.add_argument(
        "--profile", action="store_true", help="pyinstrument profiles of the W1 PostgreSQL syncs"
    )
    parser.add_argument("--json", type=Path, help="also write every raw result to this file")
    args = parser.parse_args(argv)
    w1 = Workload("W1", 1, 20_000 if args.quick else 100_000)
    w1x10 = Workload("W1x10", 1, w1.items * 10)
    w2 = Workload("W2", 20 if args.quick else 100, 1_000)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "quick": args.quick}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tenantatlas-bench-") as tmp:
        directory = Path(tmp)
        bench_w1(w1, directory, results, args.profile)
        if "fingerprint" not in args.skip:  # W1 with and without content fingerprints (issue 12)
            results["fingerprint"] = fingerprint_cost.bench(w1, directory, say=_say)
        if "w1x10" not in args.skip:
            bench_w1x10(w1x10, directory, results)
        if "w2" not in args.skip:
            try:
                bench_w2(w2, directory, results)
            except Exception as exc:  # noqa: BLE001 - reported in the summary, the rest stands
                results["w2_error"] = f"{type(exc).__name__}: {str(exc)[-300:]}"
        if "fleet" not in args.skip:  # the fleet sweep (benchmarks/fleet.py), last: its own processes
            try:
                results["fleet"] = fleet.run_all(fleet.parse_args(["--quick"] if args.quick else []))
            except Exception as exc:  # noqa: BLE001 - reported in the summary, the rest stands
                results["fleet_error"] = f"{type(exc).__name__}: {str(exc)[-300:]}"
        if args.profile:
            for path in directory.glob("profile-*"):
                shutil.copy(path, PROJECT_ROOT / "benchmarks" / "profiles" / path.name)
    results["total_seconds"] = time.monotonic() - started
    print_table(results)
    _say(f"\n{os.cpu_count()} CPUs; total {results['total_seconds']:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
