"""API keys: where the runner gets them, and how it makes sure they never leave the process.

Keys come only from the environment variables ``RunnerConfig.api_key_env`` names (the pod
fills them from the pool's Secret references). Nothing the runner writes should ever hold
one, and nothing does by construction; the ``Redactor`` is the second line of defence for
text that comes from outside (a provider that echoes a key in an error message): every
string the runner stores in status, checkpoints, results or events, and every log line,
passes through it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from llmagents.api.runner_config import RunnerConfig

REDACTED = "[redacted]"
_MIN_SECRET_LENGTH = 6
"""Shorter values are not treated as secrets: replacing them would mangle ordinary text."""


def api_keys(config: RunnerConfig, environ: Mapping[str, str]) -> dict[str, str | None]:
    """Provider name -> its API key from the environment, or None when the variable is unset.

    Surrounding whitespace is dropped: a Secret made with ``echo key | base64`` carries a
    newline, which would otherwise end the HTTP header that carries the key."""
    return {
        provider: ((environ.get(variable) or "").strip() or None)
        for provider, variable in config.api_key_env.items()
    }


class Redactor:
    """Replaces known secret values in text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        found = {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}
        # A key with a character repr() escapes (a byte-order mark, a control character)
        # appears escaped in a repr or an ascii() of anything holding it; catch those too.
        found |= {form for s in found for form in (repr(s)[1:-1], ascii(s)[1:-1])}
        # Longest first, so that a key containing another key is replaced whole.
        self._secrets = sorted(set(self._secrets) | found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets)


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record and removes secrets from the result."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor:
            message = record.getMessage()
            cleaned = self.redactor(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_info and record.exc_info[1] is not None:
                text = self.redactor(str(record.exc_info[1]))
                if text != str(record.exc_info[1]):
                    # The traceback would print the original message: keep only the cleaned one.
                    record.msg = f"{record.msg} ({type(record.exc_info[1]).__name__}: {text})"
                    record.exc_info = None
                    record.exc_text = None
        return True


def install_log_redaction(redactor: Redactor) -> None:
    """Redact every log record of the process, whichever logger or handler takes it.

    A record factory rather than a handler filter: libraries add handlers of their own, and
    every record, whoever handles it, is made by the factory.
    """
    log_filter = RedactingFilter(redactor)
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        log_filter.filter(record)
        return record

    logging.setLogRecordFactory(factory)
