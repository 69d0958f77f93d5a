"""Secret canary, Dagster side: client secrets and access tokens reach no Dagster file, DB row or output.

Tenants on cloud ``global`` point (endpoint overrides) at the Graph simulator served over loopback
HTTP. Each has a canary client secret in its env var. Partitions that succeed and that fail (wrong
secret, a forbidden policy type, an unlicensed tenant, a token that expires mid-run) are materialised
through Dagster on an instance with a real DAGSTER_HOME (file storage, compute logs). Then every file
under DAGSTER_HOME, every column of every table of the inventory DB, the captured stdout/stderr and the
log records are searched for each canary and for every token the simulator issued.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml
from sqlalchemy import MetaData, select, update
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.schema import inventory_sync_runs, tenants
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.defs import assets as assets_module
from tenantatlas_pipelines.defs.partitions import partition_key
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.simulator import Fault, FaultKind, GraphSimulator, Scenario, TenantScenario
from tenantatlas_pipelines.simulator.server import serve_loopback

SELECTION = {"policy_types": ["deviceCompliancePolicy", "compliancePolicyV2", "deviceComplianceScript"]}
COUNTS = {"deviceCompliancePolicy": 12, "compliancePolicyV2": 7, "deviceComplianceScript": 3}


@dataclass(frozen=True)
class CanaryTenant:
    key: str
    faults: tuple[Fault, ...]
    expected_status: str
    expected_code: str | None

    @property
    def tenant_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.key}.canary.test"))

    @property
    def client_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.key}.client.canary.test"))

    @property
    def env_var(self) -> str:
        return f"CANARY_{self.key.upper()}_GRAPH_SECRET"


TENANTS = (
    CanaryTenant("healthy", (Fault(kind=FaultKind.EXPIRE_TOKEN_AFTER, count=2),), "success", None),
    CanaryTenant(
        "forbidden",
        (Fault(kind=FaultKind.FORBIDDEN, policy_type="deviceCompliancePolicy"),),
        "partial",
        "graph_forbidden",
    ),
    CanaryTenant("unlicensed", (Fault(kind=FaultKind.UNLICENSED),), "failed", "intune_not_licensed"),
    CanaryTenant("wrongsecret", (Fault(kind=FaultKind.WRONG_SECRET),), "failed", "auth_failed"),
)


@dataclass
class CanaryWorld:
    secrets: dict[str, str]  # tenant key -> its canary client secret
    simulator: GraphSimulator
    home: Path
    instance: dg.DagsterInstance
    resources: dict[str, dg.ConfigurableResource]


@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CanaryWorld]:
    secrets = {t.key: f"CANARY-{t.key}-{uuid.uuid4().hex}" for t in TENANTS}
    scenario = Scenario(
        seed=7,
        tenants=[
            TenantScenario(
                tenant_id=t.tenant_id,
                client_id=t.client_id,
                client_secret=secrets[t.key],
                display_name=t.key.title(),
                item_counts=COUNTS,
                page_size=5,
                faults=list(t.faults),
            )
            for t in TENANTS
        ],
    )
    simulator = GraphSimulator(scenario)
    monkeypatch.setenv("TENANTATLAS_STATE_DIR", str(tmp_path / "state"))
    for t in TENANTS:
        monkeypatch.setenv(t.env_var, secrets[t.key])
    home = tmp_path / "dagster_home"
    home.mkdir()
    with serve_loopback(simulator) as base:
        registry = {
            "selections": {"compliance": SELECTION},
            "tenants": {
                t.key: {
                    "tenant_id": t.tenant_id,
                    "client_id": t.client_id,
                    "client_secret_env": t.env_var,
                    "cloud": "global",
                    "graph_endpoint": base,
                    "login_endpoint": base,
                }
                for t in TENANTS
            },
        }
        registry_path = tmp_path / "registry.yaml"
        registry_path.write_text(yaml.safe_dump(registry))
        resources: dict[str, dg.ConfigurableResource] = {
            "database": InventoryDatabase(url=db_url),
            "registry": RegistryResource(path=str(registry_path)),
        }
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            instance.add_dynamic_partitions("tenants", [t.key for t in TENANTS])
            instance.add_dynamic_partitions("selections", ["compliance"])
            yield CanaryWorld(secrets, simulator, home, instance, resources)


def _materialise(
    world: CanaryWorld, tenants: tuple[CanaryTenant, ...] = TENANTS
) -> dict[str, dg.ExecuteInProcessResult]:
    return {
        t.key: dg.materialize(
            _items_assets(),  # the assets, with their checks, that materialise inventory_items
            partition_key=str(partition_key(t.key, "compliance")),
            instance=world.instance,
            resources=world.resources,
            raise_on_error=False,
        )
        for t in tenants
    }


def _items_assets() -> list[dg.AssetsDefinition]:
    found = [
        value
        for value in vars(assets_module).values()
        if isinstance(value, dg.AssetsDefinition) and dg.AssetKey("inventory_items") in value.keys
    ]
    assert found, "no asset materialises inventory_items"
    return found


def _raw_record(record: logging.LogRecord) -> str:
    """A log record as any handler could render it: message, arguments and exception, unredacted."""
    parts = [record.getMessage(), repr(record.args), record.exc_text or ""]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    return " ".join(parts)


def _home_files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def _db_rows(engine: Engine) -> Iterator[tuple[str, str]]:
    """Every row of every table of the inventory DB, all columns as text."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                as_text = {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in row.items()}
                yield table.name, repr(as_text)


def _needles(world: CanaryWorld) -> dict[str, str]:
    """What must not appear: each secret, its random core, and every issued token (also without prefix)."""
    needles = {}
    for key, secret in world.secrets.items():
        needles[secret] = f"{key} client secret"
        needles[secret.rsplit("-", 1)[1]] = f"{key} client secret (its random part)"
    for token in world.simulator.issued_tokens:
        needles[token] = "an issued access token"
        needles[token.removeprefix("simtok-")] = "an issued access token (without its prefix)"
    return needles


def _leaks(
    world: CanaryWorld,
    engine: Engine,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> list[str]:
    """Every place a canary or token shows up: DAGSTER_HOME files, DB rows, stdout/stderr, log records."""
    needles = _needles(world)
    out, err = capfd.readouterr()
    haystacks: list[tuple[str, bytes]] = [
        *((f"DAGSTER_HOME/{name}", data) for name, data in _home_files(world.home).items()),
        *((f"inventory table {table}", text.encode()) for table, text in _db_rows(engine)),
        ("stdout", out.encode()),
        ("stderr", err.encode()),
        *((f"log record of {r.name}", _raw_record(r).encode()) for r in caplog.records),
    ]
    return sorted(
        {
            f"{what} in {where}"
            for where, data in haystacks
            for needle, what in needles.items()
            if needle.encode() in data
        }
    )


@pytest.mark.slow
def test_no_secret_or_token_reaches_dagster_home_the_inventory_db_or_the_output(
    world: CanaryWorld,
    engine: Engine,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    results = _materialise(world)

    # the scenario did what it should: successes and failures, tokens, logs and compute logs
    store = InventoryStore(engine)
    for t in TENANTS:
        runs = store.runs(store.tenant_pk(t.key))
        assert [str(r.status) for r in runs] == [t.expected_status], t.key
        if t.expected_code:
            assert t.expected_code in runs[0].error_codes, (t.key, runs[0].error_codes)
        assert runs[0].dagster_run_id == results[t.key].run_id
    assert store.count_items(store.tenant_pk("healthy")) == sum(COUNTS.values())
    assert len(world.simulator.issued_tokens) >= 4  # the expiry refresh adds one
    files = _home_files(world.home)
    assert sum(name.endswith(".err") and "compute_logs" in name for name in files) == len(TENANTS)
    assert any(name.startswith("history/") and name.endswith(".db") for name in files), sorted(files)
    assert caplog.records

    assert _leaks(world, engine, capfd, caplog) == []


def test_the_canary_search_finds_a_planted_leak(
    world: CanaryWorld,
    engine: Engine,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Guards the search itself: a secret or token planted in each channel is found there."""
    from tenantatlas_pipelines.defs import reporting

    secret = world.secrets["healthy"]
    real_metadata = reporting.sync_metadata

    def leaky_metadata(result: object) -> dict[str, object]:
        dg.get_dagster_logger().info(f"planted {secret}")
        print(f"planted {next(iter(world.simulator.issued_tokens))}")
        return {**real_metadata(result), "planted": secret}  # type: ignore[arg-type]

    monkeypatch.setattr(reporting, "sync_metadata", leaky_metadata)
    caplog.set_level(logging.DEBUG)
    _materialise(world, TENANTS[:1])
    with engine.begin() as conn:  # and into the inventory DB: a text column and a JSON column
        conn.execute(update(tenants).values(display_name=f"x{secret}"))
        conn.execute(update(inventory_sync_runs).values(type_results={"planted": [secret.rsplit("-", 1)[1]]}))
    leaks = _leaks(world, engine, capfd, caplog)
    found = {
        re.sub(r"/storage/[^/]+/compute_logs/[^/]+\.", "/storage/*/compute_logs/*.", leak) for leak in leaks
    }
    found = {re.sub(r"/history/runs/[0-9a-f-]{36}\.db", "/history/runs/<run>.db", leak) for leak in found}
    assert {
        "healthy client secret in DAGSTER_HOME/history/runs/<run>.db",  # the event log (metadata, log line)
        "healthy client secret in DAGSTER_HOME/storage/*/compute_logs/*.err",  # the compute log of stderr
        "healthy client secret in stderr",
        "healthy client secret in log record of dagster.builtin",
        "an issued access token in DAGSTER_HOME/storage/*/compute_logs/*.out",  # the compute log of stdout
        "an issued access token in stdout",
        "healthy client secret in inventory table tenants",
        "healthy client secret (its random part) in inventory table inventory_sync_runs",
    } <= found, sorted(found)
