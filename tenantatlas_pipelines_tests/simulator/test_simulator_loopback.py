"""The loopback server and the command line: real HTTP on free ports, clean stops."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
from simulator_testkit import SECRET_A, TENANT_A, simulator, tenant

from tenantatlas_pipelines.simulator import demo_scenario_path, serve_loopback


def _token_form(client_id: str, secret: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "client_secret": secret,
        "scope": "https://graph.microsoft.com/.default",
        "grant_type": "client_credentials",
    }


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_loopback_server_starts_on_a_free_port_and_stops_cleanly() -> None:
    sim = simulator(tenant(item_counts={"deviceCategory": 2}))
    threads_before = threading.active_count()
    with serve_loopback(sim) as base:
        parts = urlsplit(base)
        assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.port
        token = httpx.post(
            f"{base}/{TENANT_A}/oauth2/v2.0/token", data=_token_form(f"client-{TENANT_A[:8]}", SECRET_A)
        ).json()["access_token"]
        page = httpx.get(
            f"{base}/v1.0/deviceManagement/deviceCategories", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert len(page["value"]) == 2
        port = parts.port
    assert _refused(port)
    assert threading.active_count() == threads_before


def test_two_loopback_servers_run_side_by_side() -> None:
    with serve_loopback(simulator()) as first, serve_loopback(simulator()) as second:
        assert first != second
        for base in (first, second):
            assert httpx.get(f"{base}/v1.0/deviceManagement/deviceCategories").status_code == 401


def test_loopback_server_stops_even_when_the_body_raises() -> None:
    port = 0
    with pytest.raises(RuntimeError, match="boom"), serve_loopback(simulator()) as base:
        port = urlsplit(base).port or 0
        raise RuntimeError("boom")
    assert port and _refused(port)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_command_line_serves_the_demo_scenario_until_stopped() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tenantatlas_pipelines.simulator",
            "--scenario",
            str(demo_scenario_path()),
            "--port",
            str(port),
            "--generation",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        form = _token_form("3c1e5a7b-0000-4000-8000-00000000c001", "contoso-demo-secret")
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.post(
                    f"{base}/0f6a1c2e-4b5d-4e8f-9a01-23456789abcd/oauth2/v2.0/token", data=form
                )
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert "contoso-demo-secret" not in response.text
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}" in output.decode() and "generation 2" in output.decode()
    assert "contoso-demo-secret" not in output.decode()
