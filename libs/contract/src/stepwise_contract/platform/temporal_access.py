"""How a Stepwise process authenticates to a Temporal cluster other than a local dev server.

The variables are those of the `temporal` CLI, so one environment serves both:

- `TEMPORAL_TLS` (false): connect with TLS, checking the server against the system's CAs. On by
  itself when any of the files below or an API key is set; `false` then turns it off explicitly.
- `TEMPORAL_TLS_CA`: the CA certificate (PEM file) that signed the frontend's certificate, for a
  self-managed cluster with a private CA.
- `TEMPORAL_TLS_CERT` + `TEMPORAL_TLS_KEY`: the client certificate and key (PEM files) for mutual
  TLS (Temporal Cloud's mTLS namespaces, or a cluster that requires client certificates).
- `TEMPORAL_TLS_SERVER_NAME`: the name to verify the server certificate against when it differs
  from the address's host (e.g. connecting through an internal load balancer).
- `TEMPORAL_API_KEY`: a bearer API key (Temporal Cloud's API-key namespaces); implies TLS.

The namespace is `TEMPORAL_NAMESPACE` and the address `TEMPORAL_ADDRESS` (`settings.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec
from temporalio.service import TLSConfig

from stepwise_contract.platform.connection_config import ConnectionConfigError, env_file

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


class TemporalAccess(msgspec.Struct, frozen=True, kw_only=True):
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    api_key: str | None = None

    def __repr__(self) -> str:
        # settings end up in logs and tracebacks: never the key itself
        key = "set" if self.api_key else None
        return (
            f"TemporalAccess(tls={self.tls}, ca_file={self.ca_file!r}, cert_file="
            f"{self.cert_file!r}, key_file={self.key_file!r}, server_name={self.server_name!r},"
            f" api_key={key!r})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TemporalAccess:
        ca = env_file(environ, "TEMPORAL_TLS_CA")
        cert = env_file(environ, "TEMPORAL_TLS_CERT")
        key = env_file(environ, "TEMPORAL_TLS_KEY")
        if (cert is None) != (key is None):
            raise ConnectionConfigError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together (mTLS)")
        server_name = environ.get("TEMPORAL_TLS_SERVER_NAME", "").strip() or None
        api_key = environ.get("TEMPORAL_API_KEY", "").strip() or None
        if api_key is not None and any(c.isspace() or not c.isprintable() for c in api_key):
            raise ConnectionConfigError(
                "TEMPORAL_API_KEY contains whitespace or control characters"
            )
        wants_tls = bool(ca or cert or server_name or api_key)
        raw = environ.get("TEMPORAL_TLS", "").strip().lower()
        if not raw:
            tls = wants_tls
        elif raw in _TRUE:
            tls = True
        elif raw in _FALSE:
            if ca or cert or server_name:
                raise ConnectionConfigError(
                    "TEMPORAL_TLS=false but TLS files or TEMPORAL_TLS_SERVER_NAME are set"
                )
            tls = False
        else:
            raise ConnectionConfigError(f"TEMPORAL_TLS={raw!r} is not a boolean (use true/false)")
        return cls(
            tls=tls,
            ca_file=ca,
            cert_file=cert,
            key_file=key,
            server_name=server_name,
            api_key=api_key,
        )

    def tls_config(self) -> TLSConfig | bool:
        """For `Client.connect(tls=...)`: the files are read here, at connect time."""
        if not self.tls:
            return False
        if not (self.ca_file or self.cert_file or self.server_name):
            return True
        return TLSConfig(
            server_root_ca_cert=_read(self.ca_file),
            client_cert=_read(self.cert_file),
            client_private_key=_read(self.key_file),
            domain=self.server_name,
        )
