"""Programmatic Alembic: migrate to head, and refuse to run against an unmigrated database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from tenantatlas_pipelines.db.engine import connect, make_engine
from tenantatlas_pipelines.inventory.errors import ErrorCode, TenantAtlasError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class DatabaseNotMigratedError(TenantAtlasError):
    """The database is not at the migrations' head revision."""

    code = ErrorCode.CONFIG_ERROR


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config on the package's migrations, bound to ``connection`` or ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise DatabaseNotMigratedError("no Alembic revisions found in the package")
    return head


def current_revision(engine: Engine) -> str | None:
    with connect(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine_or_url: Engine | str | None = None) -> None:
    """Run every pending migration (``alembic upgrade head``) in one transaction."""
    _run(engine_or_url, "upgrade", "head")


def downgrade_to_base(engine_or_url: Engine | str | None = None) -> None:
    """Drop everything the migrations created (``alembic downgrade base``)."""
    _run(engine_or_url, "downgrade", "base")


def assert_at_head(engine: Engine) -> None:
    """Raise ``DatabaseNotMigratedError`` naming the fix unless the database is at head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        url = engine.url.render_as_string(hide_password=True)
        raise DatabaseNotMigratedError(
            f"the inventory database {url} is at revision {current or 'none (empty)'}, "
            f"the code needs {head}: run `alembic upgrade head` from the repository root "
            "(or db.migrate.upgrade_to_head)"
        )


def _run(engine_or_url: Engine | str | None, direction: str, target: str) -> None:
    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
    try:
        with connect(engine) as conn, conn.begin():
            config = alembic_config(connection=conn)
            if direction == "upgrade":
                command.upgrade(config, target)
            else:
                command.downgrade(config, target)
    finally:
        if engine is not engine_or_url:
            engine.dispose()
