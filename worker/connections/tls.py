"""TLS contexts from certificate files: clients verify unless told not to, servers present one."""

from __future__ import annotations

import ssl
from pathlib import Path

from worker.errors import ConfigurationError


def client_context(
    *,
    prefix: str,
    ca_cert: Path | None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    verify: bool = True,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A TLS client context that verifies the server against ``ca_cert`` (or the system CAs).

    ``client_cert`` (and ``client_key``, when not in the same file) is presented
    to servers that require mutual TLS. Unreadable or invalid files raise
    :class:`~worker.errors.ConfigurationError` naming the ``prefix``'s settings.
    """
    try:
        context = ssl.create_default_context(cafile=str(ca_cert) if ca_cert else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"{prefix}TLS_CA_CERT ({ca_cert}) is not a usable PEM CA bundle: {exc}",
            details={"variable": f"{prefix}TLS_CA_CERT"},
        ) from exc
    # Never below TLS 1.2, whatever the system's OpenSSL defaults say.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif not check_hostname:
        context.check_hostname = False
    if client_cert is not None:
        _load_chain(context, client_cert, client_key, f"{prefix}TLS_CLIENT_CERT")
    return context


def server_context(*, prefix: str, cert: Path, key: Path | None) -> ssl.SSLContext:
    """A TLS server context presenting ``cert`` (and ``key``, when not in the same file)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert, key, f"{prefix}TLS_CERT")
    return context


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path | None, variable: str) -> None:
    """Load a certificate and its key; a bad pair names ``variable`` (and its ``_KEY``)."""
    try:
        context.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"{variable} ({cert}) and its key are not a usable PEM certificate and key: {exc}",
            details={"variable": variable},
        ) from exc
