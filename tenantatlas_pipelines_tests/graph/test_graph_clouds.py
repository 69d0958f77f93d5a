"""endpoints_for: the national cloud table, overrides and the simulated cloud."""

from __future__ import annotations

import pytest

from tenantatlas_pipelines.graph.clouds import CLOUDS, endpoints_for
from tenantatlas_pipelines.inventory.errors import ConfigError


@pytest.mark.parametrize(
    ("cloud", "login", "graph"),
    [
        ("global", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
        ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
        ("usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
        ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_each_national_cloud_has_its_login_and_graph_endpoint(cloud: str, login: str, graph: str) -> None:
    endpoints = endpoints_for(cloud)
    assert (endpoints.login, endpoints.graph, endpoints.scope) == (login, graph, f"{graph}/.default")
    assert endpoints.token_url("t1") == f"{login}/t1/oauth2/v2.0/token"
    assert endpoints.graph_url("beta", "deviceManagement/intents") == f"{graph}/beta/deviceManagement/intents"
    assert set(CLOUDS) == {"global", "usgov", "usgov-dod", "china"}


def test_simulated_cloud_needs_both_overrides() -> None:
    with pytest.raises(ConfigError, match="graph_endpoint and login_endpoint"):
        endpoints_for("simulated", graph_endpoint="http://127.0.0.1:8765")
    with pytest.raises(ConfigError, match="graph_endpoint and login_endpoint"):
        endpoints_for("simulated")
    sim = endpoints_for("simulated", "http://127.0.0.1:8765/", "http://127.0.0.1:8765")
    assert (sim.graph, sim.login, sim.scope) == (
        "http://127.0.0.1:8765",
        "http://127.0.0.1:8765",
        "http://127.0.0.1:8765/.default",
    )
    assert sim.graph_origin == ("http", "127.0.0.1", 8765)


def test_overrides_win_but_the_scope_stays_the_real_graph_resource() -> None:
    endpoints = endpoints_for("usgov", graph_endpoint="https://proxy.internal/graph")
    assert endpoints.graph == "https://proxy.internal/graph"
    assert endpoints.login == "https://login.microsoftonline.us"
    assert endpoints.scope == "https://graph.microsoft.us/.default"
    assert endpoints.graph_origin == ("https", "proxy.internal", 443)


@pytest.mark.parametrize("bad", ["graph.microsoft.com", "ftp://x", "https://x/?a=1", "http://"])
def test_bad_override_is_a_clear_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="not a valid endpoint"):
        endpoints_for("global", graph_endpoint=bad)


def test_unknown_cloud_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="usgov-dod"):
        endpoints_for("mars")
