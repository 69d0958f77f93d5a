"""The numeric env settings (batch size, freshness window, change retention): one rule, clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tenantatlas_pipelines.defs.batching import BATCH_SIZE_ENV, DEFAULT_BATCH_SIZE, batch_size
from tenantatlas_pipelines.defs.checks import FRESHNESS_WINDOW_ENV, freshness_window
from tenantatlas_pipelines.inventory.errors import ConfigError
from tenantatlas_pipelines.sync.changes import RETENTION_ENV, change_retention


def test_unset_settings_take_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (BATCH_SIZE_ENV, FRESHNESS_WINDOW_ENV, RETENTION_ENV):
        monkeypatch.delenv(name, raising=False)
    assert batch_size() == DEFAULT_BATCH_SIZE
    assert freshness_window() == timedelta(hours=26)
    assert change_retention() == timedelta(days=90)


def test_set_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BATCH_SIZE_ENV, "25")
    monkeypatch.setenv(FRESHNESS_WINDOW_ENV, "1.5")
    monkeypatch.setenv(RETENTION_ENV, "7")
    assert batch_size() == 25
    assert freshness_window() == timedelta(hours=1.5)
    assert change_retention() == timedelta(days=7)


@pytest.mark.parametrize(
    ("name", "raw", "read"),
    [
        (BATCH_SIZE_ENV, "0", batch_size),
        (BATCH_SIZE_ENV, "2.5", batch_size),
        (BATCH_SIZE_ENV, "fifty", batch_size),
        (FRESHNESS_WINDOW_ENV, "-1", freshness_window),
        (FRESHNESS_WINDOW_ENV, "a day", freshness_window),
        (RETENTION_ENV, "0", change_retention),
        (RETENTION_ENV, "40000", change_retention),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str, read: object
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=rf"^{name}='{raw}' is not .* unset it for the default"):
        read()  # type: ignore[operator]
