"""Configuration of the contract's section 2: env var names and their defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from tenantatlas_pipelines.inventory.errors import ConfigError

DATABASE_URL_ENV = "TENANTATLAS_DATABASE_URL"
REGISTRY_ENV = "TENANTATLAS_REGISTRY"
STATE_DIR_ENV = "TENANTATLAS_STATE_DIR"
DAGSTER_HOME_ENV = "DAGSTER_HOME"

PACKAGE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = PACKAGE_DIR / "data"
DEMO_REGISTRY = DATA_DIR / "demo_registry.yaml"
DEMO_SCENARIO = DATA_DIR / "demo_scenario.yaml"

# the simulator's fake client secrets for the bundled demo tenants (not real credentials)
DEMO_SECRETS = {
    "CONTOSO_GRAPH_SECRET": "contoso-demo-secret",
    "FABRIKAM_GRAPH_SECRET": "fabrikam-demo-secret",
    "NORTHWIND_GRAPH_SECRET": "northwind-demo-secret",
}

# path settings a process resolves against its working directory (see `pin_relative_paths`)
SIMULATOR_SCENARIO_ENV = "TENANTATLAS_SIMULATOR_SCENARIO"
_PATH_ENVS = (REGISTRY_ENV, STATE_DIR_ENV, DAGSTER_HOME_ENV, SIMULATOR_SCENARIO_ENV)


def project_root() -> Path:
    """The repository root for an editable install, else the working directory."""
    candidate = PACKAGE_DIR.parent
    return candidate if (candidate / "pyproject.toml").is_file() else Path.cwd()


def state_dir() -> Path:
    """Local state (the embedded database, the demo simulator's generation)."""
    value = os.environ.get(STATE_DIR_ENV)
    return Path(value) if value else project_root() / ".tenantatlas"


def default_database_url() -> str:
    return f"sqlite:///{state_dir() / 'inventory.db'}"


def database_url() -> str:
    return os.environ.get(DATABASE_URL_ENV) or default_database_url()


def registry_path() -> Path:
    value = os.environ.get(REGISTRY_ENV)
    return Path(value) if value else DEMO_REGISTRY


def dagster_home() -> Path:
    """$DAGSTER_HOME, else `.dagster_home/` in the repo (holding a copy of dagster.yaml)."""
    value = os.environ.get(DAGSTER_HOME_ENV)
    return Path(value) if value else project_root() / ".dagster_home"


def is_demo_registry(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is the bundled demo registry (whose secrets are the simulator's fakes)."""
    return Path(path).resolve() == DEMO_REGISTRY.resolve()


def pin_relative_paths(environ: MutableMapping[str, str] | None = None) -> None:
    """Make the relative path settings absolute, against the current directory.

    For a process about to change directory (``tenantatlas dev`` starts Dagster
    from $DAGSTER_HOME): a relative registry, state folder, Dagster home,
    simulator scenario or SQLite file keeps meaning what it meant where the user
    typed it.
    """
    env = os.environ if environ is None else environ
    for name in _PATH_ENVS:
        value = env.get(name)
        if value and not Path(value).is_absolute():
            env[name] = str(Path(value).resolve())
    url = env.get(DATABASE_URL_ENV)
    prefix = "sqlite:///"
    if url and url.startswith(prefix):
        path, query = url[len(prefix) :].partition("?")[::2]
        if path and path != ":memory:" and not path.startswith(("/", "file:")):
            env[DATABASE_URL_ENV] = prefix + str(Path(path).resolve()) + (f"?{query}" if query else "")


def positive_setting(
    name: str,
    default: float,
    unit: str,
    *,
    whole: bool = False,
    maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """A positive number from the env var ``name`` (``default`` when unset or empty).

    Anything else (not a number, zero or less, a fraction where ``whole``, above ``maximum``)
    is a ``ConfigError`` naming the variable, what it holds and the fix.
    """
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return default
    if whole:
        value = float(raw) if raw.isdigit() else -1.0
    else:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
    if not 0 < value <= (maximum if maximum is not None else float("inf")):
        kind = "a whole number of" if whole else "a number of"
        span = f" up to {maximum:g}" if maximum is not None else ""
        raise ConfigError(
            f"{name}={raw[:40]!r} is not {kind} {unit} above 0{span}: "
            f"set it to e.g. {default:g}, or unset it for the default ({default:g})"
        )
    return value
