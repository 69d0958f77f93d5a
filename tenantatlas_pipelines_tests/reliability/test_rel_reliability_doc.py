"""RELIABILITY.md stays true: every row names a test, and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "RELIABILITY.md"
REFERENCE = re.compile(r"`(tenantatlas_pipelines_tests/[\w/]+\.py)::(test_\w+)`")


def _rows() -> list[str]:
    """The body rows of every table (not the header and separator lines)."""
    rows: list[str] = []
    lines = DOC.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        header = index + 1 < len(lines) and set(lines[index + 1]) <= set("|-: ") and "---" in lines[index + 1]
        if not header:
            rows.append(line)
    return rows


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def test_every_row_of_reliability_md_names_a_test() -> None:
    rows = _rows()
    assert len(rows) >= 40, "the tables of RELIABILITY.md were not found"
    unproved = [row[:80] for row in rows if not REFERENCE.search(row.rsplit("|", 2)[-2])]
    assert unproved == [], f"rows without a test in their last column: {unproved}"


def test_every_test_named_in_reliability_md_exists() -> None:
    references = REFERENCE.findall(DOC.read_text(encoding="utf-8"))
    assert references
    cache: dict[str, set[str]] = {}
    missing = []
    for file, name in references:
        path = ROOT / file
        if file not in cache:
            cache[file] = _tests_in(path) if path.is_file() else set()
        if name not in cache[file]:
            missing.append(f"{file}::{name}")
    assert missing == [], f"RELIABILITY.md names tests that do not exist: {missing}"


def test_every_reliability_test_is_listed_in_reliability_md() -> None:
    text = DOC.read_text(encoding="utf-8")
    here = Path(__file__).resolve().parent
    unlisted = [
        f"{path.name}::{name}"
        for path in sorted(here.glob("test_rel_*.py"))
        if path.name != Path(__file__).name
        for name in sorted(_tests_in(path))
        if f"{path.relative_to(ROOT).as_posix()}::{name}`" not in text
    ]
    assert unlisted == [], f"reliability tests missing from RELIABILITY.md: {unlisted}"
