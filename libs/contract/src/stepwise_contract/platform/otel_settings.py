"""What the standard `OTEL_*` variables ask of Stepwise's tracing, parsed without the SDK.

`CommonSettings` parses them at `main` with every other setting; only a service whose settings
turn tracing on needs the OpenTelemetry SDK (`tracing.configure_tracing`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Final

import msgspec

DEFAULT_OTLP_ENDPOINT: Final = "http://localhost:4318"
TRACES_PATH: Final = "/v1/traces"
EXPORTERS: Final = frozenset({"otlp", "console"})
SAMPLERS: Final = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)
# Probes and scrapes would drown the traces that matter.
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


class TracingConfigError(ValueError):
    """An `OTEL_*` value Stepwise cannot honour (CommonSettings turns it into SettingsError)."""


class OtelSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the `OTEL_*` variables ask for. No exporter = tracing off (the default)."""

    exporters: tuple[str, ...] = ()
    # full URL of the OTLP/HTTP traces endpoint
    endpoint: str = DEFAULT_OTLP_ENDPOINT + TRACES_PATH
    headers: dict[str, str] = {}
    timeout_s: float = 10.0
    # OTEL_SERVICE_NAME; empty = the service's own name
    service_name: str = ""
    resource_attributes: dict[str, str] = {}
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OtelSettings:
        """Standard variables, opt-in: tracing is on when `OTEL_TRACES_EXPORTER` names an exporter
        or an OTLP endpoint is set (the SDK's own default of "always otlp" would make every
        service without a collector log export errors)."""

        def get(name: str) -> str:
            return environ.get(name, "").strip()

        if get("OTEL_SDK_DISABLED").lower() in _TRUE:
            return cls()
        endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        base = get("OTEL_EXPORTER_OTLP_ENDPOINT")
        raw_exporters = get("OTEL_TRACES_EXPORTER")
        if raw_exporters:
            exporters = tuple(e.strip() for e in raw_exporters.split(",") if e.strip())
        else:
            exporters = ("otlp",) if endpoint or base else ()
        exporters = tuple(e for e in exporters if e != "none")
        unknown = sorted(set(exporters) - EXPORTERS)
        if unknown:
            raise TracingConfigError(
                f"OTEL_TRACES_EXPORTER={raw_exporters!r}: unsupported {unknown}; "
                f"use {sorted(EXPORTERS)} or none"
            )
        protocol = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if "otlp" in exporters and protocol not in ("", "http/protobuf"):
            raise TracingConfigError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: Stepwise exports OTLP over"
                " http/protobuf (collector port 4318)"
            )
        if not endpoint:
            endpoint = (base or DEFAULT_OTLP_ENDPOINT).rstrip("/") + TRACES_PATH
        sampler = (get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower()
        if sampler not in SAMPLERS:
            raise TracingConfigError(
                f"OTEL_TRACES_SAMPLER={sampler!r} must be one of {sorted(SAMPLERS)}"
            )
        return cls(
            exporters=exporters,
            endpoint=endpoint,
            headers=_pairs(
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or get("OTEL_EXPORTER_OTLP_HEADERS"),
            ),
            timeout_s=_seconds(
                get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or get("OTEL_EXPORTER_OTLP_TIMEOUT")
            ),
            service_name=get("OTEL_SERVICE_NAME"),
            resource_attributes=_pairs("OTEL_RESOURCE_ATTRIBUTES", get("OTEL_RESOURCE_ATTRIBUTES")),
            sampler=sampler,
            sampler_arg=_ratio(get("OTEL_TRACES_SAMPLER_ARG")),
        )


def _pairs(name: str, raw: str) -> dict[str, str]:
    """`k1=v1,k2=v2` with URL-encoded values (the OTEL list format)."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TracingConfigError(f"{name}: {item!r} is not key=value")
        out[key.strip()] = urllib.parse.unquote(value.strip())
    return out


def _seconds(raw: str) -> float:
    """OTLP timeouts are milliseconds."""
    if not raw:
        return 10.0
    try:
        millis = float(raw)
    except ValueError:
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_TIMEOUT={raw!r} is not milliseconds"
        ) from None
    if millis <= 0:
        raise TracingConfigError(f"OTEL_EXPORTER_OTLP_TIMEOUT={raw!r} must be > 0")
    return millis / 1000.0


def _ratio(raw: str) -> float:
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG={raw!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG={raw!r} must be within 0..1")
    return value
