"""The README's Quick start: the UI's address, and the schedules and sensors that start STOPPED (the nightly
sweep) and how to turn them on."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest
from cli_support import ROOT, fresh_env, run_make
from dagster._core.scheduler.instigation import InstigatorStatus

from tenantatlas_pipelines.cli import DEV_HOST, DEV_PORT, stopped_automations


def _quick_start() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Quick start\n(.*?)^## ", readme, flags=re.S | re.M)
    assert match, "README has no Quick start section"
    return match.group(1)


def test_readme_gives_the_address_make_dev_serves() -> None:
    assert (DEV_HOST, DEV_PORT) == ("127.0.0.1", 3000)  # what `tenantatlas dev` passes to `dagster dev`
    assert f"http://{DEV_HOST}:{DEV_PORT}" in _quick_start()


def test_readme_says_what_starts_stopped_and_names_how_to_turn_it_on() -> None:
    text = " ".join(_quick_start().split())
    assert stopped_automations() == [("sensor", "inventory_nightly_sweep")]
    for _kind, name in stopped_automations():
        assert re.search(rf"`{name}`[^.]*starts \*\*STOPPED\*\*", text), name
    assert "make nightly-on" in text


@pytest.mark.slow
def test_make_nightly_on_starts_everything_that_starts_stopped_on_the_dev_instance(tmp_path: Path) -> None:
    env = fresh_env(tmp_path)

    result = run_make("nightly-on", env)

    assert result.returncode == 0, result.stderr
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        states = {state.name: state.status for state in instance.all_instigator_state()}
    for _kind, name in stopped_automations():
        assert states.get(name) == InstigatorStatus.RUNNING, states
