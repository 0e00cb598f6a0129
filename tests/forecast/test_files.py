"""Files of meters and recorded weather forecasts: good ones read, bad ones explained."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridflock.forecast import BadFileError, FileWeatherSource, read_series_file


def meter_frame(days=6, freq="15min", tz=None):
    t = pd.date_range(
        "2026-03-02", periods=int(days * pd.Timedelta("1D") / pd.Timedelta(freq)), freq=freq, tz=tz
    )
    hours = t.hour + t.minute / 60
    return pd.DataFrame(
        {
            "timestamp": t,
            "meter_kw": 1.0 + np.sin(2 * np.pi * hours / 24),
            "temperature": 5.0 + 0.1 * np.arange(len(t)) % 3,
        }
    )


def test_reads_a_plain_csv_of_one_meter_with_weather(tmp_path):
    path = tmp_path / "m.csv"
    meter_frame(tz="UTC").to_csv(path, index=False)
    found = read_series_file(path)
    h = found.history
    assert h.quantities == ("meter_kw",)
    assert h.series["meter_kw"].shape == (1, 6 * 96)
    assert found.weather.names == ("temp_air_c",)
    assert h.times[0] == pd.Timestamp("2026-03-02", tz="UTC")


def test_hourly_naive_times_are_held_over_their_quarter_hours_and_noted(tmp_path):
    path = tmp_path / "m.parquet"
    meter_frame(freq="1h").to_parquet(path)
    found = read_series_file(path, tz="Europe/Amsterdam")
    y = found.history.series["meter_kw"][0]
    assert len(y) == 6 * 96
    np.testing.assert_allclose(y[:4], y[0])  # one hourly value over four quarter hours
    assert any("Europe/Amsterdam" in n for n in found.notes)
    assert any("held over" in n for n in found.notes)
    # 00:00 Amsterdam (winter) is 23:00 UTC the day before
    assert found.history.times[0] == pd.Timestamp("2026-03-01 23:00", tz="UTC")


def test_one_minute_data_is_averaged(tmp_path):
    path = tmp_path / "m.csv"
    f = meter_frame(freq="1min", tz="UTC")
    f["meter_kw"] = np.arange(len(f)) % 15  # 0..14 in every quarter hour -> mean 7
    f.to_csv(path, index=False)
    y = read_series_file(path).history.series["meter_kw"][0]
    np.testing.assert_allclose(y, 7.0)


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.csv"
    f = meter_frame(tz="UTC").astype({"meter_kw": object})
    f.loc[5, "meter_kw"] = "n/a kW"
    f["timestamp"] = f["timestamp"].astype(str)
    f.loc[7, "timestamp"] = "yesterday"
    f["empty"] = np.nan
    f.to_csv(path, index=False)
    with pytest.raises(BadFileError) as e:
        read_series_file(path)
    text = str(e.value)
    assert "'yesterday'" in text
    assert "ISO 8601" in text
    assert "'n/a kW'" in text
    assert "row 6" in text
    assert "'empty' has no value" in text
    assert len(e.value.problems) == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a,b\n1,2\n", "no time column found"),
        ("timestamp\n2026-01-01T00:00Z\n2026-01-01T00:15Z\n", "no value column"),
        ("timestamp,x\n2026-01-01T00:00Z,1\n2026-01-01T00:15Z,2\n", "covers 0.0 days"),
        ("timestamp,x\n2026-01-01T00:00Z,1\n2026-01-01T00:00Z,2\n", "duplicated time"),
        ("", "cannot be read as CSV"),
    ],
)
def test_bad_files_say_what_to_do(tmp_path, content, expected):
    path = tmp_path / "f.csv"
    path.write_text(content)
    with pytest.raises(BadFileError, match=expected):
        read_series_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(BadFileError, match="does not exist"):
        read_series_file(tmp_path / "nope.csv")


def test_weather_forecast_file_answers_with_the_latest_run_known(tmp_path):
    rows = []
    for issue_h, offset in ((0, 0.0), (6, 100.0)):
        issued = pd.Timestamp("2026-03-02", tz="UTC") + pd.Timedelta(hours=issue_h)
        for lead in range(25):
            valid = issued + pd.Timedelta(hours=lead)
            rows.append({"issued_at": issued, "valid_at": valid, "temperature": offset + lead})
    path = tmp_path / "wx.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    src = FileWeatherSource(path)
    assert src.names == ("temp_air_c",)
    t0 = pd.Timestamp("2026-03-02", tz="UTC").timestamp()
    issue = np.array([t0 + 5 * 3600, t0 + 6 * 3600, t0 + 6 * 3600, t0 - 1])
    valid = np.array([t0 + 10.5 * 3600, t0 + 10 * 3600, t0 + 3 * 3600, t0 + 3600])
    got = src.forecast(issue, valid)["temp_air_c"]
    # run 0 at 10:30 -> 10.5 (interpolated); run 6 at 10:00 -> 100 + 4;
    # 03:00 is before run 6 starts -> the older run 0 (3); before any run -> NaN
    np.testing.assert_allclose(got[:3], [10.5, 104.0, 3.0])
    assert np.isnan(got[3])


def test_weather_forecast_file_without_times_is_refused(tmp_path):
    path = tmp_path / "wx.csv"
    path.write_text("when,temp\n2026-01-01T00:00Z,1\n")
    with pytest.raises(BadFileError, match="issued_at"):
        FileWeatherSource(path)
