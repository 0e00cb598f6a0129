"""Service configuration from ``GRIDFLOCK_*`` environment variables or a TOML file.

Precedence: explicit arguments, then environment variables, then the TOML file named by
``GRIDFLOCK_CONFIG`` (default ``gridflock.toml`` in the working directory, if present),
then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "load_settings"]


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
    mqtt_username: str = Field("gridflock-service", description="Service account on the broker")
    mqtt_password: SecretStr | None = Field(None, description="Service account password")
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
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "console"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str) -> str:
        if not v.startswith(("sqlite", "postgresql")):
            raise ValueError("use sqlite:///path.db or postgresql://user@host:5432/db")
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
        data = self.model_dump()
        data["mqtt_password"] = "********" if self.mqtt_password else None
        for key in ("database_url", "mqtt_url"):
            data[key] = _mask_url(data[key])
        return data


def _mask_url(url: str | None) -> str | None:
    """Hide a password embedded in a URL (``scheme://user:secret@host``)."""
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:********@{host}" if ":" in creds else url


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; ``overrides`` (e.g. from CLI options) win over everything."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
