"""Text bounds: every text the sync writes fits its column, identically on SQLite and PostgreSQL.

PostgreSQL refuses a value longer than its ``varchar(n)`` (``StringDataRightTruncation``) and
NUL or a lone surrogate in text and JSONB; SQLite accepts all of them. One hostile item must
never fail a run: an oversized name or platform is truncated, an oversized id skips the item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from rel_support import (
    SECRET_A,
    TENANT_A,
    FaultySimulator,
    Rule,
    path_of,
    service,
    simulator,
    sync,
    tenant_scenario,
)
from sqlalchemy import select
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.schema import inventory_items, inventory_sync_runs
from tenantatlas_pipelines.db.store import InventoryStore
from tenantatlas_pipelines.inventory.errors import ErrorCode
from tenantatlas_pipelines.inventory.runs import RunStatus
from tenantatlas_pipelines.inventory.selection import Selection
from tenantatlas_pipelines.inventory.text_bounds import (
    CATEGORY_CHARS,
    DISPLAY_NAME_CHARS,
    EXTERNAL_ID_CHARS,
    PLATFORM_CHARS,
    POLICY_TYPE_CHARS,
)
from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.sync.missing import derive_missing

APPS = "mobileApp"  # platform: the odata type name when no known prefix matches
SETTINGS = "settingsCatalogPolicy"  # platform: the `platforms` field; name: `name`
FILTERS = "assignmentFilter"  # platform: the `platform` field
ENROLLMENT = "enrollmentConfiguration"  # platform: `platformType`
CONDITIONAL = "conditionalAccessPolicy"  # platform: conditions.platforms.includePlatforms
CONFIGURATION = "deviceConfiguration"
TYPES = [APPS, SETTINGS, FILTERS, ENROLLMENT, CONDITIONAL]
COUNTS = dict.fromkeys([*TYPES, CONFIGURATION], 6)

LONG_ODATA = "#microsoft.graph.zz" + "VeryLongAppType" * 40
LONG_NAME = "N" * 5000 + "\u4e2d\U0001f512"
TOO_LONG_ID = "i" * (EXTERNAL_ID_CHARS + 1)
LONGEST_ID = "j" * EXTERNAL_ID_CHARS
# a Graph echoing our secret in a name of the column's full length: redaction makes it longer
ECHOED_SECRET_NAME = (SECRET_A + " Bearer a" * 200)[:DISPLAY_NAME_CHARS]


def _apps(replaced: list[str]) -> Any:
    def rewrite(items: list[Any]) -> list[Any]:
        out = [dict(item) for item in items]
        replaced.extend(item["id"] for item in out[2:4])
        out[0]["@odata.type"] = LONG_ODATA
        out[1]["displayName"] = LONG_NAME
        out[2]["id"] = TOO_LONG_ID
        out[3]["id"] = LONGEST_ID
        out[4]["@odata.type"] = "#microsoft.graph.zz\u0000nul\ud800" + "x" * 100
        return out

    return rewrite


def _settings(items: list[Any]) -> list[Any]:
    out = [dict(item) for item in items]
    out[0]["platforms"] = "p" * 300
    out[1]["platforms"] = [f"platform{n:03}" for n in range(50)]
    out[2]["name"] = LONG_NAME
    return out


def _field(key: str, value: Any) -> Any:
    def rewrite(items: list[Any]) -> list[Any]:
        out = [dict(item) for item in items]
        out[0][key] = value
        out[1]["displayName"] = "\u00e9" * (DISPLAY_NAME_CHARS + 7)
        out[2]["displayName"] = ECHOED_SECRET_NAME
        return out

    return rewrite


def _hostile(replaced: list[str]) -> list[Rule]:
    """Rules that rewrite the first page of each type; ``replaced`` gets the ids swapped out."""
    return [
        Rule(path_of(APPS), "items", count=1, rewrite=_apps(replaced)),
        Rule(path_of(SETTINGS), "items", count=1, rewrite=_settings),
        Rule(path_of(FILTERS), "items", count=1, rewrite=_field("platform", "q" * 300)),
        Rule(path_of(ENROLLMENT), "items", count=1, rewrite=_field("platformType", "r" * 300)),
        Rule(
            path_of(CONDITIONAL),
            "items",
            count=1,
            rewrite=_field(
                "conditions", {"platforms": {"includePlatforms": ["s" * 40, "t" * 40, "u\u0000"]}}
            ),
        ),
    ]


def _stored(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(inventory_items)).mappings()]


def _expected(sim: GraphSimulator, types: list[str]) -> set[tuple[str, str]]:
    return {(t, i) for t in types for i in sim.expected_item_ids(TENANT_A, t)}


def test_hostile_lengths_in_every_written_text_field_are_bounded_and_never_fail_the_run(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    sim = simulator(tenant_scenario(item_counts=COUNTS))
    selection = Selection.parse({"policy_types": TYPES})
    replaced: list[str] = []
    rules = _hostile(replaced)
    result = sync(service(store, FaultySimulator(sim, *rules)), selection=selection)

    # one item skipped (its id is longer than the column): success, had_errors, counted
    assert result.status is RunStatus.SUCCESS, result.outcome and result.outcome.errors
    assert result.error_codes == [ErrorCode.ITEM_INVALID.value]
    run = store.get_run(store.tenant_pk("a"), result.run_id)
    assert run.had_errors and run.finished_at is not None
    assert run.type_results[APPS]["skipped_items"] == 1
    assert sum(r["skipped_items"] for r in run.type_results.values()) == 1
    assert all(rule.fired == 1 for rule in rules)

    rows = _stored(engine)
    stored = {(r["policy_type"], r["external_id"]) for r in rows}
    expected = _expected(sim, TYPES) - {(APPS, i) for i in replaced} | {(APPS, LONGEST_ID)}
    assert stored == expected and len(rows) == len(expected)  # every other item is stored
    assert (APPS, TOO_LONG_ID) not in stored and (APPS, LONGEST_ID) in stored
    for row in rows:
        for column, limit in (
            ("external_id", EXTERNAL_ID_CHARS),
            ("display_name", DISPLAY_NAME_CHARS),
            ("category", CATEGORY_CHARS),
            ("platform", PLATFORM_CHARS),
            ("policy_type", POLICY_TYPE_CHARS),
        ):
            value = row[column]
            assert value is None or (len(value) <= limit and "\x00" not in value), (column, value[:80])
            if value is not None:
                value.encode("utf-8")  # no lone surrogate
    platforms = {r["platform"] for r in rows}
    assert LONG_ODATA.removeprefix("#microsoft.graph.")[:PLATFORM_CHARS] in platforms
    assert "p" * PLATFORM_CHARS in platforms and "q" * PLATFORM_CHARS in platforms
    assert "r" * PLATFORM_CHARS in platforms
    assert ",".join(f"platform{n:03}" for n in range(50))[:PLATFORM_CHARS] in platforms
    names = {r["display_name"] for r in rows}
    assert LONG_NAME[:DISPLAY_NAME_CHARS] in names and "\u00e9" * DISPLAY_NAME_CHARS in names
    redacted = [r for r in rows if (r["display_name"] or "").startswith("[REDACTED] Bearer [REDACTED]")]
    assert len(redacted) == 3 and not any(SECRET_A in (n or "") for n in names)  # one per echoing type

    # the catalog is usable: the missing derivation copies the bounded values
    missing = derive_missing(store, "a", "rel", selection)
    assert missing.rows == []


@dataclass
class _HostileErrorTransport(httpx.AsyncBaseTransport):
    """Answers one path with a 403 whose error fields are huge and hold NUL and lone surrogates."""

    inner: httpx.AsyncBaseTransport
    path: str

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith(self.path):
            return await self.inner.handle_async_request(request)
        hostile = "x\u0000y\ud800z" * 300  # the five fields stay under the 64 KB body Graph parses
        body = {
            "error": {
                "code": "Forbidden" + hostile,
                "message": "denied " + hostile,
                "innerError": {"request-id": hostile, "client-request-id": hostile, "date": hostile},
            }
        }
        return httpx.Response(
            403,
            headers={"content-type": "application/json"},
            content=json.dumps(body).encode("ascii"),
            request=request,
        )


class _HostileErrorSimulator:
    def __init__(self, sim: GraphSimulator, path: str) -> None:
        self.sim = sim
        self.path = path

    def transport(self) -> httpx.AsyncBaseTransport:
        return _HostileErrorTransport(self.sim.transport(), self.path)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_a_graph_error_with_hostile_text_is_recorded_bounded_and_the_run_finishes(
    store: InventoryStore, engine: Engine, secrets_env: None
) -> None:
    sim = simulator(tenant_scenario(item_counts=COUNTS))
    selection = Selection.parse({"policy_types": [APPS, CONFIGURATION]})
    result = sync(service(store, _HostileErrorSimulator(sim, path_of(CONFIGURATION))), selection=selection)

    assert result.status is RunStatus.PARTIAL
    assert result.error_codes == [ErrorCode.GRAPH_FORBIDDEN.value]
    with engine.connect() as conn:
        row = conn.execute(select(inventory_sync_runs)).mappings().one()
    assert row["status"] == RunStatus.PARTIAL.value and row["finished_at"] is not None
    texts = _strings(row["error_context"]) + _strings(row["type_results"])
    assert any("denied" in t for t in texts)
    for text in texts:
        assert "\x00" not in text and len(text) <= 500, text[:80]
        text.encode("utf-8")
    assert {(APPS, i) for i in sim.expected_item_ids(TENANT_A, APPS)} == {
        (r["policy_type"], r["external_id"]) for r in _stored(engine)
    }
