"""Service configuration from ``GRIDFLOCK_*`` environment variables or a TOML file.

Precedence: explicit arguments, then environment variables, then the TOML file named by
``GRIDFLOCK_CONFIG`` (default ``gridflock.toml`` in the working directory, if present),
then the defaults below.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "load_settings", "mask_url", "redact"]


class Settings(BaseSettings):
    """Everything ``gridflock serve`` and friends read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="GRIDFLOCK_", extra="forbid", validate_default=True
    )

    database_url: str = Field(
        "sqlite:///gridflock.db",
        description="SQLAlchemy URL: sqlite:///file.db or postgresql://...",
    )
    mqtt_url: str | None = Field(
        None,
        description="Broker URL, e.g. mqtt://127.0.0.1:1883 "
        "(mqtts:// for TLS); empty: no MQTT devices",
    )
    role: Literal["all", "control", "ingest", "api"] = Field(
        "all",
        description="What this process runs: all (one process, the default), control (the "
        "leader, or a hot standby while another leads), ingest (telemetry into the store), "
        "api (API and dashboard replica)",
    )
    bus_url: str | None = Field(
        None,
        description="Internal bus between roles, e.g. nats://127.0.0.1:4222; needed only "
        "when roles run apart",
    )
    mqtt_username: str = Field("gridflock-service", description="Service account on the broker")
    mqtt_password: SecretStr | None = Field(None, description="Service account password")
    mqtt_client_id: str = Field(
        "gridflock-service-1",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$",
        description="MQTT client id of this service process: stable across restarts (a "
        "restart takes over its session), unique per process (gridflock-<role>-<n>)",
    )
    mqtt_tls_ca_file: str | None = Field(
        None, description="CA (PEM) of the broker's certificate for mqtts:// (default: system's)"
    )
    mqtt_tls_cert_file: str | None = Field(
        None, description="Client certificate (PEM) for brokers that require one"
    )
    mqtt_tls_key_file: str | None = Field(None, description="Key of the client certificate")
    gateway_max_messages_per_s: float = Field(
        10.0, gt=0, description="Telemetry messages a gateway may send per second (average)"
    )
    gateway_max_readings_per_s: float = Field(
        2000.0, gt=0, description="Readings a gateway may send per second (average)"
    )
    gateway_burst_s: float = Field(
        10.0, gt=0, description="Seconds' worth of the rates above a gateway may send at once"
    )
    ocpp_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of the OCPP back end for EV chargers (1.6J and 2.0.1 over "
        "websockets); empty: no OCPP",
    )
    ocpp_host: str = Field("127.0.0.1", description="Listen address of the OCPP back end")
    ocpp_tls_certfile: Path | None = Field(
        None,
        description="TLS certificate (PEM) of the OCPP back end (security profile 2); "
        "default: the API's tls_certfile",
    )
    ocpp_tls_keyfile: Path | None = Field(None, description="Key of ocpp_tls_certfile")
    ocpp_allow_insecure: bool = Field(
        False,
        description="Accept chargers over plain ws:// (security profile 1: their passwords "
        "travel in clear); only on a private network",
    )
    ocpp_rate_unit: Literal["A", "W"] = Field(
        "A", description="Unit of the charging limits sent: A per phase, or W"
    )
    ocpp_voltage_v: float = Field(
        230.0, gt=0, le=1000, description="Phase voltage for converting kW and A [V]"
    )
    ocpp_response_timeout_s: float = Field(
        10.0, gt=0, le=120, description="A charger that does not answer within this: expired"
    )
    host: str = Field("127.0.0.1", description="HTTP listen address")
    port: int = Field(8000, ge=0, le=65535, description="HTTP listen port")
    control_interval_s: float = Field(2.0, gt=0, le=60, description="Tracking loop period [s]")
    command_ttl_s: float = Field(
        30.0,
        gt=0,
        le=300,
        description="Command lifetime [s]: a device falls back to its own control this long "
        "after its last command, so a silent service loses its hold on the fleet within it; "
        "renewed while an event holds the device. More than two control intervals.",
    )
    stale_after_s: float = Field(60.0, gt=0, description="A device silent this long is offline")
    flex_duration_h: float = Field(
        1.0, gt=0, le=24, description="Duration the fleet summary's flexibility holds"
    )
    telemetry_buffer_rows: int = Field(
        2_000_000, ge=1000, description="Readings kept while the database is away"
    )
    telemetry_flush_s: float = Field(1.0, gt=0, description="Telemetry write period [s]")
    tls_certfile: Path | None = Field(
        None, description="HTTPS: the server's certificate chain (PEM); empty: plain HTTP"
    )
    tls_keyfile: Path | None = Field(None, description="HTTPS: the certificate's private key")
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest API request body [bytes]"
    )
    max_import_bytes: int = Field(
        200 * 1024 * 1024, ge=1024, description="Largest fleet file for the API import [bytes]"
    )
    settlement_reward_basis: Literal["kwh", "kw_event"] = Field(
        "kwh", description="What customers are paid on: kWh delivered, or kW per event"
    )
    settlement_reward_rate: float = Field(
        0.30, ge=0, le=1e6, description="Reward per kWh or per kW-event, in the currency"
    )
    settlement_currency: str = Field(
        "EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the reward currency"
    )
    settlement_emission_factor_kg_per_mwh: float = Field(
        577.0,
        ge=0,
        le=2000,
        description="Marginal CO2 of the peaker a delivery replaces [kg/MWh generated]; "
        "default: an open-cycle gas turbine (56.1 kg CO2/GJ gas at 35 % efficiency)",
    )
    settlement_emission_factor_source: str = Field(
        "open-cycle gas turbine: 56.1 kg CO2/GJ natural gas (IPCC 2006 Guidelines, vol. 2, "
        "table 1.4, net calorific value) at 35 % net electrical efficiency = 577 kg CO2/MWh",
        max_length=500,
        description="Where the emission factor comes from (printed in every statement)",
    )
    settlement_emissions_file: Path | None = Field(
        None,
        description="CSV of hourly marginal emissions (columns ts,kg_co2_per_mwh; ts the UTC "
        "hour start); hours it lacks use the factor above. Empty: the factor alone",
    )
    settlement_loss_fraction: float = Field(
        0.05, ge=0, lt=0.5, description="Network losses between plant and meter (0.05 = 5 %)"
    )
    settlement_non_responder_kw: float = Field(
        0.1, ge=0, description="A site delivering less than this [kW] is a non-responder"
    )
    settlement_confidence: float = Field(
        0.9, ge=0.5, lt=1, description="Confidence of the uncertainty intervals (0.9 = 90 %)"
    )
    settlement_interval_s: Literal[900, 1800] = Field(
        900, description="Settlement interval [s]: 900 (15 min) or 1800 (30 min)"
    )
    settlement_history_days: int = Field(
        35,
        ge=12,
        le=400,
        description="Days of meter data read before an event for its baselines and placebo days",
    )
    settlement_placebo_days: int = Field(
        10,
        ge=3,
        le=40,
        description="Recent days without an event on which each method's accuracy and "
        "uncertainty are measured (more: steadier figures, slower statements)",
    )
    settlement_issue_after_s: float = Field(
        3600.0,
        ge=0,
        le=30 * 86400,
        description="A finished event's statement is issued (kept in the database, no longer "
        "changing) this long after the event ends, once its meter data is in [s]",
    )
    settlement_holidays: list[dt.date] = Field(
        default_factory=list,
        description="Public holidays (local dates) baselines skip, e.g. [2026-12-25]",
    )
    forecast_enabled: bool = Field(
        True, description="Train models and issue forecasts on the schedule below"
    )
    forecast_quantiles: list[float] = Field(
        [0.1, 0.5, 0.9],
        description="Quantile levels forecast (ascending, within 0..1, at least 0.1, 0.5, 0.9)",
    )
    forecast_intraday_every_min: int = Field(
        15, description="Intraday issue period [min]: 5, 10, 15, 20, 30 or 60"
    )
    forecast_intraday_hours: float = Field(
        8.0, gt=0, le=48, description="Intraday horizon [h] from the next quarter hour"
    )
    forecast_day_ahead_hour: float = Field(
        10.0,
        ge=0,
        lt=12,
        description="Local hour on D-1 at which the day-ahead forecast for D is issued "
        "(before noon)",
    )
    forecast_timezone: str | None = Field(
        None,
        description="IANA time zone of 'local' for the day-ahead (empty: the sites' most "
        "common time zone)",
    )
    forecast_retrain_every_h: float = Field(
        24.0, gt=0, le=24 * 90, description="Retrain the models this often [h]"
    )
    forecast_history_days: int = Field(
        56, ge=14, le=730, description="Telemetry history the models train on [days]"
    )
    forecast_keep_days: int = Field(
        14, ge=1, le=3650, description="Issued forecasts kept in the database [days]"
    )
    forecast_boost_rounds: int = Field(
        80, ge=5, le=5000, description="Boosting rounds per quantile model"
    )
    forecast_max_rows: int = Field(
        150_000,
        ge=1000,
        le=50_000_000,
        description="Training rows sampled per quantity (bounds training time and memory)",
    )
    forecast_train_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Quantities trained side by side in threads (1 leaves the other cores "
        "to the control loop; one per core on a dedicated forecasting host)",
    )
    forecast_quantities: list[str] | None = Field(
        None,
        description="Quantities to forecast (empty: all the telemetry has: load, pv, wind, "
        "heat_pump, water_heater, ev, battery, net)",
    )
    forecast_backtest_days: int = Field(
        2,
        ge=0,
        le=28,
        description="After each training, final days held out for a rolling-origin backtest "
        "of the fleet's net (skill against seasonal naive, coverage...); 0: none",
    )
    forecast_weather: Literal["auto", "twin", "file", "none"] = Field(
        "auto",
        description="Weather forecasts: the twin's (demo), a file of recorded forecasts "
        "(forecast_weather_file), or none; auto: the twin's in the demo, else none",
    )
    forecast_weather_file: Path | None = Field(
        None, description="CSV or parquet of recorded weather forecasts (docs/forecast.md)"
    )
    forecast_support_fleet_kw: float | None = Field(
        None,
        gt=0,
        description="Fleet net import [kW] above which the grid needs the plant (empty: the "
        "90th percentile of the fleet's net import in the training history); grid nodes "
        "use their import limits",
    )
    openadr_ven: Literal["off", "2.0b", "3"] = Field(
        "off", description="Listen to a utility over OpenADR: off, a 2.0b VEN or a 3 VEN"
    )
    openadr_vtn_url: str | None = Field(
        None,
        description="The utility's VTN: 2.0b e.g. https://vtn.example/OpenADR2/Simple/2.0b; "
        "3 the API's base URL, e.g. https://vtn.example/openadr3/3.0.1",
    )
    openadr_ven_name: str = Field(
        "gridflock", min_length=1, max_length=128, description="This VEN's name at the VTN"
    )
    openadr_ven_id: str | None = Field(
        None, description="2.0b: the VEN id the utility assigned (empty: the VTN assigns one)"
    )
    openadr_cert_file: Path | None = Field(
        None, description="2.0b: this VEN's certificate (PEM), for TLS and signed messages"
    )
    openadr_key_file: Path | None = Field(None, description="2.0b: the certificate's key")
    openadr_ca_file: Path | None = Field(None, description="2.0b: CA of the VTN's certificate")
    openadr_vtn_fingerprint: str | None = Field(
        None, description="2.0b: the VTN certificate's fingerprint, to check its signatures"
    )
    openadr_token: SecretStr | None = Field(None, description="3: bearer token for the VTN")
    openadr_client_id: str | None = Field(
        None, description="3: OAuth2 client id, exchanged with the secret at /auth/token"
    )
    openadr_client_secret: SecretStr | None = Field(None, description="3: OAuth2 client secret")
    openadr_programs: list[str] = Field(
        default_factory=list, description="3: names of the programs to follow (empty: all)"
    )
    openadr_poll_s: float = Field(
        10.0, ge=0.05, le=3600, description="3: how often the VEN polls for events [s]"
    )
    openadr_report_s: float = Field(
        10.0, ge=1, le=3600, description="2.0b: shortest report interval offered to the VTN [s]"
    )
    openadr_retry_s: float = Field(
        60.0, ge=1, le=3600, description="Longest wait between tries while the VTN is away [s]"
    )
    openadr_opt: Literal["opt_in", "flexibility"] = Field(
        "flexibility",
        description="opt_in: take every event (partial where the fleet falls short); "
        "flexibility: opt out of an event the fleet cannot deliver in full",
    )
    openadr_scope: str = Field(
        "fleet", description="Devices utility events use: fleet, grid_node:ID, program:TAG..."
    )
    openadr_priority: int = Field(
        60, ge=0, le=100, description="Priority of utility events (operator's default: 50)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "console"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str) -> str:
        if not v.startswith(("sqlite", "postgresql")):
            raise ValueError("use sqlite:///path.db or postgresql://user@host:5432/db")
        return v

    @field_validator("settlement_emissions_file")
    @classmethod
    def _emissions_file(cls, v: Path | None) -> Path | None:
        if v is None or str(v) == "":
            return None
        from gridflock.mv.peaker import read_marginal_emissions

        read_marginal_emissions(v)  # a clear error listing every problem, at start
        return v

    @field_validator("command_ttl_s")
    @classmethod
    def _outlives_renewal(cls, v: float, info: ValidationInfo) -> float:
        interval = info.data.get("control_interval_s")
        if interval is not None and not v > 2 * interval:
            raise ValueError(
                f"command_ttl_s ({v:g} s) must exceed two control intervals ({2 * interval:g} s) "
                "or commands lapse between renewals: raise it or lower control_interval_s"
            )
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _known_broker(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("mqtt://", "mqtts://")):
            raise ValueError("use mqtt://host:1883 or mqtts://host:8883")
        return v

    @field_validator("forecast_quantiles")
    @classmethod
    def _quantile_levels(cls, v: list[float]) -> list[float]:
        if any(not 0 < q < 1 for q in v) or sorted(set(v)) != v:
            raise ValueError("give distinct ascending levels strictly between 0 and 1")
        missing = [q for q in (0.1, 0.5, 0.9) if not any(abs(q - x) < 1e-9 for x in v)]
        if missing:
            raise ValueError(f"the levels must include 0.1, 0.5 and 0.9 (missing {missing})")
        return v

    @field_validator("forecast_intraday_every_min")
    @classmethod
    def _divides_the_hour(cls, v: int) -> int:
        if v not in (5, 10, 15, 20, 30, 60):
            raise ValueError("use 5, 10, 15, 20, 30 or 60 minutes")
        return v

    @field_validator("forecast_timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r}: use an IANA name like Europe/Berlin"
            ) from None
        return v

    @model_validator(mode="after")
    def _weather_file(self) -> Settings:
        if self.forecast_weather == "file":
            path = self.forecast_weather_file
            if path is None or not path.is_file():
                raise ValueError(
                    "forecast_weather=file needs forecast_weather_file, an existing CSV or "
                    f"parquet file (got {path})"
                )
        return self

    @model_validator(mode="after")
    def _openadr(self) -> Settings:
        if self.openadr_ven != "off" and not self.openadr_vtn_url:
            raise ValueError(
                f"openadr_ven={self.openadr_ven} needs openadr_vtn_url, the utility's VTN"
            )
        if self.openadr_vtn_url and not self.openadr_vtn_url.startswith(("http://", "https://")):
            raise ValueError("openadr_vtn_url must start with http:// or https://")
        if (self.openadr_cert_file is None) != (self.openadr_key_file is None):
            raise ValueError("openadr_cert_file and openadr_key_file go together")
        from gridflock.domain.events import Scope

        Scope.parse(self.openadr_scope)  # names what is wrong with it
        return self

    @model_validator(mode="after")
    def _ocpp_tls(self) -> Settings:
        if (self.ocpp_tls_certfile is None) != (self.ocpp_tls_keyfile is None):
            raise ValueError("ocpp_tls_certfile and ocpp_tls_keyfile go together")
        for name in ("ocpp_tls_certfile", "ocpp_tls_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no file at {path}")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("GRIDFLOCK_TLS_CERTFILE and GRIDFLOCK_TLS_KEYFILE go together")
        for name in ("tls_certfile", "tls_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no file at {path}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment, then the TOML file."""
        toml = Path(os.environ.get("GRIDFLOCK_CONFIG", "gridflock.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    def public(self) -> dict[str, Any]:
        """The effective configuration with secrets masked (for ``config show``)."""
        data = self.model_dump(mode="json")
        data["mqtt_password"] = "********" if self.mqtt_password else None
        for key in ("openadr_token", "openadr_client_secret"):
            data[key] = "********" if getattr(self, key) else None
        for key in ("database_url", "mqtt_url", "openadr_vtn_url"):
            data[key] = mask_url(data[key])
        return data


def mask_url(url: str | None) -> str | None:
    """Hide a password embedded in a URL (``scheme://user:secret@host``, ``?password=``)."""
    if not url:
        return url
    masked = _USERINFO.sub(r"\g<1>\g<2>:********@", url)
    return _PASSWORD_PARAM.sub(r"\g<1>********", masked)


def redact(text: str, *urls: str | None) -> str:
    """``text`` with each URL in it masked and each URL's password replaced by ``********``.

    For error messages that may quote a connection URL, or a driver's message that
    may quote a password; nothing printed or logged should carry one.
    """
    for url in urls:
        if not url:
            continue
        text = text.replace(url, mask_url(url) or "")
        for secret in _passwords(url):
            text = text.replace(secret, "********")
    return _USERINFO.sub(r"\g<1>\g<2>:********@", text)


def _passwords(url: str) -> list[str]:
    """The password(s) a URL carries, raw and percent-decoded."""
    found = [m.group(3) for m in _USERINFO.finditer(url)]
    found += [m.group(2) for m in _PASSWORD_PARAM_VALUE.finditer(url)]
    return [p for secret in found for p in {secret, unquote(secret)} if len(p) >= 3]


_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^:/?#@\s]*):([^@/\s]*)@")
_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#\s]*", re.IGNORECASE)
_PASSWORD_PARAM_VALUE = re.compile(r"([?&]password=)([^&#\s]*)", re.IGNORECASE)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; ``overrides`` (e.g. from CLI options) win over everything."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
