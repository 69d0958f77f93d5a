"""What content fingerprints cost W1: the sync with them against the sync with a constant hash.

``python -m benchmarks.fingerprint_cost [--quick] [--runs N]`` (also part of ``benchmarks.run``).

Issue 12's target: W1 with fingerprints within 5% of W1 without, in one run. Both variants run
here on the same machine state, against one simulator process: ``runs`` syncs each, in
alternating order (with/without, then without/with, ...), each a first sync of W1 through a
Dagster materialisation (``sync_w1.work``) into a fresh PostgreSQL database, in a child process
of its own. "Without" replaces ``content_hash`` (where the sync and ``normalize_item`` call
it) by a constant 64-character hex string inside that child process only (every row still
carries a hash of the same size, so the database writes the same bytes); production has no
such switch. The ratio is the median body time with / the median without (and the median of
each round's own ratio); each child checks what it stored (one distinct hash without, one per
item with) so a patch that did not take is seen.

The syncs of one variant spread by 10-30% on a shared 2-core machine, more than the target, so
each sync with fingerprints also measures the hashing's own thread CPU (``_fingerprints``, timed
once per page): our CPU / (our CPU - the hashing) is the same comparison made inside one sync,
where the machine's speed changes both terms alike. Before each sync PostgreSQL writes its dirty
pages (``CHECKPOINT``), so no sync pays for the previous one's.

``parts_runs`` more syncs ("parts") hash each page in three timed passes (the left-out check,
orjson's sorted dump, sha256; the same hashes): what each part costs inside a running sync, and
the in-sync ratio if the hash were only the two parts the contract fixes (section 5b).

A microbenchmark in a child process of its own gives the per-item cost of ``content_hash``, of
its parts (the left-out check, orjson's sorted dump, sha256) and of ``normalize_item`` with and
without it, over every W1 item as the client parses it (orjson), best of 5 (process CPU).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import (
    PROJECT_ROOT,
    SECRET,
    SECRET_ENV,
    Workload,
    exit_cleanly_on_termination,
    postgres_database,
    run_worker,
    simulator,
    write_yaml,
)

TARGET = 1.05  # issue 12: with fingerprints / without
CONSTANT_HASH = "0" * 64


def work(args: dict[str, Any]) -> dict[str, Any]:
    """Child process: ``mode`` "micro" (per-item costs) or "sync" (one W1 sync, ``variant``).

    Variants: "with" (production, the hashing timed per page), "without" (a constant hash) and
    "parts" (the hashing done in three passes per page, each timed: the left-out check, the
    sorted dump and sha256; the same hashes as production).
    """
    if args["mode"] == "micro":
        return micro(args["scenario"])
    from sqlalchemy import create_engine, text

    import tenantatlas_pipelines.inventory.normalize as normalize
    import tenantatlas_pipelines.sync.service as service
    from benchmarks import sync_w1

    hashing = [0.0]  # thread CPU seconds inside the sync's per-page fingerprinting
    parts = [0.0, 0.0, 0.0]  # "parts": the left-out check, the sorted dump, sha256
    variant = args["variant"]
    if variant == "without":
        for module in (normalize, service):  # the sync hashes as pages arrive; normalize_item otherwise
            setattr(module, "content_hash", lambda policy_type, raw: CONSTANT_HASH)  # noqa: B010 - this process only
    else:
        per_page = _in_parts(parts) if variant == "parts" else service._fingerprints

        def timed(policy_type: Any, raw_items: Any) -> Any:
            started = time.thread_time()  # once per page: its own cost is ~1 us a page
            try:
                return per_page(policy_type, raw_items)
            finally:
                hashing[0] += time.thread_time() - started

        setattr(service, "_fingerprints", timed)  # noqa: B010 - this process only
    out = sync_w1.work({"tenant": args["tenant"], "profile": args.get("profile")})
    out["hash_cpu_seconds"] = hashing[0]
    out["part_cpu_seconds"] = parts
    engine = create_engine(args["url"])
    with engine.connect() as conn:
        out["distinct_hashes"] = int(
            conn.execute(text("SELECT count(DISTINCT content_hash) FROM inventory_items")).scalar_one()
        )
    engine.dispose()
    return out


def _in_parts(parts: list[float]) -> Callable[[Any, list[Any]], list[str | None]]:
    """A page's hashes as ``content_hash`` makes them, in three timed passes (thread CPU)."""
    from tenantatlas_pipelines.inventory.fingerprint import canonical_json, fingerprint_source

    def per_page(policy_type: Any, raw_items: list[Any]) -> list[str | None]:
        key = policy_type.key
        started = time.thread_time()
        sources = [fingerprint_source(key, raw) if isinstance(raw, dict) else None for raw in raw_items]
        left_out = time.thread_time()
        dumped = [canonical_json(source) if source is not None else None for source in sources]
        dumps = time.thread_time()
        hashes = [hashlib.sha256(data).hexdigest() if data is not None else None for data in dumped]
        parts[0] += left_out - started
        parts[1] += dumps - left_out
        parts[2] += time.thread_time() - dumps
        return hashes

    return per_page


def _w1_items(scenario_file: str) -> list[tuple[Any, dict[str, Any]]]:
    """Every W1 item as the Graph client hands it to normalisation (served JSON parsed by orjson)."""
    from tenantatlas_pipelines.inventory.catalog import CATALOG
    from tenantatlas_pipelines.simulator.scenario import Scenario, items_for

    scenario = Scenario.from_yaml(scenario_file)
    tenant = scenario.tenants[0]
    out = []
    for key, policy_type in CATALOG.items():
        # with the sync's $select (mobileApp: no base64 icon), as the simulator serves the sync
        for served in items_for(scenario, tenant, key, 1, as_synced=True):
            out.append((policy_type, orjson.loads(orjson.dumps(served))))
    return out


def _per_item_us(items: list[tuple[Any, Any]], f: Callable[[Any, Any], object]) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for policy_type, raw in items:
            f(policy_type, raw)
        best = min(best, time.process_time() - started)
    return 1e6 * best / len(items)


def micro(scenario_file: str) -> dict[str, Any]:
    """Per-item microseconds of the fingerprint, its parts and ``normalize_item`` with and without it."""
    import tenantatlas_pipelines.inventory.normalize as normalize
    from tenantatlas_pipelines.inventory.fingerprint import content_hash, fingerprint_source

    items = _w1_items(scenario_file)
    sources = [(policy_type, fingerprint_source(policy_type.key, raw)) for policy_type, raw in items]
    dumped = [
        (policy_type, orjson.dumps(source, option=orjson.OPT_SORT_KEYS)) for policy_type, source in sources
    ]
    out: dict[str, Any] = {
        "items": len(items),
        "canonical_bytes_per_item": sum(len(b) for _, b in dumped) / len(dumped),
        "content_hash_us": _per_item_us(items, lambda pt, raw: content_hash(pt.key, raw)),
        "left_out_check_us": _per_item_us(items, lambda pt, raw: fingerprint_source(pt.key, raw)),
        "sorted_dump_us": _per_item_us(
            sources, lambda pt, src: orjson.dumps(src, option=orjson.OPT_SORT_KEYS)
        ),
        "sha256_us": _per_item_us(dumped, lambda pt, data: hashlib.sha256(data).hexdigest()),
        "loop_us": _per_item_us(items, lambda pt, raw: None),
        "normalize_item_us": _per_item_us(items, normalize.normalize_item),
    }
    real = getattr(normalize, "content_hash")  # noqa: B009 - the name normalize calls
    setattr(normalize, "content_hash", lambda policy_type, raw: CONSTANT_HASH)  # noqa: B010 - this process only
    try:
        out["normalize_item_constant_us"] = _per_item_us(items, normalize.normalize_item)
    finally:
        setattr(normalize, "content_hash", real)  # noqa: B010
    return out


def _env(directory: Path, label: str, url: str, registry: Path) -> dict[str, str]:
    home = directory / f"dagster-fp-{label}"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return {
        "DAGSTER_HOME": str(home),
        "TENANTATLAS_DATABASE_URL": url,
        "TENANTATLAS_REGISTRY": str(registry),
        SECRET_ENV: SECRET,
    }


def _orders(runs: int) -> Iterable[tuple[int, tuple[str, str]]]:
    """(round, the two variants in order): with/without, then without/with, ..."""
    for index in range(runs):
        yield index, (("with", "without") if index % 2 == 0 else ("without", "with"))


def bench(
    w1: Workload, directory: Path, runs: int = 5, say: Callable[[str], None] = print, parts_runs: int = 2
) -> dict[str, Any]:
    """Both variants ``runs`` times each against one simulator, then ``parts_runs`` syncs "parts"."""
    scenario = write_yaml(directory / "fp-scenario.yaml", w1.scenario())
    tenant = w1.tenant_key(0)
    out: dict[str, Any] = {"items": w1.items, "runs": runs, "with": [], "without": [], "parts": []}
    out["micro"] = m = run_worker("fingerprint_cost", {"mode": "micro", "scenario": str(scenario)})
    say(
        f"  fingerprint per item: content_hash {m['content_hash_us']:.2f} us (left-out check "
        f"{m['left_out_check_us']:.2f}, sorted dump {m['sorted_dump_us']:.2f}, sha256 {m['sha256_us']:.2f} "
        f"of {m['canonical_bytes_per_item']:,.0f} bytes); normalize_item {m['normalize_item_us']:.2f} us, "
        f"{m['normalize_item_constant_us']:.2f} us with a constant hash"
    )
    syncs = [(index, variant) for index, order in _orders(runs) for variant in order]
    syncs += [(runs + index, "parts") for index in range(parts_runs)]
    with simulator(scenario, directory) as base:
        registry = write_yaml(directory / "fp-registry.yaml", w1.registry(base))
        for index, variant in syncs:
            label = f"{index}_{variant}"
            # without the checkpoint the syncs of one variant spread by up to 45% on a quiet machine
            with postgres_database(f"fp_{label}", checkpoint=True) as url:
                env = _env(directory, label, url, registry)
                args = {"mode": "sync", "tenant": tenant, "variant": variant, "url": url}
                r = run_worker("fingerprint_cost", args, env)
            expected = 1 if variant == "without" else r["stored"]
            if r["stored"] != w1.items or r["distinct_hashes"] != expected:
                raise RuntimeError(
                    f"fingerprint benchmark {label}: stored {r['stored']} items with "
                    f"{r['distinct_hashes']} distinct hashes (expected {w1.items} and {expected})"
                )
            out[variant].append(r)
            hashing = "" if variant == "without" else f" (hashing {r['hash_cpu_seconds']:.2f}s)"
            if variant == "parts":
                hashing += " = " + " + ".join(f"{x:.2f}s" for x in r["part_cpu_seconds"])
            say(
                f"  W1 {variant} fingerprints (sync {index + 1}): "
                f"body {r['body_seconds']:.2f}s, our CPU {r['own_cpu_seconds']:.2f}s{hashing}, "
                f"machine CPU {r['machine_cpu_seconds']:.1f}s"
            )
    for key in ("body_seconds", "own_cpu_seconds", "machine_cpu_seconds"):
        for variant in ("with", "without"):
            out[f"{variant}_{key}"] = statistics.median(r[key] for r in out[variant])
    out["ratio"] = out["with_body_seconds"] / out["without_body_seconds"]
    # each round's two syncs ran back to back: their ratio cancels the machine's slower drifts
    out["paired_ratios"] = [
        w["body_seconds"] / wo["body_seconds"] for w, wo in zip(out["with"], out["without"], strict=True)
    ]
    out["paired_ratio"] = statistics.median(out["paired_ratios"])
    out["cpu_ratio"] = out["with_own_cpu_seconds"] / out["without_own_cpu_seconds"]
    # within each sync with fingerprints: our CPU / our CPU without the hashing's share. Both
    # are measured in the same sync, so the machine's speed changes them alike
    out["in_sync_ratios"] = [
        r["own_cpu_seconds"] / (r["own_cpu_seconds"] - r["hash_cpu_seconds"]) for r in out["with"]
    ]
    out["in_sync_ratio"] = statistics.median(out["in_sync_ratios"])
    out["hash_us_per_item"] = 1e6 * statistics.median(r["hash_cpu_seconds"] for r in out["with"]) / w1.items
    if out["parts"]:
        # in a sync hashing in three passes: each part per item, and the ratio our CPU would have
        # if the hash were only what the contract fixes (the sorted dump and sha256)
        out["parts_us_per_item"] = [
            1e6 * statistics.median(r["part_cpu_seconds"][part] for r in out["parts"]) / w1.items
            for part in range(3)
        ]
        out["contract_floor_ratio"] = statistics.median(
            (base + sum(r["part_cpu_seconds"][1:])) / base
            for r in out["parts"]
            if (base := r["own_cpu_seconds"] - r["hash_cpu_seconds"]) > 0
        )
    return out


def summary(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The summary row of ``benchmarks.run``: the body-time ratio against the target."""
    with_s, without_s = r["with_body_seconds"], r["without_body_seconds"]
    value = (
        f"{r['ratio']:.3f} ({with_s:.2f}s / {without_s:.2f}s, median of {r['runs']}); "
        f"median of the rounds' ratios {r['paired_ratio']:.3f}; our CPU {r['cpu_ratio']:.3f}"
    )
    in_sync = (
        f"{r['in_sync_ratio']:.3f} (hashing {r['hash_us_per_item']:.1f} us of thread CPU per item in the "
        f"sync; {r['micro']['content_hash_us']:.1f} us alone)"
    )
    rows = [
        ("W1 with / without fingerprints (PostgreSQL)", value, f"<= {TARGET:g}", _verdict(r["ratio"])),
        (
            "W1 our CPU / our CPU minus the hashing (same sync)",
            in_sync,
            f"<= {TARGET:g}",
            _verdict(r["in_sync_ratio"]),
        ),
    ]
    if "contract_floor_ratio" in r:
        left_out, dump, sha = r["parts_us_per_item"]
        floor = (
            f"{r['contract_floor_ratio']:.3f} (in the sync, per item: sorted dump {dump:.1f} us + sha256 "
            f"{sha:.1f} us; the left-out check {left_out:.1f} us left out)"
        )
        rows.append(
            (
                "W1 our CPU / minus the hashing, counting only its sorted dump and sha256",
                floor,
                f"<= {TARGET:g}",
                _verdict(r["contract_floor_ratio"]),
            )
        )
    return rows


def _verdict(ratio: float) -> str:
    return "PASS" if ratio <= TARGET else "FAIL"


def main(argv: list[str] | None = None) -> int:
    exit_cleanly_on_termination()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fingerprint_cost", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="W1 of 20k items")
    parser.add_argument("--runs", type=int, default=5, help="syncs of each variant (default 5)")
    parser.add_argument(
        "--parts-runs", type=int, default=2, help="syncs hashing in three timed passes (default 2)"
    )
    args = parser.parse_args(argv)
    w1 = Workload("W1", 1, 20_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory(prefix="tenantatlas-bench-fp-") as tmp:
        r = bench(w1, Path(tmp), args.runs, parts_runs=args.parts_runs)
    for variant in ("with", "without"):
        bodies = ", ".join(f"{x['body_seconds']:.2f}" for x in r[variant])
        cpus = ", ".join(f"{x['own_cpu_seconds']:.2f}" for x in r[variant])
        print(f"{variant:>7}: body {bodies} s; our CPU {cpus} s")
    print("  rounds' ratios: " + ", ".join(f"{x:.3f}" for x in r["paired_ratios"]))
    for row in summary(r):
        print("  ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
