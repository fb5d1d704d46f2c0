"""Settings for clustered dependencies: NATS URL lists, credentials and TLS, stream replicas,
Temporal TLS / mTLS / API key. A hostile or mistyped value is a clear error at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from stepwise_contract.platform.connection_config import ConnectionConfigError
from stepwise_contract.platform.nats_connection import NatsSettings, parse_nats_urls
from stepwise_contract.platform.settings import CommonSettings, SettingsError
from stepwise_contract.platform.temporal_access import TemporalAccess
from temporalio.service import TLSConfig


def test_one_url_and_a_list() -> None:
    assert parse_nats_urls("nats://a:4222") == ("nats://a:4222",)
    assert parse_nats_urls(" nats://a:4222 , tls://b:4223,nats://c ") == (
        "nats://a:4222",
        "tls://b:4223",
        "nats://c",
    )
    assert parse_nats_urls("nats://[::1]:4222") == ("nats://[::1]:4222",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("nats://a:4222,", "item 2 is empty"),
        ("nats://a:4222,,nats://b:4222", "item 2 is empty"),
        (",nats://a:4222", "item 1 is empty"),
        ("a:4222", "must be a nats://host:port URL"),
        ("http://a:4222", "must be a nats://host:port URL"),
        ("nats:/a:4222", "must be a nats://host:port URL"),
        ("nats://:4222", "has no host"),
        ("nats://a:port", "is not a valid URL"),
        ("nats://a:99999", "is not a valid URL"),
        ("nats://a:0", "port 0"),
        ("nats://a:4222/x", "nothing after it"),
        ("nats://a:4222?x=1", "nothing after it"),
        ("nats://a:4222,nats://a:4222", "listed twice"),
    ],
)
def test_hostile_url_lists_are_refused(raw: str, message: str) -> None:
    with pytest.raises(ConnectionConfigError, match=message):
        parse_nats_urls(raw)


def test_common_settings_carry_the_parsed_list() -> None:
    common = CommonSettings.from_env({"NATS_URL": "nats://n1:4222,nats://n2:4222"})
    assert common.nats_url == "nats://n1:4222,nats://n2:4222"
    assert common.nats.servers == ("nats://n1:4222", "nats://n2:4222")
    assert common.nats.stream_replicas == 1
    assert common.nats.tls_context() is None
    assert CommonSettings.from_env({}).nats.servers == ("nats://127.0.0.1:4222",)


def test_a_bad_list_is_a_settings_error_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"NATS_URL=.*item 2 is empty"):
        CommonSettings.from_env({"NATS_URL": "nats://n1:4222,"})


@pytest.mark.parametrize("value", ["0", "-1", "6", "three", "1.5"])
def test_stream_replicas_out_of_range(value: str) -> None:
    with pytest.raises(SettingsError, match="STEPWISE_NATS_STREAM_REPLICAS"):
        CommonSettings.from_env({"STEPWISE_NATS_STREAM_REPLICAS": value})


def test_stream_replicas() -> None:
    common = CommonSettings.from_env({"STEPWISE_NATS_STREAM_REPLICAS": "3"})
    assert common.nats.stream_replicas == 3


def test_nats_files_must_exist(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.creds")
    for name in ("NATS_CREDS", "NATS_CA", "NATS_CERT"):
        with pytest.raises(SettingsError, match=f"{name}=.*no such file"):
            CommonSettings.from_env({name: missing})


def test_nats_client_cert_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError, match="NATS_CERT and NATS_KEY go together"):
        CommonSettings.from_env({"NATS_CERT": str(cert)})


def test_tls_url_means_tls_with_the_system_cas() -> None:
    settings = NatsSettings.from_env({"NATS_URL": "tls://n1:4222"})
    assert settings.uses_tls and settings.tls_context() is not None
    assert not NatsSettings.from_env({"NATS_URL": "nats://n1:4222"}).uses_tls


def test_a_ca_file_that_is_not_a_certificate_fails_when_the_context_is_built(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    settings = NatsSettings.from_env({"NATS_CA": str(ca)})
    assert settings.uses_tls and settings.tls_ca_file == str(ca)
    with pytest.raises(Exception):  # noqa: B017 - ssl reports it as its own error type
        settings.tls_context()


# ------------------------------------------------------------------------------ Temporal


def test_temporal_defaults_are_plain() -> None:
    access = CommonSettings.from_env({}).temporal_access
    assert access == TemporalAccess()
    assert access.tls_config() is False and access.api_key is None


def test_an_api_key_implies_tls_and_never_shows_in_repr() -> None:
    common = CommonSettings.from_env(
        {"TEMPORAL_API_KEY": "secret-key-123", "TEMPORAL_NAMESPACE": "prod.abc12"}
    )
    assert common.temporal_namespace == "prod.abc12"
    assert common.temporal_access.tls_config() is True
    assert common.temporal_access.api_key == "secret-key-123"
    assert "secret-key-123" not in repr(common.temporal_access)
    assert "secret-key-123" not in repr(common)


def test_mtls_files_are_read_into_the_tls_config(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(b"CA")
    (tmp_path / "c.pem").write_bytes(b"CERT")
    (tmp_path / "k.pem").write_bytes(b"KEY")
    access = TemporalAccess.from_env(
        {
            "TEMPORAL_TLS_CA": str(tmp_path / "ca.pem"),
            "TEMPORAL_TLS_CERT": str(tmp_path / "c.pem"),
            "TEMPORAL_TLS_KEY": str(tmp_path / "k.pem"),
            "TEMPORAL_TLS_SERVER_NAME": "frontend.internal",
        }
    )
    config = access.tls_config()
    assert isinstance(config, TLSConfig)
    assert (config.server_root_ca_cert, config.client_cert, config.client_private_key) == (
        b"CA",
        b"CERT",
        b"KEY",
    )
    assert config.domain == "frontend.internal"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TEMPORAL_TLS": "maybe"}, "not a boolean"),
        ({"TEMPORAL_TLS_CA": "/nonexistent/ca.pem"}, "no such file"),
        ({"TEMPORAL_TLS_CERT": "/nonexistent/c.pem"}, "no such file"),
        ({"TEMPORAL_API_KEY": "abc def"}, "whitespace or control"),
        ({"TEMPORAL_API_KEY": "abc\x00def"}, "whitespace or control"),
        (
            {"TEMPORAL_TLS": "false", "TEMPORAL_TLS_SERVER_NAME": "x"},
            "TEMPORAL_TLS=false but",
        ),
    ],
)
def test_hostile_temporal_access(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        CommonSettings.from_env(environ)


def test_temporal_cert_needs_its_key(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_bytes(b"CERT")
    with pytest.raises(SettingsError, match="go together"):
        CommonSettings.from_env({"TEMPORAL_TLS_CERT": str(tmp_path / "c.pem")})


def test_tls_on_without_files_uses_the_system_cas() -> None:
    assert TemporalAccess.from_env({"TEMPORAL_TLS": "true"}).tls_config() is True
