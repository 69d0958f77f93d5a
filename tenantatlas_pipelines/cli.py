"""`tenantatlas`: check a registry, migrate the database, drive the demo simulator."""

from __future__ import annotations

import argparse
import os
import sys

from tenantatlas_pipelines.inventory.errors import TenantAtlasError
from tenantatlas_pipelines.inventory.settings import database_url, project_root, registry_path


def _check_config(args: argparse.Namespace) -> int:
    from tenantatlas_pipelines.registry import load_registry

    path = args.registry or str(registry_path())
    registry = load_registry(path)
    if not args.skip_secrets:
        registry.require_secrets()
    print(f"{path}: ok ({len(registry.tenants)} tenants, {len(registry.selections)} selections)")
    for key, selection in sorted(registry.selections.items()):
        print(f"  selection {key}: {len(selection.resolve())} policy types, hash {selection.hash()[:12]}")
    for key, tenant in sorted(registry.tenants.items()):
        state = "enabled" if tenant.enabled else "disabled"
        print(f"  tenant {key}: {tenant.tenant_id} cloud={tenant.cloud} {state}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from tenantatlas_pipelines.db.migrate import upgrade_to_head

    upgrade_to_head(args.database_url or database_url())
    print("database: at head")
    return 0


def _simulator(args: argparse.Namespace) -> int:
    from tenantatlas_pipelines.sync.graph_factory import (
        set_simulator_generation,
        simulator_generation,
    )

    if args.action == "advance":
        set_simulator_generation(simulator_generation() + 1)
    elif args.action == "reset":
        set_simulator_generation(1)
    print(f"simulator generation: {simulator_generation()}")
    return 0


def _dev(args: argparse.Namespace) -> int:
    """Migrate, then run `dagster dev` (webserver + daemon) on the repo's instance."""
    from tenantatlas_pipelines.demo import prepare_environment

    prepare_environment(fresh_database=False)
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(project_root() / "workspace.yaml")]
    if args.port:
        command += ["-p", str(args.port)]
    os.execv(sys.executable, command)
    return 0  # pragma: no cover - execv does not return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tenantatlas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check-config", help="validate a registry file without running anything")
    check.add_argument(
        "--registry", help="registry file (default: $TENANTATLAS_REGISTRY or the demo registry)"
    )
    check.add_argument("--skip-secrets", action="store_true", help="do not require the secret env vars")
    check.set_defaults(func=_check_config)

    migrate = sub.add_parser("migrate", help="apply the Alembic migrations (alembic upgrade head)")
    migrate.add_argument("--database-url", help="default: $TENANTATLAS_DATABASE_URL or the embedded SQLite")
    migrate.set_defaults(func=_migrate)

    sim = sub.add_parser("simulator", help="the in-process demo simulator's generation")
    sim.add_argument("action", choices=["show", "advance", "reset"])
    sim.set_defaults(func=_simulator)

    dev = sub.add_parser("dev", help="migrate, then start the Dagster UI and daemon (demo secrets set)")
    dev.add_argument("--port", type=int, default=None)
    dev.set_defaults(func=_dev)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except TenantAtlasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
