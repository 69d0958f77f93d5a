"""Root fixtures: an inventory database on SQLite and on PostgreSQL, migrated once per session.

``db_url`` is parametrized (ids ``sqlite`` and ``postgres``, the latter marked
``postgres``): every test that uses it (or ``engine``, ``store``,
``tenant_factory``) runs on both dialects against a migrated, empty database.

- SQLite: a file in the test's ``tmp_path``, copied from a template migrated
  once per session.
- PostgreSQL: a database ``tenantatlas_test_<random>`` created once per session
  on the server of ``TENANTATLAS_TEST_POSTGRES_URL`` (default
  ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``), emptied with
  ``TRUNCATE ... RESTART IDENTITY CASCADE`` before each test, dropped at the end.
  An unreachable server skips these tests with the reason, unless
  ``TENANTATLAS_REQUIRE_POSTGRES=1`` (CI), which fails them instead.

``blank_db_url`` gives an empty, unmigrated database of the same dialect (for
migration tests).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from tenantatlas_pipelines.db.engine import make_engine
from tenantatlas_pipelines.db.migrate import upgrade_to_head
from tenantatlas_pipelines.db.schema import BUDGET_TABLES, TABLES
from tenantatlas_pipelines.db.store import InventoryStore, TenantRecord

POSTGRES_URL_ENV = "TENANTATLAS_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "TENANTATLAS_REQUIRE_POSTGRES"
DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
_TRUNCATE = "TRUNCATE " + ", ".join(t.name for t in (*TABLES, *BUDGET_TABLES)) + " RESTART IDENTITY CASCADE"


def _url_string(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@dataclass
class PostgresServer:
    """The PostgreSQL server the tests may create scratch databases on."""

    admin_url: URL
    _admin: Engine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)

    def ping(self) -> None:
        with self._admin.connect() as conn:
            conn.execute(text("SELECT 1"))

    def create_database(self, prefix: str = "tenantatlas_test") -> str:
        """Create an empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return _url_string(self.admin_url.set(database=name))

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def dispose(self) -> None:
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The test PostgreSQL server; skips (or fails, when required) if it is unreachable."""
    raw = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    url = make_url(raw)
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": "5"})
    server = PostgresServer(url)
    try:
        server.ping()
    except SQLAlchemyError as exc:
        server.dispose()
        reason = (
            f"PostgreSQL at {url.render_as_string(hide_password=True)} is unreachable "
            f"({type(getattr(exc, 'orig', None) or exc).__name__}); set {POSTGRES_URL_ENV}"
        )
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_POSTGRES_ENV}=1: PostgreSQL tests may not be skipped)")
        pytest.skip(reason)
    yield server
    server.dispose()


@pytest.fixture(scope="session")
def postgres_engine(postgres_server: PostgresServer) -> Iterator[Engine]:
    """The session's PostgreSQL database, migrated with Alembic once (not emptied: see db_url)."""
    url = postgres_server.create_database()
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        yield engine
    finally:
        engine.dispose()
        postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated with Alembic once; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "inventory.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()  # the last connection checkpoints the WAL into the main file
    return path


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a migrated, empty inventory database (SQLite file or PostgreSQL)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        target = tmp_path / "inventory.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    engine: Engine = request.getfixturevalue("postgres_engine")
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        conn.execute(text(_TRUNCATE))
    return _url_string(engine.url)


@pytest.fixture
def blank_db_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of an empty, unmigrated database of ``db_url``'s dialect (dropped afterwards)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database("tenantatlas_scratch")
    try:
        yield url
    finally:
        server.drop_database(url)


@pytest.fixture
def engine(db_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on ``db_url`` (the session engine on PostgreSQL; a fresh one on SQLite)."""
    if not db_url.startswith("sqlite"):
        yield request.getfixturevalue("postgres_engine")
        return
    sqlite_engine = make_engine(db_url)
    try:
        yield sqlite_engine
    finally:
        sqlite_engine.dispose()


@pytest.fixture
def store(engine: Engine) -> InventoryStore:
    return InventoryStore(engine)


TenantFactory = Callable[..., int]


@pytest.fixture
def tenant_factory(store: InventoryStore) -> TenantFactory:
    """``tenant_factory("contoso", cloud=..., enabled=...) -> tenants.id``: mirrors one tenant.

    Other tenants are left alone; the Entra id is derived from the key unless given.
    """

    def make(
        key: str = "contoso",
        *,
        tenant_id: str | None = None,
        display_name: str | None = None,
        cloud: str = "global",
        enabled: bool = True,
    ) -> int:
        record = TenantRecord(
            key=key,
            tenant_id=tenant_id or str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{key}.tenantatlas.test")),
            display_name=display_name or key.title(),
            cloud=cloud,
            enabled=enabled,
        )
        return store.ensure_tenant(record)

    return make
