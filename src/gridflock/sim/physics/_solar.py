"""PV: AC output per kWp of binned array orientations (pvlib models)."""

from __future__ import annotations

import numpy as np
import pvlib

from gridflock.sim.physics._types import ArrayLike, FloatArray, IntArray
from gridflock.sim.weather import Weather

#: Orientation bins of :func:`pv_profiles` [deg].
TILT_BIN_DEG = 5.0
AZIMUTH_BIN_DEG = 15.0
_N_AZ_BINS = round(360.0 / AZIMUTH_BIN_DEG)
#: PVWatts temperature coefficient of DC power [1/K].
GAMMA_PDC = -0.004
#: Nominal inverter efficiency (PVWatts inverter model).
ETA_INVERTER = 0.96
#: SAPM cell temperature parameters: modules rack-mounted close to a roof.
_SAPM = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["close_mount_glass_glass"]


def pv_profiles(
    weather: Weather,
    tilt_deg: ArrayLike,
    azimuth_deg: ArrayLike,
    lat: float,
    lon: float,
) -> tuple[FloatArray, IntArray]:
    """AC output per kWp of each orientation bin, and each array's bin [kW/kWp].

    Orientations are binned (tilt to 5 deg, azimuth to 15 deg), so memory is
    O(T * bins + n). Per bin: Hay-Davies transposition to the plane of array, physical
    IAM on the beam, SAPM cell temperature (close roof mount), PVWatts DC with
    gamma -0.4 %/K, PVWatts inverter with 1 kW AC per kWp and 96 % nominal efficiency.
    System losses are not applied: output of array i at step t is
    ``kwp[i] * (1 - loss[i]) * profiles[t, bin_index[i]]``.

    Parameters
    ----------
    weather : Weather
        Irradiance, sun position, air temperature and wind over T steps.
    tilt_deg : array (n,) [deg]
        Tilt from horizontal, 0..90.
    azimuth_deg : array (n,) [deg]
        Clockwise from north (180 = south).
    lat : float [deg]
        Site latitude; unused, the sun's position already is in ``weather``.
    lon : float [deg]
        Site longitude; unused, as ``lat``.

    Returns
    -------
    profiles : array (T, n_bins) [kW/kWp], >= 0
    bin_index : int array (n,)

    """
    del lat, lon  # the solar position in ``weather`` already encodes the site
    tilt = np.clip(np.asarray(tilt_deg, dtype=np.float64), 0.0, 90.0)
    azimuth = np.asarray(azimuth_deg, dtype=np.float64) % 360.0
    tilt_i = np.rint(tilt / TILT_BIN_DEG).astype(np.intp)
    az_i = np.rint(azimuth / AZIMUTH_BIN_DEG).astype(np.intp) % _N_AZ_BINS
    keys, bin_index = np.unique(tilt_i * _N_AZ_BINS + az_i, return_inverse=True)
    bin_tilt = (keys // _N_AZ_BINS) * TILT_BIN_DEG
    bin_az = (keys % _N_AZ_BINS) * AZIMUTH_BIN_DEG

    col = np.newaxis
    zenith = weather.solar_zenith[:, col]
    sun_az = weather.solar_azimuth[:, col]
    doy = weather.times.day_of_year.to_numpy()
    dni_extra = np.asarray(pvlib.irradiance.get_extra_radiation(doy), dtype=np.float64)[:, col]
    with np.errstate(invalid="ignore", divide="ignore"):
        poa = pvlib.irradiance.get_total_irradiance(
            bin_tilt[col, :],
            bin_az[col, :],
            zenith,
            sun_az,
            weather.dni[:, col],
            weather.ghi[:, col],
            weather.dhi[:, col],
            dni_extra=dni_extra,
            model="haydavies",
        )
        aoi = pvlib.irradiance.aoi(bin_tilt[col, :], bin_az[col, :], zenith, sun_az)
        iam = pvlib.iam.physical(aoi)
    direct = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=np.float64), nan=0.0)
    diffuse = np.nan_to_num(np.asarray(poa["poa_diffuse"], dtype=np.float64), nan=0.0)
    iam = np.nan_to_num(np.asarray(iam, dtype=np.float64), nan=0.0)
    poa_global = np.maximum(direct + diffuse, 0.0)
    effective = np.maximum(direct * iam + diffuse, 0.0)
    temp_cell = pvlib.temperature.sapm_cell(
        poa_global,
        weather.temp_air_c[:, col],
        weather.wind_speed_m_s[:, col],
        _SAPM["a"],
        _SAPM["b"],
        _SAPM["deltaT"],
    )
    pdc = np.maximum(pvlib.pvsystem.pvwatts_dc(effective, temp_cell, 1.0, GAMMA_PDC), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pac = pvlib.inverter.pvwatts(pdc, 1.0 / ETA_INVERTER, eta_inv_nom=ETA_INVERTER)
    profiles = np.maximum(np.nan_to_num(np.asarray(pac, dtype=np.float64), nan=0.0), 0.0)
    return profiles, bin_index.astype(np.intp)
