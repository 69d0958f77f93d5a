"""A tenant with 100,000 items is listed page by page with flat memory.

The simulator runs in a subprocess (over loopback HTTP), so tracemalloc sees
the client alone and the simulator's rendering uses the other core.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from graphtest_support import make_client, make_scenario, run

from tenantatlas_pipelines.inventory.catalog import CATALOG

ITEMS = 100_000
PAGE_SIZE = 1000
KEY = "deviceCategory"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def simulator_process(tmp_path: Path) -> Iterator[str]:
    scenario = make_scenario({KEY: ITEMS}, page_size=PAGE_SIZE)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario.model_dump(mode="json")), encoding="utf-8")
    port = _free_port()
    command = [sys.executable, "-m", "tenantatlas_pipelines.simulator", "--scenario", str(path)]
    process = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the simulator subprocess did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.slow
def test_hundred_thousand_items_are_listed_with_flat_memory(simulator_process: str) -> None:
    current_after_page: list[int] = []

    async def body() -> tuple[int, int, int]:
        count = first_page_bytes = 0
        async with make_client(None, base_url=simulator_process) as client:
            async for page in client.list_pages(CATALOG[KEY]):
                if page.page_number == 1:
                    first_page_bytes = sum(len(json.dumps(item)) for item in page.items)
                count += len(page.items)
                current_after_page.append(tracemalloc.get_traced_memory()[0])
        return count, first_page_bytes, tracemalloc.get_traced_memory()[1]

    tracemalloc.start()
    try:
        count, first_page_bytes, peak = run(body)
    finally:
        tracemalloc.stop()
    assert count == ITEMS and len(current_after_page) == ITEMS // PAGE_SIZE
    all_items_bytes = first_page_bytes * len(current_after_page)  # as JSON text; more as objects
    assert all_items_bytes > 100_000_000
    # the peak is a bounded multiple of one page (the page's objects plus orjson's transient
    # parse tree), never of the tenant: here a tenth of all items would already be ten pages
    assert peak < 20 * first_page_bytes, (
        f"peak {peak / 1e6:.1f} MB for pages of {first_page_bytes / 1e6:.1f} MB"
    )
    assert peak < all_items_bytes / 5
    # flat: what stays allocated after the last pages is what stayed after the first ones
    assert max(current_after_page[-10:]) < max(current_after_page[:10]) + 2_000_000
