"""A real boot of the Dagster webserver on a free port; its GraphQL API lists our objects."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        sensors { name }
        schedules { name }
        assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_webserver_starts_and_graphql_lists_assets_checks_sensors_and_schedule(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "TENANTATLAS_STATE_DIR": str(tmp_path / "state")}
    webserver = Path(sys.executable).with_name("dagster-webserver")
    proc = subprocess.Popen(
        [str(webserver), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        data = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=5)
                data = response.json()["data"]["repositoriesOrError"]["nodes"]
                if data:
                    break
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                pass
            time.sleep(0.5)
        assert data, f"webserver did not answer: {proc.stderr.read().decode()[-2000:] if proc.poll() else ''}"
        repo = data[0]
        assert repo["location"]["name"] == "tenantatlas_pipelines"
        assert {s["name"] for s in repo["sensors"]} == {
            "registry_sensor",
            "inventory_nightly_sweep",
            "inventory_freshness_sensor",
            "sync_run_failure_sensor",
            "sync_run_canceled_sensor",
        }
        assert repo["schedules"] == []  # the nightly sweep is the sensor inventory_nightly_sweep
        assets = {tuple(a["assetKey"]["path"]): a for a in repo["assetNodes"]}
        assert set(assets) == {("inventory_items",), ("inventory_missing_items",), ("inventory_changes",)}
        checks = {c["name"] for c in assets[("inventory_items",)]["assetChecksOrError"]["checks"]}
        assert checks == {"last_sync_succeeded", "inventory_fresh"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
