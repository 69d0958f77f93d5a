"""The floors of the contract's section 1: no import runs up a floor; floors 1-3 never import dagster."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tenantatlas_pipelines"
FLOOR = {
    "inventory": 1,
    "graph": 2,
    "db": 2,
    "registry": 2,
    "simulator": 2,
    "sync": 3,
    "defs": 4,
    "definitions": 5,
    "launcher": 5,  # launches runs of the definitions through a workspace, like the webserver
    "demo": 6,
    "cli": 7,  # the command line drives the demo too
}


def _floor_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "tenantatlas_pipelines" or len(parts) < 2:
        return None
    return FLOOR.get(parts[1])


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


SOURCES = sorted(
    p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts or p.name != "script.py.mako"
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_up_a_floor_and_low_floors_never_import_dagster(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    own = FLOOR.get(relative.parts[0].removesuffix(".py"))
    if own is None:
        return  # the package __init__
    for module in _imports(path):
        if own <= 3:
            assert not module.startswith("dagster"), f"{relative} imports {module}"
        target = _floor_of(module)
        if target is not None:
            assert target < own or module.split(".")[1] == relative.parts[0].removesuffix(".py"), (
                f"{relative} (floor {own}) imports {module} (floor {target})"
            )
