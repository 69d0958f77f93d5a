"""Database URLs: an unsupported driver or an unparseable URL is refused in one line naming the supported
forms; a database that cannot be reached is reported in one line naming host and port and the fix, never
the password; `tenantatlas migrate` says so and exits non-zero, without a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from tenantatlas_pipelines.cli import main
from tenantatlas_pipelines.db import engine as engine_module
from tenantatlas_pipelines.db.engine import (
    SUPPORTED_URL_FORMS,
    DatabaseUnreachableError,
    DatabaseUrlError,
    make_engine,
)
from tenantatlas_pipelines.db.migrate import current_revision, head_revision, upgrade_to_head
from tenantatlas_pipelines.inventory.errors import ErrorCode
from tenantatlas_pipelines.inventory.settings import DATABASE_URL_ENV

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Sup3r-Secret-Pw"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the socket is: nothing listens there


def _migrate_cli(url: str, *, via_env: bool = False) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "tenantatlas_pipelines.cli", "migrate"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    if via_env:
        env[DATABASE_URL_ENV] = url
    else:
        args += ["--database-url", url]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    return lines[0]


@pytest.mark.parametrize("via_env", [False, True], ids=["flag", "env"])
def test_a_psycopg3_url_is_refused_in_one_line_naming_the_supported_forms(via_env: bool) -> None:
    result = _migrate_cli(f"postgresql+psycopg://atlas:{PASSWORD}@127.0.0.1:5432/inventory", via_env=via_env)

    line = _one_error_line(result)
    assert "unsupported database URL scheme 'postgresql+psycopg://'" in line
    assert SUPPORTED_URL_FORMS in line and DATABASE_URL_ENV in line


@pytest.mark.parametrize(
    "url",
    [
        f"postgres://atlas:{PASSWORD}@db/inventory",
        f"mysql+pymysql://atlas:{PASSWORD}@db/inventory",
        f"not a url {PASSWORD}",
    ],
    ids=["postgres-alias", "mysql", "unparseable"],
)
def test_other_unsupported_urls_are_refused_before_any_driver_import(url: str) -> None:
    with pytest.raises(DatabaseUrlError) as caught:
        make_engine(url)

    assert caught.value.code == ErrorCode.CONFIG_ERROR
    assert SUPPORTED_URL_FORMS in str(caught.value) and PASSWORD not in str(caught.value)
    error = caught.value  # no chained exception carrying the URL (and its password) into a traceback
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_migrate_brings_a_blank_database_to_head_with_the_plain_url_form(
    blank_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_url(blank_db_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql")  # SQLAlchemy 2.1 alone would load psycopg 3 for it
    plain = url.render_as_string(hide_password=False)

    assert main(["migrate", "--database-url", plain]) == 0

    assert capsys.readouterr().out.strip().endswith("database: at head")
    engine = make_engine(blank_db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_migrate_against_a_postgresql_server_that_is_down_prints_one_line_with_host_port_and_fix() -> None:
    port = _closed_port()

    result = _migrate_cli(f"postgresql+psycopg2://atlas:{PASSWORD}@127.0.0.1:{port}/inventory")

    line = _one_error_line(result)
    assert result.returncode == 2
    assert f"cannot connect to the inventory database at 127.0.0.1:{port}/inventory" in line
    assert "Connection refused" in line
    assert "start the database server" in line and DATABASE_URL_ENV in line


def test_the_store_check_on_a_server_that_is_down_raises_the_same_clear_error() -> None:
    # the Dagster resources check the revision first (db.migrate.assert_at_head -> current_revision)
    engine = make_engine(f"postgresql://atlas:{PASSWORD}@127.0.0.1:{_closed_port()}/inventory")
    try:
        with pytest.raises(DatabaseUnreachableError) as caught:
            current_revision(engine)
    finally:
        engine.dispose()

    assert caught.value.code == ErrorCode.CONFIG_ERROR
    assert PASSWORD not in str(caught.value) and caught.value.__suppress_context__


def test_a_server_that_never_answers_fails_within_the_connect_timeout_not_the_os_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a listener that never accepts: TCP connects, libpq's startup message is never answered
    monkeypatch.setattr(engine_module, "POSTGRES_CONNECT_TIMEOUT_S", 2)  # libpq's minimum
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        engine = make_engine(f"postgresql://atlas:{PASSWORD}@127.0.0.1:{port}/inventory")
        started = time.monotonic()
        try:
            with pytest.raises(DatabaseUnreachableError) as caught:
                current_revision(engine)
        finally:
            engine.dispose()
        waited = time.monotonic() - started

    assert waited < 15, f"gave up after {waited:.1f}s"
    assert f"127.0.0.1:{port}/inventory" in str(caught.value) and "timeout" in str(caught.value)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("query", "expected"), [("", engine_module.POSTGRES_CONNECT_TIMEOUT_S), ("?connect_timeout=30", "30")]
)
def test_the_driver_gets_the_default_connect_timeout_unless_the_url_sets_one(
    query: str, expected: object
) -> None:
    engine = make_engine(f"postgresql://atlas@127.0.0.1:{_closed_port()}/inventory{query}")
    seen: dict[str, object] = {}

    @event.listens_for(engine, "do_connect")
    def _capture(dialect: object, record: object, cargs: object, cparams: dict[str, object]) -> None:
        seen.update(cparams)

    try:
        with pytest.raises(DatabaseUnreachableError):
            current_revision(engine)
    finally:
        engine.dispose()
    assert seen["connect_timeout"] == expected


def test_a_sqlite_file_that_cannot_be_created_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")

    with pytest.raises(DatabaseUnreachableError, match="not-a-folder") as caught:
        upgrade_to_head(f"sqlite:///{blocker / 'inventory.db'}")

    assert DATABASE_URL_ENV in str(caught.value)
