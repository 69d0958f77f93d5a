"""Configuration of the contract's section 2: env var names and their defaults."""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_ENV = "TENANTATLAS_DATABASE_URL"
REGISTRY_ENV = "TENANTATLAS_REGISTRY"
STATE_DIR_ENV = "TENANTATLAS_STATE_DIR"
DAGSTER_HOME_ENV = "DAGSTER_HOME"

PACKAGE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = PACKAGE_DIR / "data"
DEMO_REGISTRY = DATA_DIR / "demo_registry.yaml"
DEMO_SCENARIO = DATA_DIR / "demo_scenario.yaml"


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
