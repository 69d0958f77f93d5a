"""Serving the simulator over real HTTP: a loopback server for tests, and the CLI."""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import uvicorn

from tenantatlas_pipelines.simulator.app import GraphSimulator
from tenantatlas_pipelines.simulator.scenario import Scenario

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
DEFAULT_PORT = 8765


def demo_scenario_path() -> Path:
    """The bundled demo scenario (three tenants: healthy, forbidden, throttled)."""
    return Path(str(resources.files("tenantatlas_pipelines") / "data" / "demo_scenario.yaml"))


def _config(sim: GraphSimulator, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        sim.app(),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        date_header=False,  # the simulator dates what needs a date (an HTTP-date Retry-After)
        # the client decides when to close; keep idle connections long enough for paging
        timeout_keep_alive=30,
    )


@contextmanager
def serve_loopback(sim: GraphSimulator, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``sim`` with uvicorn on a background thread; yields the base URL.

    ``port=0`` picks a free port. The server stops (and the thread ends) on exit.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(_config(sim, host, bound_port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="graph-simulator", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start on {host}:{bound_port}")
            time.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_SECONDS)
        sock.close()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tenantatlas_pipelines.simulator``: serve a scenario until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m tenantatlas_pipelines.simulator",
        description="Serve a simulated Microsoft Graph (Intune lists) and Entra token endpoint.",
    )
    parser.add_argument("--scenario", type=Path, default=demo_scenario_path(), help="scenario YAML file")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--generation", type=int, default=1, help="item generation to serve (default 1)")
    args = parser.parse_args(argv)
    sim = GraphSimulator(Scenario.from_yaml(args.scenario), generation=args.generation)
    tenants = ", ".join(t.display_name or t.tenant_id for t in sim.scenario.tenants)
    print(
        f"Graph simulator on http://{args.host}:{args.port} (generation {sim.generation}; tenants: {tenants})"
    )
    print("Use that URL as graph_endpoint and login_endpoint of the registry tenants. Ctrl+C stops.")
    uvicorn.Server(_config(sim, args.host, args.port)).run()
