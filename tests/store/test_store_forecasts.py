"""Forecast tables on both backends: model versions, issued forecasts, support windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridflock.store import Store
from gridflock.store.records import IssuedForecast, SupportWindowRecord

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
Q = (0.1, 0.5, 0.9)


def _forecast(
    issued: datetime, group: str, scale: float, horizon: str = "intraday"
) -> IssuedForecast:
    base = scale * np.arange(8, dtype=float)
    values = np.stack([base - 1, base, base + 1], axis=1)
    values[3, 0] = np.nan  # a missing value survives as NaN
    return IssuedForecast(
        issued_at=issued,
        horizon=horizon,
        quantity="net_import",
        group_by="grid_node" if group != "fleet" else "fleet",
        group=group,
        model_id="m1",
        start=issued + timedelta(minutes=15),
        step_s=900,
        quantiles=Q,
        values_kw=values,
    )


def test_model_versions_round_trip_newest_first(store: Store) -> None:
    bundle = bytes(range(256)) * 40  # binary, with NUL bytes
    store.save_forecast_model(
        "m1",
        "all",
        trained_at=T0,
        data_start=T0 - timedelta(days=28),
        data_end=T0,
        params={"rounds": 50, "quantiles": [0.1, 0.5, 0.9]},
        backtest={"net_import": {"mae_kw": 1.5, "skill": 0.31}},
        bundle=bundle,
    )
    store.save_forecast_model(
        "m2",
        "all",
        trained_at=T0 + timedelta(hours=1),
        data_start=T0,
        data_end=T0 + timedelta(hours=1),
        params={},
        backtest={},
        bundle=b"x",
    )
    newest, oldest = store.forecast_models()
    assert (newest.id, oldest.id) == ("m2", "m1")
    assert oldest.size_bytes == len(bundle)
    assert oldest.backtest["net_import"]["skill"] == 0.31
    assert oldest.params["quantiles"] == [0.1, 0.5, 0.9]
    assert oldest.data_start == T0 - timedelta(days=28)
    assert oldest.trained_at.tzinfo is not None
    assert store.forecast_model_bundle("m1") == bundle
    assert store.forecast_model_bundle("nope") is None
    assert [m.id for m in store.forecast_models(limit=1, offset=1)] == ["m1"]
    assert store.forecast_models(quantity="pv") == []


def test_latest_forecast_per_group_with_nan_kept(store: Store) -> None:
    older = [_forecast(T0, "fleet", 1.0), _forecast(T0, "F1", 2.0)]
    newer = [_forecast(T0 + timedelta(minutes=15), "fleet", 3.0)]
    day_ahead = [_forecast(T0 - timedelta(hours=2), "fleet", 5.0, "day_ahead")]
    assert store.save_forecasts(older + newer + day_ahead) == 4
    got = store.latest_forecasts(horizon="intraday")
    by_group = {f.group: f for f in got}
    assert set(by_group) == {"fleet", "F1"}
    assert by_group["fleet"].issued_at == T0 + timedelta(minutes=15)  # the newest issue
    assert by_group["F1"].issued_at == T0  # F1 was only issued once
    f = by_group["fleet"]
    assert f.quantiles == Q
    assert f.values_kw.shape == (8, 3)
    assert np.isnan(f.values_kw[3, 0])
    np.testing.assert_array_equal(f.values_kw[:, 1], 3.0 * np.arange(8))
    # what was known before the newer issue
    [then] = store.latest_forecasts(
        group="fleet", horizon="intraday", before=T0 + timedelta(minutes=1)
    )
    assert then.issued_at == T0
    [da] = store.latest_forecasts(horizon="day_ahead")
    assert da.values_kw[1, 1] == 5.0
    # issuing again overwrites, never duplicates
    store.save_forecasts([_forecast(T0, "F1", 7.0)])
    [f1] = store.latest_forecasts(group="F1")
    assert f1.values_kw[1, 1] == 7.0


def test_a_forecast_of_the_wrong_shape_is_refused(store: Store) -> None:
    bad = _forecast(T0, "fleet", 1.0)
    bad = IssuedForecast(**{**bad.__dict__, "values_kw": np.zeros((8, 2))})
    with pytest.raises(ValueError, match="3 quantiles"):
        store.save_forecasts([bad])
    assert store.latest_forecasts() == []


def test_support_windows_of_the_latest_issue(store: Store) -> None:
    def window(issued: datetime, scope: str, kw: float) -> SupportWindowRecord:
        return SupportWindowRecord(
            issued,
            "day_ahead",
            scope,
            T0 + timedelta(hours=30),
            T0 + timedelta(hours=31),
            0.7,
            kw,
            "net import above 80 kW",
            kw_needed_p90=2 * kw,
        )

    store.save_support_windows(T0, "day_ahead", [window(T0, "fleet", 10.0)])
    later = T0 + timedelta(days=1)
    store.save_support_windows(
        later, "day_ahead", [window(later, "grid_node:F1", 4.0), window(later, "fleet", 12.0)]
    )
    got = store.latest_support_windows()
    assert {(w.scope, w.kw_needed, w.kw_needed_p90) for w in got} == {
        ("grid_node:F1", 4.0, 8.0),
        ("fleet", 12.0, 24.0),
    }
    assert all(w.issued_at == later for w in got)
    # an issue with no windows replaces the windows of that issue with none
    store.save_support_windows(later, "day_ahead", [])
    assert store.latest_support_windows("day_ahead")[0].issued_at == T0


def test_prune_keeps_the_recent_issues_and_newest_models(store: Store) -> None:
    store.save_forecasts(
        [_forecast(T0, "fleet", 1.0), _forecast(T0 + timedelta(days=9), "fleet", 2.0)]
    )
    for i in range(3):
        store.save_forecast_model(
            f"m{i}",
            "all",
            trained_at=T0 + timedelta(hours=i),
            data_start=T0,
            data_end=T0,
            params={},
            backtest={},
            bundle=b"b",
        )
    assert store.prune_forecasts(T0 + timedelta(days=2), keep_models=2) == 2
    [f] = store.latest_forecasts()
    assert f.issued_at == T0 + timedelta(days=9)
    assert [m.id for m in store.forecast_models()] == ["m2", "m1"]
