"""Log records as JSON lines (or console lines), with request ids, never with secrets.

``WORKER_LOG_FORMAT=json`` (the default) writes one JSON object per line to
stderr: ``time`` (UTC, RFC 3339), ``level``, ``logger``, ``message``, then
every field passed with ``extra=`` (``request_id``, ``correlation_id``,
``tenant``, ``topic``, ``partition``, ``offset``, ``error_code`` ...) and
``exception`` with the traceback. ``console`` writes the same as text.

The configuration is handed to Faust's worker as its ``logging_config``, so
Faust's, aiokafka's and every other library's records take the same path.

Secrets: every ``SecretStr`` setting is collected at start-up; its value (for a
URL, its password) is replaced by ``***`` wherever it appears in a record, and
so is the password of any URL of the form ``scheme://user:password@host``.
"""

from __future__ import annotations

import logging
import logging.config
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, SecretStr

#: Attributes every LogRecord has; anything else on a record came with ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)[^\s/@]+@")
MASK = "***"


class SecretScrubber:
    """Replaces known secret values and URL passwords in text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if "@" in text:
            text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def secret_values(models: Iterable[BaseModel]) -> set[str]:
    """What must never be logged: each ``SecretStr`` field's value, or its URL's password."""
    found = set()
    for model in models:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if not isinstance(value, SecretStr):
                continue
            secret = value.get_secret_value()
            if "://" in secret:
                password = urlsplit(secret).password
                if password:
                    found.add(password)
            elif secret:
                found.add(secret)
    return found


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


def _clean(value: Any, scrub: SecretScrubber) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    # SecretStr, exceptions, paths...: their str() (SecretStr's is masked), scrubbed.
    return scrub(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._scrub = SecretScrubber(secrets)

    def format(self, record: logging.LogRecord) -> str:
        scrub = self._scrub
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for key, value in _extras(record).items():
            body.setdefault(key, _clean(value, scrub))
        if record.exc_info:
            body["exception"] = scrub(self.formatException(record.exc_info))
        if record.stack_info:
            body["stack"] = scrub(self.formatStack(record.stack_info))
        return orjson.dumps(body).decode()


class ConsoleFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for people at a terminal."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self._scrub = SecretScrubber(secrets)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = " ".join(f"{k}={_clean(v, self._scrub)}" for k, v in _extras(record).items())
        return self._scrub(f"{text} {extras}" if extras else text)


def logging_config(
    *, level: str, fmt: str, secrets: Iterable[str] = (), stream: str = "ext://sys.stderr"
) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` configuration: one handler on the root logger."""
    formatter = JsonFormatter if fmt == "json" else ConsoleFormatter
    return {
        "version": 1,
        # Loggers created at import time (every module's ``log``) must keep working.
        "disable_existing_loggers": False,
        "formatters": {
            "worker": {
                "()": f"{formatter.__module__}.{formatter.__qualname__}",
                "secrets": sorted(secrets),
            }
        },
        "handlers": {
            "worker": {
                "class": "logging.StreamHandler",
                "formatter": "worker",
                "stream": stream,
            }
        },
        "root": {"level": level.upper(), "handlers": ["worker"]},
        # At debug these print the bytes of every message sent: responses, dead letters,
        # cached answers, sensitive fields included. Never below info.
        "loggers": {name: {"level": _at_least_info(level)} for name in PAYLOAD_LOGGERS},
    }


#: Library loggers that log whole message payloads at debug.
PAYLOAD_LOGGERS = ("aiokafka.producer.producer",)


def _at_least_info(level: str) -> str:
    return "INFO" if logging.getLevelName(level.upper()) < logging.INFO else level.upper()


def configure_logging(
    *, level: str, fmt: str, secrets: Iterable[str] = (), stream: str = "ext://sys.stderr"
) -> dict[str, Any]:
    """Configure the root logger now; return the configuration (Faust applies it again)."""
    config = logging_config(level=level, fmt=fmt, secrets=secrets, stream=stream)
    logging.config.dictConfig(config)
    return config
