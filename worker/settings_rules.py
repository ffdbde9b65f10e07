"""Rules the settings models share: secrets from files, certificate files, transport security.

Secrets from files: every ``SecretStr`` setting may come from ``<VARIABLE>_FILE``.

Container platforms mount secrets as files (Docker and Kubernetes secrets), and a
file keeps the value out of ``/proc/<pid>/environ`` and out of ``docker inspect``.
For each secret field of a settings model, ``<PREFIX><FIELD>_FILE`` names a file
whose content (surrounding whitespace stripped) is the value: ``KAFKA_SASL_PASSWORD``
or ``KAFKA_SASL_PASSWORD_FILE``, ``REDIS_URL`` or ``REDIS_URL_FILE``, and so on.
Setting both is refused: which one wins would be a guess.

A model that declares its own ``<field>_file`` setting (``SECURITY_MASTER_KEY_FILE``,
read lazily by its owner) keeps it; this source leaves that field alone.
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from worker.errors import ConfigurationError

if TYPE_CHECKING:
    from worker.settings import KafkaSettings, RedisSettings


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and SecretStr in typing.get_args(annotation)


class SecretFileSource(PydanticBaseSettingsSource):
    """Reads ``<PREFIX><FIELD>_FILE`` for every ``SecretStr`` field of the model."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads every field at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.config.get("env_prefix", "")).upper()
        fields = self.settings_cls.model_fields
        found: dict[str, Any] = {}
        for name, field in fields.items():
            if not _is_secret(field.annotation) or f"{name}_file" in fields:
                continue
            variable = f"{prefix}{name.upper()}"
            path = os.environ.get(f"{variable}_FILE")
            if not path:
                continue
            if os.environ.get(variable):
                raise ConfigurationError(
                    f"both {variable} and {variable}_FILE are set. Operator action: keep one"
                )
            try:
                found[name] = Path(path).expanduser().read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                # The path is not secret; the content (if any was read) never appears.
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigurationError(
                    f"{variable}_FILE ({path}) is not readable: {reason}",
                    details={"variable": f"{variable}_FILE"},
                ) from None
        return found


class SecretSettings(BaseSettings):
    """A settings model whose secrets may also come from ``*_FILE`` variables.

    Validation errors never quote the input: it may be a password.
    """

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            SecretFileSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )


def _existing_file(value: Path | None) -> Path | None:
    """A configured certificate or key file must exist when the worker starts."""
    if value is None:
        return None
    value = value.expanduser()
    if not value.is_file():
        raise ValueError(f"no such file: {value}")
    return value


#: A certificate or key file, checked to exist when the settings are read.
ExistingFile = Annotated[Path | None, AfterValidator(_existing_file)]


class TlsClientFiles(SecretSettings):
    """The certificate files of a TLS client (``<PREFIX>TLS_CA_CERT``, ...)."""

    tls_ca_cert: ExistingFile = Field(
        default=None, description="PEM bundle of the CA that signed the server certificates."
    )
    tls_client_cert: ExistingFile = Field(
        default=None, description="PEM client certificate, for servers that require mutual TLS."
    )
    tls_client_key: ExistingFile = Field(
        default=None, description="Private key of the client certificate, if not in that file."
    )


def _named(options: dict[str, bool]) -> str:
    return ", ".join(name for name, present in options.items() if present)


def check_kafka_security(kafka: KafkaSettings) -> None:
    """Raise ``ValueError`` for a protocol, SASL and TLS combination that cannot be meant."""
    protocol = kafka.security_protocol
    sasl = protocol.startswith("SASL_")
    if sasl and not (kafka.sasl_username and kafka.sasl_password):
        raise ValueError(
            f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME "
            "and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)"
        )
    if not sasl and (kafka.sasl_username or kafka.sasl_password):
        # Credentials that are configured but never sent would hide a missing login.
        raise ValueError(
            f"KAFKA_SASL_USERNAME/PASSWORD are set but KAFKA_SECURITY_PROTOCOL={protocol} "
            "does not use them: set it to SASL_SSL"
        )
    if protocol == "SASL_PLAINTEXT" and not kafka.allow_sasl_plaintext:
        raise ValueError(
            "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT sends the SASL exchange and every record "
            "unencrypted: use SASL_SSL, or set KAFKA_ALLOW_SASL_PLAINTEXT=true"
        )
    files = {
        "KAFKA_TLS_CA_CERT": kafka.tls_ca_cert is not None,
        "KAFKA_TLS_CLIENT_CERT": kafka.tls_client_cert is not None,
        "KAFKA_TLS_CLIENT_KEY": kafka.tls_client_key is not None,
        "KAFKA_TLS_CHECK_HOSTNAME": not kafka.tls_check_hostname,
    }
    if not protocol.endswith("SSL") and any(files.values()):
        raise ValueError(f"{_named(files)} need KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL")
    if kafka.tls_client_key is not None and kafka.tls_client_cert is None:
        raise ValueError("KAFKA_TLS_CLIENT_KEY needs KAFKA_TLS_CLIENT_CERT")


def check_redis_security(redis: RedisSettings) -> None:
    """Raise ``ValueError`` for URL, ACL and TLS settings that contradict each other."""
    parts = urlsplit(redis.url.get_secret_value())
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
    # redis-py lets the URL override keyword arguments: refuse instead of guessing.
    if redis.password is not None and parts.password:
        raise ValueError("the password is both in REDIS_URL and in REDIS_PASSWORD: keep one")
    if redis.username is not None and parts.username:
        raise ValueError("the user is both in REDIS_URL and in REDIS_USERNAME: keep one")
    tls = {
        "REDIS_TLS_CA_CERT": redis.tls_ca_cert is not None,
        "REDIS_TLS_CLIENT_CERT": redis.tls_client_cert is not None,
        "REDIS_TLS_CLIENT_KEY": redis.tls_client_key is not None,
        "REDIS_TLS_VERIFY": not redis.tls_verify,
        "REDIS_TLS_CHECK_HOSTNAME": not redis.tls_check_hostname,
    }
    if parts.scheme != "rediss" and any(tls.values()):
        raise ValueError(f"{_named(tls)} need a rediss:// REDIS_URL")
    if redis.tls_client_key is not None and redis.tls_client_cert is None:
        raise ValueError("REDIS_TLS_CLIENT_KEY needs REDIS_TLS_CLIENT_CERT")
