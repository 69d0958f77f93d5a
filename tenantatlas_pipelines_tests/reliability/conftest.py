"""Fixtures of the reliability suite: secrets in the environment, a PostgreSQL-only database."""

from __future__ import annotations

import pytest
from rel_support import SECRET_A, SECRET_B, SECRET_ENV
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tenantatlas_pipelines.db.schema import TABLES


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV["A"], SECRET_A)
    monkeypatch.setenv(SECRET_ENV["B"], SECRET_B)


@pytest.fixture
def pg_url(postgres_engine: Engine) -> str:
    """The session's PostgreSQL inventory database, emptied (for PostgreSQL-only faults)."""
    with postgres_engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        conn.execute(text("TRUNCATE " + ", ".join(t.name for t in TABLES) + " RESTART IDENTITY CASCADE"))
    return postgres_engine.url.render_as_string(hide_password=False)
