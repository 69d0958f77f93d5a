"""`make check-config`: passes on a fresh clone (demo registry, fake demo secrets), still refuses a real
registry whose secret is unset."""

from __future__ import annotations

import shutil
from pathlib import Path

from cli_support import fresh_env, run_cli, run_make

from tenantatlas_pipelines.inventory.settings import DEMO_REGISTRY, DEMO_SECRETS, REGISTRY_ENV


def test_make_check_config_passes_on_a_fresh_clone_without_any_secret_set(tmp_path: Path) -> None:
    result = run_make("check-config", fresh_env(tmp_path))

    assert result.returncode == 0, result.stderr
    assert f"{DEMO_REGISTRY}: ok (3 tenants, 2 selections)" in result.stdout
    note = next(line for line in result.stdout.splitlines() if line.startswith("note:"))
    assert "fake demo secrets" in note and all(name in note for name in DEMO_SECRETS)
    assert "error" not in result.stderr.lower()


def test_the_demo_registry_keeps_a_secret_the_user_did_set(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, CONTOSO_GRAPH_SECRET="set-by-the-user")

    result = run_cli(["check-config"], env)

    assert result.returncode == 0, result.stderr
    note = next(line for line in result.stdout.splitlines() if line.startswith("note:"))
    assert "CONTOSO_GRAPH_SECRET" not in note and "FABRIKAM_GRAPH_SECRET" in note


def test_a_real_registry_with_an_unset_secret_is_still_reported(tmp_path: Path) -> None:
    # the demo's tenants, but in the user's own file: its secrets are real ones, never faked
    registry = tmp_path / "registry.yaml"
    shutil.copyfile(DEMO_REGISTRY, registry)

    via_env = run_make("check-config", fresh_env(tmp_path, **{REGISTRY_ENV: str(registry)}))
    via_flag = run_cli(["check-config", "--registry", str(registry)], fresh_env(tmp_path))

    for result in (via_env, via_flag):
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"{registry}: missing client secret" in errors[0]
        assert all(name in errors[0] for name in DEMO_SECRETS)
        assert "Traceback" not in result.stderr and "note:" not in result.stdout


def test_skip_secrets_says_the_secrets_were_not_checked(tmp_path: Path) -> None:
    registry = tmp_path / "registry.yaml"
    shutil.copyfile(DEMO_REGISTRY, registry)

    result = run_cli(["check-config", "--registry", str(registry), "--skip-secrets"], fresh_env(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "note: secrets not checked (--skip-secrets)" in result.stdout
