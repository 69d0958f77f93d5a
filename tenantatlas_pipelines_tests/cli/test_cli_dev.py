"""`make dev` (`tenantatlas dev`): starts the Dagster UI without a warning, at the address it prints."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import ROOT, fresh_env

from tenantatlas_pipelines.inventory.settings import (
    DAGSTER_HOME_ENV,
    DATABASE_URL_ENV,
    REGISTRY_ENV,
    STATE_DIR_ENV,
    pin_relative_paths,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_output_until_serving(proc: subprocess.Popen[str], port: int, timeout: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break  # the process ended
        lines.append(line.rstrip())
        if f"Serving dagster-webserver on http://127.0.0.1:{port}" in line:
            return lines
    raise AssertionError("dagster dev did not serve the UI:\n" + "\n".join(lines[-40:]))


def _stop(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C as in a terminal: SIGINT to the whole process group, then SIGKILL if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.slow
def test_make_dev_starts_without_any_warning_from_the_repo_root(tmp_path: Path) -> None:
    # what `make dev` does: DAGSTER_HOME holds a copy of the root's dagster.yaml, cwd is the repo root
    env = fresh_env(tmp_path, PYTHONUNBUFFERED="1")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantatlas_pipelines.cli", "dev", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = _start_output_until_serving(proc, port, timeout=150)
    finally:
        _stop(proc)

    warnings = [line for line in lines if "warn" in line.lower()]
    assert warnings == [], "\n".join(warnings)
    assert not any("dagster.yaml" in line for line in lines)
    assert f"tenantatlas dev: the Dagster UI is served on http://127.0.0.1:{port}" in lines[1]


def test_dev_pins_relative_path_settings_before_starting_dagster_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    environ = {
        REGISTRY_ENV: "conf/registry.yaml",
        STATE_DIR_ENV: "state",
        DAGSTER_HOME_ENV: "/abs/home",
        DATABASE_URL_ENV: "sqlite:///data/inventory.db?timeout=5",
        "TENANTATLAS_SIMULATOR_SCENARIO": "scenario.yaml",
    }

    pin_relative_paths(environ)

    assert environ == {
        REGISTRY_ENV: str(tmp_path / "conf/registry.yaml"),
        STATE_DIR_ENV: str(tmp_path / "state"),
        DAGSTER_HOME_ENV: "/abs/home",
        DATABASE_URL_ENV: f"sqlite:///{tmp_path / 'data/inventory.db'}?timeout=5",
        "TENANTATLAS_SIMULATOR_SCENARIO": str(tmp_path / "scenario.yaml"),
    }
    for url in ("sqlite:////abs/inventory.db", "sqlite:///:memory:", "postgresql+psycopg2://u@h/db"):
        unchanged = {DATABASE_URL_ENV: url}
        pin_relative_paths(unchanged)
        assert unchanged == {DATABASE_URL_ENV: url}
