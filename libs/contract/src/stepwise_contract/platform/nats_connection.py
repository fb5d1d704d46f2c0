"""How a Stepwise process reaches NATS: one server or a cluster, with credentials and TLS.

- `NATS_URL`: one URL or a comma-separated list (`nats://a:4222,nats://b:4222,nats://c:4222`).
  The client connects to one of them and fails over to the others (and to the routes the cluster
  announces) when it drops.
- `NATS_CREDS`: a `.creds` file (user JWT and nkey seed), for decentralised auth (NGS/Synadia
  Cloud or an operator-mode cluster).
- `NATS_CA`: the CA that signed the servers' certificates (else the system's CAs).
- `NATS_CERT` + `NATS_KEY`: a client certificate, for mutual TLS.
- `STEPWISE_NATS_STREAM_REPLICAS` (1): replicas of the events and DLQ streams when the router
  creates or updates them (3 on a three-node cluster; at most the number of JetStream nodes).

The names are those of the `nats` CLI, so one environment serves both. TLS is used when a URL is
`tls://` or any TLS file is set.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import msgspec

from stepwise_contract.platform.connection_config import ConnectionConfigError, env_file

if TYPE_CHECKING:
    from nats.aio.client import Client as Nats

DEFAULT_NATS_URL: Final = "nats://127.0.0.1:4222"
NATS_SCHEMES: Final = ("nats", "tls", "ws", "wss")
# a JetStream stream has at most 5 replicas
MAX_STREAM_REPLICAS: Final = 5


def parse_nats_urls(raw: str, name: str = "NATS_URL") -> tuple[str, ...]:
    """Comma-separated NATS URLs, each `scheme://host:port` (the port may be left out); no empty
    items, no duplicates."""
    items = [item.strip() for item in raw.split(",")]
    if not raw.strip():
        raise ConnectionConfigError(f"{name} is empty; give at least one nats://host:port URL")
    urls: list[str] = []
    for index, item in enumerate(items, start=1):
        if not item:
            raise ConnectionConfigError(f"{name}={raw!r}: item {index} is empty (stray comma?)")
        try:
            parts = urlsplit(item)
            port = parts.port  # raises on a non-numeric or out-of-range port
        except ValueError as exc:
            raise ConnectionConfigError(f"{name}: {item!r} is not a valid URL ({exc})") from None
        if parts.scheme not in NATS_SCHEMES or "://" not in item:
            raise ConnectionConfigError(
                f"{name}: {item!r} must be a nats://host:port URL"
                f" (schemes: {', '.join(NATS_SCHEMES)})"
            )
        if not parts.hostname:
            raise ConnectionConfigError(f"{name}: {item!r} has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConnectionConfigError(
                f"{name}: {item!r} must be scheme://host:port, nothing after it"
            )
        if port == 0:
            raise ConnectionConfigError(f"{name}: {item!r} has port 0")
        if item in urls:
            raise ConnectionConfigError(f"{name}: {item!r} is listed twice")
        urls.append(item)
    return tuple(urls)


def _stream_replicas(raw: str) -> int:
    name = "STEPWISE_NATS_STREAM_REPLICAS"
    if not raw:
        return 1
    try:
        replicas = int(raw)
    except ValueError:
        raise ConnectionConfigError(f"{name}={raw!r} is not an integer") from None
    if not 1 <= replicas <= MAX_STREAM_REPLICAS:
        raise ConnectionConfigError(
            f"{name}={replicas}: JetStream allows 1 to {MAX_STREAM_REPLICAS}"
        )
    return replicas


class NatsSettings(msgspec.Struct, frozen=True, kw_only=True):
    servers: tuple[str, ...] = (DEFAULT_NATS_URL,)
    credentials_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    stream_replicas: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> NatsSettings:
        cert = env_file(environ, "NATS_CERT")
        key = env_file(environ, "NATS_KEY")
        if (cert is None) != (key is None):
            raise ConnectionConfigError("NATS_CERT and NATS_KEY go together (mTLS)")
        replicas = _stream_replicas(environ.get("STEPWISE_NATS_STREAM_REPLICAS", "").strip())
        return cls(
            servers=parse_nats_urls(environ.get("NATS_URL", "").strip() or DEFAULT_NATS_URL),
            credentials_file=env_file(environ, "NATS_CREDS"),
            tls_ca_file=env_file(environ, "NATS_CA"),
            tls_cert_file=cert,
            tls_key_file=key,
            stream_replicas=replicas,
        )

    @property
    def uses_tls(self) -> bool:
        return bool(
            self.tls_ca_file
            or self.tls_cert_file
            or any(url.startswith(("tls://", "wss://")) for url in self.servers)
        )

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.tls_ca_file)
        if self.tls_cert_file and self.tls_key_file:
            context.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        return context


async def connect_nats(settings: NatsSettings, *, name: str, **options: Any) -> Nats:
    """Connect to every configured server (the client picks one and fails over), with the
    credentials and TLS of `settings`; `options` are nats-py's (callbacks, reconnect policy)."""
    # imported here: the settings above are read by every service, the sweeper has no NATS
    import nats

    extra: dict[str, Any] = {}
    if settings.credentials_file:
        extra["user_credentials"] = settings.credentials_file
    context = settings.tls_context()
    if context is not None:
        extra["tls"] = context
    return await nats.connect(list(settings.servers), name=name, **extra, **options)
