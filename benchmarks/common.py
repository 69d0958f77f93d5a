"""Shared plumbing: workloads as scenario/registry files, the simulator process, databases, workers."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tenantatlas_pipelines.inventory.catalog import CATALOG

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "TENANTATLAS_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-secret-not-real"  # the simulator's fake client secret
SECRET_ENV = "BENCH_GRAPH_SECRET"
SELECTION = "all"
PAGE_SIZE = 100
# W1's skew: mobile apps 40%, device configurations 20%, settings catalog 15% (25 per page), the rest spread
SKEW = {"mobileApp": 0.40, "deviceConfiguration": 0.20, "settingsCatalogPolicy": 0.15}


def item_counts(total: int) -> dict[str, int]:
    """``total`` items over every catalog type with W1's skew (the remainder spread evenly)."""
    counts = {key: int(total * share) for key, share in SKEW.items()}
    rest = [key for key in CATALOG if key not in SKEW]
    left = total - sum(counts.values())
    for index, key in enumerate(rest):
        counts[key] = left // len(rest) + (1 if index < left % len(rest) else 0)
    return counts


def tenant_guid(index: int) -> str:
    return str(uuid.UUID(int=0xBE7C0000_0000_4000_8000_000000000000 + index))


@dataclass(frozen=True)
class Workload:
    """``tenants`` tenants of ``items`` items each."""

    name: str
    tenants: int
    items: int

    def tenant_key(self, index: int) -> str:
        return f"{self.name.lower()}-t{index:03d}"

    def scenario(self) -> dict[str, Any]:
        return {
            "seed": 42,
            "tenants": [
                {
                    "tenant_id": tenant_guid(i),
                    "client_id": tenant_guid(10_000 + i),
                    "client_secret": SECRET,
                    "display_name": self.tenant_key(i),
                    "page_size": PAGE_SIZE,
                    "item_counts": item_counts(self.items),
                    "removed_per_generation": 0.0,
                    "added_per_generation": 0.0,
                    "faults": [],
                }
                for i in range(self.tenants)
            ],
        }

    def registry(self, base_url: str) -> dict[str, Any]:
        return {
            "selections": {
                SELECTION: {
                    "categories": [
                        "configuration",
                        "compliance",
                        "apps",
                        "enrollment",
                        "scripts",
                        "updates",
                        "security",
                    ],
                    "include_foundations": True,
                }
            },
            "tenants": {
                self.tenant_key(i): {
                    "tenant_id": tenant_guid(i),
                    "client_id": tenant_guid(10_000 + i),
                    "client_secret_env": SECRET_ENV,
                    "cloud": "global",
                    "display_name": self.tenant_key(i),
                    "graph_endpoint": base_url,
                    "login_endpoint": base_url,
                }
                for i in range(self.tenants)
            },
        }


def exit_cleanly_on_termination() -> None:
    """Turn SIGTERM and SIGHUP into ``SystemExit`` so every ``finally`` runs: the services stop.

    Python's default for SIGTERM ends the process at once. The fleet benchmark's webserver,
    daemon and code servers run in sessions of their own (their process groups are stopped
    whole), so ``timeout`` or a closed terminal, which signal only the benchmark's own group,
    left them running.
    """

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, leave)


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SIMULATOR_PIDS: dict[str, int] = {}  # base URL -> the simulator process serving it


def simulator_cpu_seconds(base: str) -> float:
    """CPU seconds the simulator serving ``base`` has used so far (Graph's side: not ours)."""
    import psutil  # type: ignore[import-untyped]

    times = psutil.Process(SIMULATOR_PIDS[base]).cpu_times()
    return float(times.user + times.system)


@contextmanager
def simulator(scenario_file: Path, log_dir: Path) -> Iterator[str]:
    """Serve the scenario from a separate simulator process on a loopback port; yields its base URL."""
    port = free_port()
    log = (log_dir / f"simulator-{port}.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tenantatlas_pipelines.simulator",
            "--scenario",
            str(scenario_file),
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    SIMULATOR_PIDS[base] = proc.pid
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/v1.0/", timeout=1)
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the simulator did not start (see {log.name})") from None
                time.sleep(0.1)
            else:
                break
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@contextmanager
def postgres_database(label: str, *, checkpoint: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database (migrated to head); dropped afterwards. Yields its URL.

    ``checkpoint``: the server writes its dirty pages before the yield, so a checkpoint due to
    an earlier measurement's WAL (a W1 sync writes about 100 MB) does not land in this one.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tenantatlas_pipelines.db.migrate import upgrade_to_head

    name = f"tenantatlas_bench_{os.getpid()}_{label}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_to_head(url)
        if checkpoint:
            with admin.connect() as conn:
                conn.execute(text("CHECKPOINT"))
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sqlite_database(directory: Path, label: str) -> str:
    from tenantatlas_pipelines.db.migrate import upgrade_to_head

    url = f"sqlite:///{directory / f'{label}.db'}"
    upgrade_to_head(url)
    return url


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine (every core, every process) has spent busy so far."""
    import psutil  # type: ignore[import-untyped]

    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def peak_rss_mb() -> float:
    """This process's peak resident set size (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(
    module: str, args: dict[str, Any], env: dict[str, str] | None = None, timeout: float = 1800
) -> dict[str, Any]:
    """Run ``benchmarks.<module>.work(args)`` in a child process (its own peak RSS); return its result."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", module, json.dumps(args)],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {module} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    result.setdefault("process_seconds", time.monotonic() - started)
    return result
