"""Helpers of the command-line tests: the repo's own `make` targets, run in a scrubbed environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tenantatlas_pipelines.inventory.settings import (
    DATABASE_URL_ENV,
    DEMO_SECRETS,
    REGISTRY_ENV,
    STATE_DIR_ENV,
)

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)


def fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh clone: no demo secrets, no registry or database setting.

    State and the Dagster instance go to ``tmp_path`` (as the Makefile's defaults would put them
    in the clone).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in DEMO_SECRETS and k not in (REGISTRY_ENV, DATABASE_URL_ENV)
    }
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")  # what `make` does first
    env.update({"DAGSTER_HOME": str(home), STATE_DIR_ENV: str(tmp_path / "state")})
    env.update(extra)
    return env


def run_make(target: str, env: Mapping[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``make <target>`` of the repo with this test's venv, never reinstalling it."""
    stamp = VENV / ".installed"
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), f"VENV={VENV}", "-o", str(stamp), target],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The `tenantatlas` command, as the venv's console script runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tenantatlas_pipelines.cli", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
