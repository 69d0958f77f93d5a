"""A failing sync leaves no secret in what Dagster records: the RAW event log and compute logs.

A real Dagster run of the asset that materialises ``inventory_items`` syncs a tenant from the
Graph simulator (loopback HTTP) on an instance with its own DAGSTER_HOME (SQLite event log,
compute logs captured, the project's Python loggers captured at DEBUG into the event log). The
store's batch write then raises an exception whose text holds the tenant's client secret, the
access token the simulator issued in an ``Authorization: Bearer`` header, a client assertion
JWT, and whose chained cause holds a canary of no recognisable shape.

What is searched is what Dagster stored, untouched: every event of the run serialised with
Dagster's own ``serialize_value``, the raw bytes of the compute log files and of every file
under DAGSTER_HOME. Nothing is passed through a redaction helper before it is searched. A
control run of a test-only asset that emits the same canaries proves the search finds a leak
in each of those places.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import dagster as dg
import pytest
import yaml
from dagster._serdes import serialize_value

from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.defs import assets as assets_module
from tenantatlas_pipelines.defs.partitions import partition_key
from tenantatlas_pipelines.defs.resources import InventoryDatabase, RegistryResource
from tenantatlas_pipelines.inventory.errors import ErrorCode
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.simulator import GraphSimulator, Scenario, TenantScenario
from tenantatlas_pipelines.simulator.server import serve_loopback

ITEMS = dg.AssetKey("inventory_items")
TENANT = "leaky"
SELECTION = {"policy_types": ["deviceCompliancePolicy", "compliancePolicyV2"]}
TENANT_ID = str(uuid.uuid5(uuid.NAMESPACE_DNS, "leaky.tenant.canary.test"))
CLIENT_ID = str(uuid.uuid5(uuid.NAMESPACE_DNS, "leaky.client.canary.test"))
SECRET_ENV = "CANARY_LEAKY_GRAPH_SECRET"


@dataclass
class Canaries:
    secret: str  # the tenant's client secret (in the env var, registered by the Graph client)
    assertion: str  # a client assertion JWT (recognised by shape)
    cause: str  # text only the chained cause carries, of no recognisable shape
    simulator: GraphSimulator

    def needles(self) -> dict[str, str]:
        """Each canary and the forms it takes in URLs and JSON (the event log is JSON)."""
        plain = {"client secret": self.secret, "assertion": self.assertion, "chained cause": self.cause}
        plain.update({f"access token {i}": t for i, t in enumerate(sorted(self.simulator.issued_tokens))})
        forms: dict[str, str] = {}
        for what, value in plain.items():
            for form, encoded in (
                ("", value),
                (" url-encoded", quote(value, safe="")),
                (" form-encoded", quote_plus(value)),
                (" json-encoded", json.dumps(value)[1:-1]),
                (" json-in-json", json.dumps(json.dumps(value)[1:-1])[1:-1]),
            ):
                forms.setdefault(encoded, f"{what}{form}")  # the plainest name of a form
        return forms


@dataclass
class World:
    canaries: Canaries
    home: Path
    instance: dg.DagsterInstance
    resources: dict[str, Any]


@pytest.fixture
def world(tmp_path: Path, db_url: str, engine: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    token = uuid.uuid4().hex
    canaries = Canaries(
        secret=f"CANARY~{token[:8]}/+{token[8:24]}=",  # characters that URL and form encoding change
        assertion=f"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ{token[:12]}.c2lnbmF0dXJl{token[12:20]}",
        cause=f"cause-only-canary-{token}",
        simulator=GraphSimulator(
            Scenario(
                seed=11,
                tenants=[
                    TenantScenario(
                        tenant_id=TENANT_ID,
                        client_id=CLIENT_ID,
                        client_secret=f"CANARY~{token[:8]}/+{token[8:24]}=",
                        display_name="Leaky",
                        item_counts={"deviceCompliancePolicy": 30, "compliancePolicyV2": 20},
                        page_size=5,
                    )
                ],
            )
        ),
    )
    monkeypatch.setenv(SECRET_ENV, canaries.secret)
    monkeypatch.setenv("TENANTATLAS_STATE_DIR", str(tmp_path / "state"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    overrides = {
        "python_logs": {"managed_python_loggers": ["tenantatlas_pipelines"], "python_log_level": "DEBUG"}
    }
    with serve_loopback(canaries.simulator) as base:
        registry = {
            "selections": {"compliance": SELECTION},
            "tenants": {
                TENANT: {
                    "tenant_id": TENANT_ID,
                    "client_id": CLIENT_ID,
                    "client_secret_env": SECRET_ENV,
                    "cloud": "global",
                    "graph_endpoint": base,
                    "login_endpoint": base,
                }
            },
        }
        registry_path = tmp_path / "registry.yaml"
        registry_path.write_text(yaml.safe_dump(registry))
        resources = {
            "database": InventoryDatabase(url=db_url),
            "registry": RegistryResource(path=str(registry_path)),
        }
        with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as instance:
            instance.add_dynamic_partitions("tenants", [TENANT])
            instance.add_dynamic_partitions("selections", ["compliance"])
            yield World(canaries, home, instance, resources)


def _items_assets() -> list[dg.AssetsDefinition]:
    """The asset definition(s) of the project that materialise ``inventory_items``."""
    found = [
        value
        for value in vars(assets_module).values()
        if isinstance(value, dg.AssetsDefinition) and ITEMS in value.keys
    ]
    assert found, "no asset materialises inventory_items"
    return found


def _raw_channels(world: World, run_id: str) -> dict[str, bytes]:
    """What Dagster stored for the run, as stored: events (serialised by Dagster), files."""
    channels: dict[str, bytes] = {}
    for index, entry in enumerate(world.instance.all_logs(run_id)):
        kind = entry.dagster_event.event_type_value if entry.dagster_event else "log message"
        channels[f"event log entry {index} ({kind})"] = serialize_value(entry).encode()
    for path in sorted(world.home.rglob("*")):
        if path.is_file():
            name = path.relative_to(world.home).as_posix()
            label = "compute log" if "compute_logs" in name else "DAGSTER_HOME file"
            channels[f"{label} {name}"] = path.read_bytes()
    return channels


def _leaks(world: World, run_id: str) -> list[str]:
    needles = world.canaries.needles()
    return sorted(
        f"{what} in {where}"
        for where, data in _raw_channels(world, run_id).items()
        for needle, what in needles.items()
        if needle.encode() in data
    )


def _plant_in_batch_write(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch write raises text full of secrets, with a chained cause of its own."""
    canaries = world.canaries

    def leaky_write(self: InventoryStore, *args: Any, **kwargs: Any) -> int:
        token = next(iter(canaries.simulator.issued_tokens))
        try:
            raise ValueError(f"driver said: {canaries.cause}")
        except ValueError as cause:
            raise RuntimeError(
                f"write failed; request headers={{'Authorization': 'Bearer {token}'}} "
                f"Authorization: Bearer {token}\nclient_secret={canaries.secret} "
                f"client_assertion={canaries.assertion} body={json.dumps({'access_token': token})} "
                f"bare secret {canaries.secret}"
            ) from cause

    monkeypatch.setattr(InventoryStore, "upsert_batches", leaky_write)


@pytest.mark.slow
def test_a_sync_failing_with_secrets_in_its_exception_leaves_none_in_the_raw_event_log_or_compute_logs(
    world: World, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plant_in_batch_write(world, monkeypatch)
    result = dg.materialize(
        _items_assets(),
        partition_key=str(partition_key(TENANT, "compliance")),
        instance=world.instance,
        resources=world.resources,
        raise_on_error=False,
    )

    # the run really failed on the planted exception, and Dagster recorded it
    assert not result.success
    store = InventoryStore(engine)  # type: ignore[arg-type]
    runs = store.runs(store.tenant_pk(TENANT))
    assert [r.status for r in runs] == [RunStatus.FAILED]
    assert runs[0].error_codes == [str(ErrorCode.UNEXPECTED_EXCEPTION)]
    assert world.canaries.simulator.issued_tokens
    channels = _raw_channels(world, result.run_id)
    text = b"\n".join(data for where, data in channels.items() if where.startswith("event log"))
    assert b"STEP_FAILURE" in text and b"write failed" in text  # the failure itself is in the event log
    assert any(where.startswith("compute log") for where in channels), sorted(channels)

    assert _leaks(world, result.run_id) == []
    assert f"sync run {runs[0].id}".encode() in text  # what Dagster shows names the sync run


@pytest.mark.slow
def test_the_raw_scan_finds_canaries_a_run_deliberately_emits(world: World) -> None:
    """The control: the same scan over a run that emits the canaries reports each channel."""
    canaries = world.canaries
    canaries.simulator.issued_tokens.add(f"simtok-{uuid.uuid4().hex}")
    token = next(iter(canaries.simulator.issued_tokens))

    @dg.asset(name="planted_leak")
    def planted_leak(context) -> None:  # type: ignore[no-untyped-def]  # (a string annotation is refused)
        context.log.info(f"planted secret {canaries.secret}")
        print(f"planted token {token}")  # stdout compute log
        try:
            raise ValueError(f"planted cause {canaries.cause}")
        except ValueError as cause:
            raise RuntimeError(f"planted assertion {canaries.assertion}") from cause

    result = dg.materialize([planted_leak], instance=world.instance, raise_on_error=False)
    assert not result.success
    leaks = _leaks(world, result.run_id)
    kinds = {(leak.split(" in ")[0], leak.split(" in ")[1].split(" ")[0]) for leak in leaks}
    assert {
        ("client secret", "event"),  # the log message
        ("client secret", "compute"),  # the log line on stderr
        ("access token 0", "compute"),  # the print on stdout
        ("assertion", "event"),  # the exception text
        ("chained cause", "event"),  # the exception's chained cause
    } <= kinds, leaks
