"""`make demo` against a database it cannot reach says so in one line naming the fix, not a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from cli_support import fresh_env, run_make

from tenantatlas_pipelines.inventory.settings import DATABASE_URL_ENV

PASSWORD = "Demo-Db-Pw-Not-Real"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_make_demo_with_the_database_down_prints_one_error_line_and_fails(tmp_path: Path) -> None:
    port = _closed_port()
    url = f"postgresql+psycopg2://atlas:{PASSWORD}@127.0.0.1:{port}/inventory"

    result = run_make("demo", fresh_env(tmp_path, **{DATABASE_URL_ENV: url}))

    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert f"cannot connect to the inventory database at 127.0.0.1:{port}/inventory" in errors[0]
    assert DATABASE_URL_ENV in errors[0]
    assert PASSWORD not in result.stdout + result.stderr
