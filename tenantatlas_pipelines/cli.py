"""`tenantatlas`: check a registry, migrate the database, drive the demo simulator."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tenantatlas_pipelines.inventory.errors import exit_code
from tenantatlas_pipelines.inventory.settings import (
    DAGSTER_HOME_ENV,
    DEMO_SECRETS,
    dagster_home,
    database_url,
    is_demo_registry,
    pin_relative_paths,
    project_root,
    registry_path,
)

# where `tenantatlas dev` (and so `make dev`) serves the Dagster UI; the README gives this address
DEV_HOST = "127.0.0.1"
DEV_PORT = 3000
# `dagster dev` warns on every start that it is superseded by `dg dev` (a separate package)
_DEV_SUPERSEDED_WARNING = "ignore:Function `dev_command` is superseded"


def _check_config(args: argparse.Namespace) -> int:
    from tenantatlas_pipelines.registry import load_registry

    path = Path(args.registry) if args.registry else registry_path()
    registry = load_registry(path)
    if args.skip_secrets:
        print("note: secrets not checked (--skip-secrets)")
    else:
        if is_demo_registry(path):
            _use_demo_secrets()
        registry.require_secrets()
    print(f"{path}: ok ({len(registry.tenants)} tenants, {len(registry.selections)} selections)")
    for key, selection in sorted(registry.selections.items()):
        print(f"  selection {key}: {len(selection.resolve())} policy types, hash {selection.hash()[:12]}")
    for key, tenant in sorted(registry.tenants.items()):
        state = "enabled" if tenant.enabled else "disabled"
        print(f"  tenant {key}: {tenant.tenant_id} cloud={tenant.cloud} {state}")
    return 0


def _use_demo_secrets() -> None:
    """The demo registry's tenants are simulated: their secrets are the simulator's fake values."""
    unset = [name for name in DEMO_SECRETS if not os.environ.get(name)]
    for name in unset:
        os.environ[name] = DEMO_SECRETS[name]
    if unset:
        print(
            f"note: demo registry: {', '.join(unset)} unset, checked with the simulator's fake demo "
            "secrets (a real registry's secrets must be set in the environment)"
        )


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
    """Migrate, then run `dagster dev` (webserver + daemon) on the repo's instance.

    `dagster dev` starts in $DAGSTER_HOME: started from the repo root, it warns on
    every start that the root's dagster.yaml is not the instance's (the copy in
    $DAGSTER_HOME is). Relative path settings are made absolute first.
    """
    from tenantatlas_pipelines.demo import prepare_environment

    prepare_environment(fresh_database=False)
    pin_relative_paths()
    home = dagster_home().resolve()
    os.environ[DAGSTER_HOME_ENV] = str(home)
    host, port = args.host, args.port
    command = [
        sys.executable,
        "-W",
        _DEV_SUPERSEDED_WARNING,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(project_root() / "workspace.yaml"),
        "-h",
        host,
        "-p",
        str(port),
    ]
    print(f"tenantatlas dev: the Dagster UI is served on http://{host}:{port} (instance {home})")
    for kind, name in stopped_automations():
        print(
            f"tenantatlas dev: {kind} {name} starts STOPPED: turn it on in the UI (Automation) "
            f"or with `dagster {kind} start {name} -w workspace.yaml`"
        )
    sys.stdout.flush()
    os.chdir(home)
    os.execv(sys.executable, command)
    return 0  # pragma: no cover - execv does not return


def stopped_automations() -> list[tuple[str, str]]:
    """``(kind, name)`` of every schedule and sensor that starts STOPPED (a user turns it on)."""
    import dagster as dg

    from tenantatlas_pipelines.definitions import defs

    schedules = [
        ("schedule", s.name)
        for s in defs.schedules or []
        if isinstance(s, dg.ScheduleDefinition) and s.default_status == dg.DefaultScheduleStatus.STOPPED
    ]
    sensors = [
        ("sensor", s.name)
        for s in defs.sensors or []
        if isinstance(s, dg.SensorDefinition) and s.default_status == dg.DefaultSensorStatus.STOPPED
    ]
    return sorted(schedules + sensors)


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
    dev.add_argument("--host", default=DEV_HOST, help=f"default {DEV_HOST}")
    dev.add_argument("--port", type=int, default=DEV_PORT, help=f"default {DEV_PORT}")
    dev.set_defaults(func=_dev)

    args = parser.parse_args(argv)
    return exit_code(lambda: int(args.func(args)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
